"""The limits table: admin overrides of a limit for a member, a role, a server or the whole bot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.model import LimitScope
from bot.store.db import Reader, Tx, execute, fetch_all

GLOBAL = 0  # guild_id of bot-wide rows (global overrides, pause, blocked everywhere)


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """One limit override as stored."""

    scope: LimitScope
    target_id: int
    name: str
    value: int | None


async def set_limit(
    tx: Tx,
    scope: LimitScope,
    guild_id: int,
    target_id: int,
    name: str,
    value: int | None,
    actor: int | None,
) -> None:
    await execute(
        tx,
        "INSERT INTO limits (scope, guild_id, target_id, name, value, set_by, set_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, guild_id, target_id, name)"
        " DO UPDATE SET value = excluded.value, set_by = excluded.set_by,"
        " set_at = excluded.set_at",
        (scope, guild_id, target_id, name, value, actor, time.time()),
    )


async def clear_limit(tx: Tx, scope: LimitScope, guild_id: int, target_id: int, name: str) -> None:
    await execute(
        tx,
        "DELETE FROM limits WHERE scope = ? AND guild_id = ? AND target_id = ? AND name = ?",
        (scope, guild_id, target_id, name),
    )


async def overrides_for(
    src: Reader, guild_id: int | None, user_id: int, role_ids: Sequence[int]
) -> list[OverrideRow]:
    """Every override that may apply to this member."""
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
    return [_row(r) for r in await fetch_all(src, sql, args)]


async def guild_overrides(src: Reader, guild_id: int) -> list[OverrideRow]:
    """Every override stored for this guild (guild, role and member scopes; GLOBAL: bot-wide)."""
    rows = await fetch_all(
        src,
        "SELECT scope, target_id, name, value FROM limits WHERE guild_id = ?"
        " ORDER BY scope, target_id, name",
        (guild_id,),
    )
    return [_row(r) for r in rows]


def _row(r: Any) -> OverrideRow:
    return OverrideRow(LimitScope(r[0]), int(r[1]), str(r[2]), r[3])
