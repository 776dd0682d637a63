"""The blocks and pauses tables: who may not use the bot, and where it takes no new edits."""

from __future__ import annotations

import time

from bot.store.db import Reader, Tx, execute, fetch_all
from bot.store.limits import GLOBAL


async def set_blocked(
    tx: Tx,
    guild_id: int,
    user_id: int,
    blocked: bool,
    actor: int | None,
    reason: str | None = None,
) -> None:
    if blocked:
        await execute(
            tx,
            "INSERT INTO blocks (guild_id, user_id, blocked_by, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET"
            " blocked_by = excluded.blocked_by, reason = excluded.reason,"
            " created_at = excluded.created_at",
            (guild_id, user_id, actor, reason, time.time()),
        )
    else:
        await execute(
            tx, "DELETE FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )


async def is_blocked(src: Reader, guild_id: int | None, user_id: int) -> bool:
    """Blocked in this guild or everywhere."""
    rows = await fetch_all(
        src,
        "SELECT 1 FROM blocks WHERE user_id = ? AND guild_id IN (?, ?)",
        (user_id, guild_id or GLOBAL, GLOBAL),
    )
    return bool(rows)


async def blocked_users(src: Reader, guild_id: int) -> list[int]:
    rows = await fetch_all(
        src, "SELECT user_id FROM blocks WHERE guild_id = ? ORDER BY user_id", (guild_id,)
    )
    return [int(r[0]) for r in rows]


async def set_paused(
    tx: Tx, guild_id: int, paused: bool, actor: int | None, reason: str | None = None
) -> None:
    if paused:
        await execute(
            tx,
            "INSERT INTO pauses (guild_id, paused_by, reason, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " paused_by = excluded.paused_by, reason = excluded.reason,"
            " created_at = excluded.created_at",
            (guild_id, actor, reason, time.time()),
        )
    else:
        await execute(tx, "DELETE FROM pauses WHERE guild_id = ?", (guild_id,))


async def paused_scopes(src: Reader, guild_id: int | None) -> list[int]:
    """Which of (this guild, GLOBAL) are paused."""
    rows = await fetch_all(
        src, "SELECT guild_id FROM pauses WHERE guild_id IN (?, ?)", (guild_id or GLOBAL, GLOBAL)
    )
    return [int(r[0]) for r in rows]
