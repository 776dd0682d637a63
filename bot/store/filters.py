"""The prompt_filters table: each server's blocked words, phrases and patterns."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from bot.prompt_filter import Kind, Term
from bot.store.db import Reader, Tx, execute, fetch_all, fetch_one


@dataclass(frozen=True, slots=True)
class FilterRow:
    """One stored term, as the admin wrote it."""

    id: int
    guild_id: int
    kind: Kind
    term: str
    added_by: int | None
    added_at: float


async def add_term(tx: Tx, guild_id: int, kind: Kind, term: str, actor: int | None) -> bool:
    """Store a term; False when the server already had it."""
    changed = await execute(
        tx,
        "INSERT INTO prompt_filters (guild_id, kind, term, added_by, added_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, kind, term) DO NOTHING",
        (guild_id, kind, term, actor, time.time()),
    )
    return changed > 0


async def remove_term(tx: Tx, guild_id: int, kind: Kind, term: str) -> bool:
    """Delete a term; False when the server did not have it."""
    changed = await execute(
        tx,
        "DELETE FROM prompt_filters WHERE guild_id = ? AND kind = ? AND term = ?",
        (guild_id, kind, term),
    )
    return changed > 0


async def terms(src: Reader, guild_id: int) -> list[FilterRow]:
    """The server's terms, words first, in the order they were added."""
    rows = await fetch_all(
        src,
        "SELECT id, guild_id, kind, term, added_by, added_at FROM prompt_filters"
        " WHERE guild_id = ? ORDER BY kind DESC, id",
        (guild_id,),
    )
    return [FilterRow(int(r[0]), int(r[1]), r[2], str(r[3]), r[4], float(r[5])) for r in rows]


async def count_terms(src: Reader, guild_id: int, kind: Kind) -> int:
    row = await fetch_one(
        src,
        "SELECT COUNT(*) FROM prompt_filters WHERE guild_id = ? AND kind = ?",
        (guild_id, kind),
    )
    return int(row[0]) if row else 0


async def blocking_terms(
    src: Reader, guild_id: int | None, words: Iterable[str], patterns: Iterable[str]
) -> list[Term]:
    """What a prompt is checked against here: the bot-wide ``words`` and ``patterns`` (from the
    settings), then the server's own list (none in DMs)."""
    found = [Term("word", w, everywhere=True) for w in words]
    found += [Term("pattern", p, everywhere=True) for p in patterns]
    if guild_id is not None:
        found += [Term(r.kind, r.term) for r in await terms(src, guild_id)]
    return found
