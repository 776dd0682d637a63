"""The user_prefs table: a member's own choices (today: others may not remix their images)."""

from __future__ import annotations

from bot.store.db import Reader, Tx, execute, fetch_one


async def set_remix_opt_out(tx: Tx, user_id: int, opt_out: bool) -> None:
    await execute(
        tx,
        "INSERT INTO user_prefs (user_id, remix_opt_out) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET remix_opt_out = excluded.remix_opt_out",
        (user_id, int(opt_out)),
    )


async def remix_opted_out(src: Reader, user_id: int) -> bool:
    row = await fetch_one(src, "SELECT remix_opt_out FROM user_prefs WHERE user_id = ?", (user_id,))
    return bool(row and row[0])
