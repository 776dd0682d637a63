"""The guild_language table: the language a server chose for its public messages."""

from __future__ import annotations

from bot.store.db import Reader, Tx, execute, fetch_one


async def set_language(tx: Tx, guild_id: int, language: str, actor_id: int, now: float) -> None:
    await execute(
        tx,
        "INSERT INTO guild_language (guild_id, language, set_by, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (guild_id) DO UPDATE SET language = excluded.language,"
        " set_by = excluded.set_by, set_at = excluded.set_at",
        (guild_id, language, actor_id, now),
    )


async def clear_language(tx: Tx, guild_id: int) -> None:
    await execute(tx, "DELETE FROM guild_language WHERE guild_id = ?", (guild_id,))


async def language_of(src: Reader, guild_id: int) -> str | None:
    """The server's chosen language, or None (its Discord locale applies)."""
    row = await fetch_one(
        src, "SELECT language FROM guild_language WHERE guild_id = ?", (guild_id,)
    )
    return str(row[0]) if row else None
