"""The channel_settings table: a channel's default edit options and how a flagged output is
shown there (``hide`` or ``spoiler``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.store.db import Reader, Row, Tx, execute, fetch_all, fetch_one

FlaggedOutput = Literal["hide", "spoiler"]
FLAGGED_CHOICES: tuple[FlaggedOutput, ...] = ("hide", "spoiler")
#: The columns a /flexadmin defaults command may set (NULL: the bot's default).
DEFAULT_COLUMNS = (
    "default_steps",
    "default_guidance",
    "default_size",
    "default_format",
    "default_safety",
)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """One channel's stored choices; None fields follow the bot's defaults."""

    guild_id: int
    channel_id: int
    steps: int | None = None
    guidance: float | None = None
    size: str | None = None
    output_format: str | None = None
    safety: str | None = None
    flagged_output: FlaggedOutput = "hide"

    @property
    def has_defaults(self) -> bool:
        return any(
            v is not None
            for v in (self.steps, self.guidance, self.size, self.output_format, self.safety)
        )


_SELECT = (
    "SELECT guild_id, channel_id, default_steps, default_guidance, default_size, default_format,"
    " default_safety, flagged_output FROM channel_settings"
)


def _row(row: Row) -> ChannelSettings:
    return ChannelSettings(
        guild_id=int(row[0]),
        channel_id=int(row[1]),
        steps=None if row[2] is None else int(row[2]),
        guidance=None if row[3] is None else float(row[3]),
        size=row[4],
        output_format=row[5],
        safety=row[6],
        flagged_output="spoiler" if row[7] == "spoiler" else "hide",
    )


async def channel_settings(src: Reader, guild_id: int, channel_id: int) -> ChannelSettings:
    """The channel's row, or an all-default one."""
    row = await fetch_one(
        src, _SELECT + " WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
    )
    return _row(row) if row is not None else ChannelSettings(guild_id, channel_id)


async def guild_channels(src: Reader, guild_id: int) -> list[ChannelSettings]:
    rows = await fetch_all(src, _SELECT + " WHERE guild_id = ? ORDER BY channel_id", (guild_id,))
    return [_row(r) for r in rows]


async def set_defaults(
    tx: Tx, guild_id: int, channel_id: int, values: Mapping[str, object], actor: int | None
) -> None:
    """Set some default columns (``DEFAULT_COLUMNS`` names; None clears one)."""
    unknown = set(values) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ValueError(f"not a channel default: {sorted(unknown)}")
    await _ensure(tx, guild_id, channel_id, actor)
    for column, value in values.items():
        # column is one of DEFAULT_COLUMNS (checked above), never member input
        await execute(
            tx,
            f"UPDATE channel_settings SET {column} = ?, set_by = ?, set_at = ?"
            " WHERE guild_id = ? AND channel_id = ?",
            (value, actor, time.time(), guild_id, channel_id),
        )


async def clear_defaults(tx: Tx, guild_id: int, channel_id: int, actor: int | None) -> None:
    """Every default of the channel back to the bot's (the flagged-output choice stays)."""
    await execute(
        tx,
        "UPDATE channel_settings SET default_steps = NULL, default_guidance = NULL,"
        " default_size = NULL, default_format = NULL, default_safety = NULL, set_by = ?,"
        " set_at = ? WHERE guild_id = ? AND channel_id = ?",
        (actor, time.time(), guild_id, channel_id),
    )


async def set_flagged_output(
    tx: Tx, guild_id: int, channel_id: int, choice: FlaggedOutput, actor: int | None
) -> None:
    await _ensure(tx, guild_id, channel_id, actor)
    await execute(
        tx,
        "UPDATE channel_settings SET flagged_output = ?, set_by = ?, set_at = ?"
        " WHERE guild_id = ? AND channel_id = ?",
        (choice, actor, time.time(), guild_id, channel_id),
    )


async def _ensure(tx: Tx, guild_id: int, channel_id: int, actor: int | None) -> None:
    await execute(
        tx,
        "INSERT INTO channel_settings (guild_id, channel_id, set_by, set_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (guild_id, channel_id) DO NOTHING",
        (guild_id, channel_id, actor, time.time()),
    )
