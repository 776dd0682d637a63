"""The facts the admin core returns: what a change did, why a gate said no, a settings line.

Members, roles and channels appear as ids (``Ids``, ``LimitSource``); the cogs turn them into
Discord mentions, so the core writes no markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.quota import LimitSource
from bot.errors import UserError
from bot.i18n import Text
from bot.model import LimitScope, SafetyTolerance
from bot.params import ChannelDefaults


class GateRefused(UserError):
    """The channel gate's no. The message names nobody; ``channel_ids`` (where Flexbot is
    allowed) and ``role_id`` (the role needed) let a front end name them."""

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        channel_ids: tuple[int, ...] = (),
        role_id: int | None = None,
    ) -> None:
        super().__init__(message, limit=limit)
        self.channel_ids = channel_ids
        self.role_id = role_id


@dataclass(frozen=True)
class SafetyPolicy:
    """The loosest safety a member may ask for in one channel."""

    max_tolerance: SafetyTolerance
    checker_may_be_off: bool


@dataclass(frozen=True, slots=True)
class Ids:
    """Members, roles or channels by id, for a front end to name (``kind``: member|role|channel)."""

    kind: str
    ids: tuple[int, ...]


#: A value or a source in the settings report: plain words, words with values to translate
#: (``Text``), or ids to name.
Shown = str | Text | Ids


@dataclass(frozen=True)
class SettingRow:
    """One line of /flexadmin settings: name, effective value, where it comes from."""

    key: str
    value: Shown
    source: Shown | LimitSource


@dataclass(frozen=True, slots=True)
class LimitChanged:
    """A limit override was set (``value``; None = unlimited) or cleared."""

    name: str
    scope: LimitScope
    target_id: int  # the member or role; 0 for a server or bot-wide override
    value: int | None
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class CreditChanged:
    """Credit granted to (or revoked from) a member this month; ``left`` after a revoke."""

    user_id: int
    amount_micros: int
    granted: bool
    left_micros: int | None = None


@dataclass(frozen=True, slots=True)
class BlockChanged:
    user_id: int
    blocked: bool
    everywhere: bool


@dataclass(frozen=True, slots=True)
class PauseChanged:
    paused: bool
    everywhere: bool


@dataclass(frozen=True, slots=True)
class ChannelsChanged:
    """The allowed channels now (empty: every channel)."""

    channel_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The role members now need (None: no role needed)."""

    role_id: int | None


@dataclass(frozen=True, slots=True)
class SafetyChanged:
    """A channel's (None: the server default's) highest tolerance; None tolerance = cleared."""

    channel_id: int | None
    max_tolerance: SafetyTolerance | None
    checker_off_allowed: bool = False


@dataclass(frozen=True, slots=True)
class FilterChanged:
    """A blocked word/phrase or pattern added or removed; ``changed`` False: nothing to do
    (already there, or not there)."""

    kind: str
    term: str
    added: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class FlaggedChanged:
    """How outputs fal's safety checker flagged are shown in a channel now."""

    channel_id: int
    show: str  # hide | spoiler


@dataclass(frozen=True, slots=True)
class DefaultsChanged:
    """A channel's defaults now (all None: the bot's defaults)."""

    channel_id: int
    defaults: ChannelDefaults


AdminChange = (
    LimitChanged
    | CreditChanged
    | BlockChanged
    | PauseChanged
    | ChannelsChanged
    | RoleChanged
    | SafetyChanged
    | FilterChanged
    | FlaggedChanged
    | DefaultsChanged
)
