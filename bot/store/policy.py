"""Channel, role and safety policy edited by /flexadmin, and reading the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bot.store.db import fetch_all

GUILD_DEFAULT = 0  # safety_policy.channel_id of a guild's default row


@dataclass(frozen=True, slots=True)
class SafetyRow:
    """One stored safety rule: the guild default (channel_id 0) or a channel override."""

    guild_id: int
    channel_id: int
    max_tolerance: str
    checker_off_allowed: bool


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded admin change."""

    id: int
    guild_id: int | None
    actor_id: int | None
    action: str
    detail: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """One limit override as stored."""

    scope: str
    target_id: int
    name: str
    value: int | None


async def allowed_channels(conn: aiosqlite.Connection, guild_id: int) -> list[int]:
    rows = await fetch_all(
        conn,
        "SELECT channel_id FROM allowed_channels WHERE guild_id = ? ORDER BY channel_id",
        (guild_id,),
    )
    return [int(r[0]) for r in rows]


async def set_allowed_channels(
    conn: aiosqlite.Connection, guild_id: int, channel_ids: Sequence[int], actor: int | None
) -> None:
    """Replace the guild's allowed channels; an empty list allows every channel."""
    await conn.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))
    now = time.time()
    await conn.executemany(
        "INSERT INTO allowed_channels (guild_id, channel_id, set_by, set_at) VALUES (?, ?, ?, ?)",
        [(guild_id, c, actor, now) for c in dict.fromkeys(channel_ids)],
    )


async def required_role(conn: aiosqlite.Connection, guild_id: int) -> int | None:
    rows = await fetch_all(
        conn, "SELECT required_role_id FROM guild_policy WHERE guild_id = ?", (guild_id,)
    )
    row = rows[0] if rows else None
    return int(row[0]) if row and row[0] is not None else None


async def set_required_role(
    conn: aiosqlite.Connection, guild_id: int, role_id: int | None, actor: int | None
) -> None:
    await conn.execute(
        "INSERT INTO guild_policy (guild_id, required_role_id, set_by, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (guild_id) DO UPDATE SET required_role_id = excluded.required_role_id,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        (guild_id, role_id, actor, time.time()),
    )


async def safety_rows(
    conn: aiosqlite.Connection, guild_id: int, channel_id: int | None = None
) -> list[SafetyRow]:
    """The guild default and, when given, that channel's override (all rows without a channel)."""
    sql = "SELECT guild_id, channel_id, max_tolerance, checker_off_allowed FROM safety_policy"
    args: list[Any] = [guild_id]
    sql += " WHERE guild_id = ?"
    if channel_id is not None:
        sql += " AND channel_id IN (?, ?)"
        args += [GUILD_DEFAULT, channel_id]
    rows = await fetch_all(conn, sql + " ORDER BY channel_id", args)
    return [SafetyRow(int(r[0]), int(r[1]), str(r[2]), bool(r[3])) for r in rows]


async def set_safety(
    conn: aiosqlite.Connection,
    guild_id: int,
    channel_id: int,
    max_tolerance: str,
    checker_off_allowed: bool,
    actor: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO safety_policy (guild_id, channel_id, max_tolerance, checker_off_allowed,"
        " set_by, set_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO UPDATE"
        " SET max_tolerance = excluded.max_tolerance,"
        " checker_off_allowed = excluded.checker_off_allowed,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        (guild_id, channel_id, max_tolerance, int(checker_off_allowed), actor, time.time()),
    )


async def clear_safety(conn: aiosqlite.Connection, guild_id: int, channel_id: int) -> None:
    await conn.execute(
        "DELETE FROM safety_policy WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
    )


async def guild_overrides(conn: aiosqlite.Connection, guild_id: int) -> list[OverrideRow]:
    """Every limit override stored for this guild (guild, role and member scopes)."""
    rows = await fetch_all(
        conn,
        "SELECT scope, target_id, name, value FROM limits WHERE guild_id = ?"
        " ORDER BY scope, target_id, name",
        (guild_id,),
    )
    return [OverrideRow(str(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]


async def blocked_users(conn: aiosqlite.Connection, guild_id: int) -> list[int]:
    rows = await fetch_all(
        conn, "SELECT user_id FROM blocks WHERE guild_id = ? ORDER BY user_id", (guild_id,)
    )
    return [int(r[0]) for r in rows]


async def audit_rows(
    conn: aiosqlite.Connection, guild_id: int | None = None, limit: int = 100
) -> list[AuditRow]:
    """The newest audit rows, of one guild or of all."""
    sql = "SELECT id, guild_id, actor_id, action, detail, created_at FROM audit"
    args: list[Any] = []
    if guild_id is not None:
        sql += " WHERE guild_id = ?"
        args.append(guild_id)
    rows = await fetch_all(conn, sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
    return [AuditRow(int(r[0]), r[1], r[2], str(r[3]), json.loads(r[4]), float(r[5])) for r in rows]
