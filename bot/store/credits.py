"""The credits table: extra allowance granted to (or taken back from) a member, per guild."""

from __future__ import annotations

import time

from bot.store.db import Reader, Tx, execute, fetch_one
from bot.store.limits import GLOBAL


async def grant_credit(
    tx: Tx, guild_id: int, user_id: int, amount: int, actor: int | None, reason: str | None
) -> None:
    """Record a grant (positive) or a revocation (negative)."""
    await execute(
        tx,
        "INSERT INTO credits (guild_id, user_id, amount_micros, granted_by, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, amount, actor, reason, time.time()),
    )


async def credits_since(src: Reader, guild_id: int | None, user_id: int, since: float) -> int:
    """The member's net credit granted since ``since`` (never below zero)."""
    row = await fetch_one(
        src,
        "SELECT COALESCE(SUM(amount_micros), 0) FROM credits"
        " WHERE guild_id = ? AND user_id = ? AND created_at >= ?",
        (guild_id or GLOBAL, user_id, since),
    )
    return max(0, int(row[0])) if row else 0
