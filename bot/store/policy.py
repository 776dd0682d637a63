"""The allowed_channels, guild_policy and safety_policy tables: where and by whom the bot may be
used, and the loosest safety allowed per channel."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.model import SafetyTolerance
from bot.store.db import Reader, Tx, execute, fetch_all, fetch_one

GUILD_DEFAULT = 0  # safety_policy.channel_id of a guild's default row


@dataclass(frozen=True, slots=True)
class SafetyRow:
    """One stored safety rule: the guild default (channel_id 0) or a channel override."""

    guild_id: int
    channel_id: int
    max_tolerance: SafetyTolerance
    checker_off_allowed: bool


async def allowed_channels(src: Reader, guild_id: int) -> list[int]:
    rows = await fetch_all(
        src,
        "SELECT channel_id FROM allowed_channels WHERE guild_id = ? ORDER BY channel_id",
        (guild_id,),
    )
    return [int(r[0]) for r in rows]


async def set_allowed_channels(
    tx: Tx, guild_id: int, channel_ids: Sequence[int], actor: int | None
) -> None:
    """Replace the guild's allowed channels; an empty list allows every channel."""
    await execute(tx, "DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))
    now = time.time()
    for channel_id in dict.fromkeys(channel_ids):
        await execute(
            tx,
            "INSERT INTO allowed_channels (guild_id, channel_id, set_by, set_at)"
            " VALUES (?, ?, ?, ?)",
            (guild_id, channel_id, actor, now),
        )


async def required_role(src: Reader, guild_id: int) -> int | None:
    row = await fetch_one(
        src, "SELECT required_role_id FROM guild_policy WHERE guild_id = ?", (guild_id,)
    )
    return int(row[0]) if row and row[0] is not None else None


async def set_required_role(tx: Tx, guild_id: int, role_id: int | None, actor: int | None) -> None:
    await execute(
        tx,
        "INSERT INTO guild_policy (guild_id, required_role_id, set_by, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (guild_id) DO UPDATE SET required_role_id = excluded.required_role_id,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        (guild_id, role_id, actor, time.time()),
    )


async def safety_rows(src: Reader, guild_id: int, channel_id: int | None = None) -> list[SafetyRow]:
    """The guild default and, when given, that channel's override (all rows without a channel)."""
    sql = "SELECT guild_id, channel_id, max_tolerance, checker_off_allowed FROM safety_policy"
    args: list[Any] = [guild_id]
    sql += " WHERE guild_id = ?"
    if channel_id is not None:
        sql += " AND channel_id IN (?, ?)"
        args += [GUILD_DEFAULT, channel_id]
    rows = await fetch_all(src, sql + " ORDER BY channel_id", args)
    return [SafetyRow(int(r[0]), int(r[1]), SafetyTolerance(r[2]), bool(r[3])) for r in rows]


async def set_safety(
    tx: Tx,
    guild_id: int,
    channel_id: int,
    max_tolerance: SafetyTolerance,
    checker_off_allowed: bool,
    actor: int | None,
) -> None:
    await execute(
        tx,
        "INSERT INTO safety_policy (guild_id, channel_id, max_tolerance, checker_off_allowed,"
        " set_by, set_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO UPDATE"
        " SET max_tolerance = excluded.max_tolerance,"
        " checker_off_allowed = excluded.checker_off_allowed,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        (guild_id, channel_id, max_tolerance, int(checker_off_allowed), actor, time.time()),
    )


async def clear_safety(tx: Tx, guild_id: int, channel_id: int) -> None:
    await execute(
        tx,
        "DELETE FROM safety_policy WHERE guild_id = ? AND channel_id = ?",
        (guild_id, channel_id),
    )
