"""Admin-edited policy: limit overrides, credits, blocks, pauses, remix opt-outs, audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from bot.store.db import fetch_all

GLOBAL = 0  # guild_id used for bot-wide rows (global pause, blocked everywhere)


async def set_limit(
    conn: aiosqlite.Connection,
    scope: str,
    guild_id: int,
    target_id: int,
    name: str,
    value: int | None,
    actor: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO limits (scope, guild_id, target_id, name, value, set_by, set_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, guild_id, target_id, name)"
        " DO UPDATE SET value = excluded.value, set_by = excluded.set_by,"
        " set_at = excluded.set_at",
        (scope, guild_id, target_id, name, value, actor, time.time()),
    )


async def clear_limit(
    conn: aiosqlite.Connection, scope: str, guild_id: int, target_id: int, name: str
) -> None:
    await conn.execute(
        "DELETE FROM limits WHERE scope = ? AND guild_id = ? AND target_id = ? AND name = ?",
        (scope, guild_id, target_id, name),
    )


async def limit_overrides(
    conn: aiosqlite.Connection, guild_id: int | None, user_id: int, role_ids: Sequence[int]
) -> list[tuple[str, int, str, int | None]]:
    """Every override that may apply to this member: (scope, target_id, name, value)."""
    gid = guild_id or GLOBAL
    roles = list(role_ids)
    sql = (
        "SELECT scope, target_id, name, value FROM limits WHERE scope = 'global'"
        " OR (scope = 'guild' AND guild_id = ?) OR (scope = 'user' AND guild_id = ?"
        " AND target_id = ?)"
    )
    args: list[Any] = [gid, gid, user_id]
    if roles:
        marks = ",".join("?" * len(roles))
        sql += f" OR (scope = 'role' AND guild_id = ? AND target_id IN ({marks}))"
        args += [gid, *roles]
    rows = await fetch_all(conn, sql, args)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def grant_credit(
    conn: aiosqlite.Connection,
    guild_id: int,
    user_id: int,
    amount: int,
    actor: int | None,
    reason: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO credits (guild_id, user_id, amount_micros, granted_by, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, amount, actor, reason, time.time()),
    )


async def credits_since(
    conn: aiosqlite.Connection, guild_id: int | None, user_id: int, since: float
) -> int:
    rows = await fetch_all(
        conn,
        "SELECT COALESCE(SUM(amount_micros), 0) FROM credits"
        " WHERE guild_id = ? AND user_id = ? AND created_at >= ?",
        (guild_id or GLOBAL, user_id, since),
    )
    row = rows[0] if rows else None
    return max(0, int(row[0])) if row else 0


async def set_blocked(
    conn: aiosqlite.Connection,
    guild_id: int,
    user_id: int,
    blocked: bool,
    actor: int | None,
    reason: str | None = None,
) -> None:
    if blocked:
        await conn.execute(
            "INSERT OR REPLACE INTO blocks (guild_id, user_id, blocked_by, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (guild_id, user_id, actor, reason, time.time()),
        )
    else:
        await conn.execute(
            "DELETE FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )


async def is_blocked(conn: aiosqlite.Connection, guild_id: int | None, user_id: int) -> bool:
    rows = await fetch_all(
        conn,
        "SELECT 1 FROM blocks WHERE user_id = ? AND guild_id IN (?, ?)",
        (user_id, guild_id or GLOBAL, GLOBAL),
    )
    return bool(rows)


async def set_paused(
    conn: aiosqlite.Connection,
    guild_id: int,
    paused: bool,
    actor: int | None,
    reason: str | None = None,
) -> None:
    if paused:
        await conn.execute(
            "INSERT OR REPLACE INTO pauses (guild_id, paused_by, reason, created_at)"
            " VALUES (?, ?, ?, ?)",
            (guild_id, actor, reason, time.time()),
        )
    else:
        await conn.execute("DELETE FROM pauses WHERE guild_id = ?", (guild_id,))


async def paused_scopes(conn: aiosqlite.Connection, guild_id: int | None) -> list[int]:
    """Which of (this guild, global) are paused."""
    rows = await fetch_all(
        conn, "SELECT guild_id FROM pauses WHERE guild_id IN (?, ?)", (guild_id or GLOBAL, GLOBAL)
    )
    return [int(r[0]) for r in rows]


async def set_remix_opt_out(conn: aiosqlite.Connection, user_id: int, opt_out: bool) -> None:
    await conn.execute(
        "INSERT INTO user_prefs (user_id, remix_opt_out) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET remix_opt_out = excluded.remix_opt_out",
        (user_id, int(opt_out)),
    )


async def remix_opted_out(conn: aiosqlite.Connection, user_id: int) -> bool:
    rows = await fetch_all(
        conn, "SELECT remix_opt_out FROM user_prefs WHERE user_id = ?", (user_id,)
    )
    row = rows[0] if rows else None
    return bool(row and row[0])


async def record_audit(
    conn: aiosqlite.Connection,
    guild_id: int | None,
    actor_id: int | None,
    action: str,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO audit (guild_id, actor_id, action, detail, created_at) VALUES (?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, json.dumps(detail, sort_keys=True), time.time()),
    )
