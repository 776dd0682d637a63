"""The user_prefs table: a member's own choices (others may not remix their images; their
results stay out of the web gallery)."""

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


async def set_gallery_opt_out(tx: Tx, user_id: int, opt_out: bool) -> None:
    await execute(
        tx,
        "INSERT INTO user_prefs (user_id, gallery_opt_out) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET gallery_opt_out = excluded.gallery_opt_out",
        (user_id, int(opt_out)),
    )


async def gallery_opted_out(src: Reader, user_id: int) -> bool:
    row = await fetch_one(
        src, "SELECT gallery_opt_out FROM user_prefs WHERE user_id = ?", (user_id,)
    )
    return bool(row and row[0])
