"""What a server's admins control about content (issue 14): the prompt filter, how an output
fal's safety checker flagged is shown per channel, and each channel's default edit options.

Every change is written with its ``audit`` row in one transaction, like the other admin changes
(:mod:`bot.admin_limits`); :class:`bot.admin.Admin` is the facade the cogs call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.admin_facts import DefaultsChanged, FilterChanged, FlaggedChanged
from bot.admin_limits import LimitControls
from bot.errors import UserError
from bot.model import DEFAULT_SAFETY_TOLERANCE
from bot.params import ChannelDefaults, ParamLimits, check_channel_defaults
from bot.prompt_filter import KINDS, Hit, Kind, check_pattern, check_term, find_blocked
from bot.store import channels as channels_repo
from bot.store import filters as filters_repo
from bot.store import policy as policy_repo
from bot.store.channels import FLAGGED_CHOICES, ChannelSettings, FlaggedOutput

#: How many terms of each kind one server may keep (each admission scans them all).
MAX_TERMS: dict[Kind, int] = {"word": 500, "pattern": 50}

# Admin-facing words: templates with named placeholders, for the message catalogues.
UNKNOWN_KIND = "A filter entry is a word (or phrase) or a pattern."
TOO_MANY_TERMS: dict[Kind, str] = {
    "word": "This server already has {count} blocked words, the most it may keep.",
    "pattern": "This server already has {count} blocked patterns, the most it may keep.",
}
SPOILER_NEEDS_NSFW = (
    "Flagged images can be shown as spoilers only in age-restricted channels; "
    "<#{channel}> is not one."
)
UNKNOWN_FLAGGED = "Choose hide or spoiler."
NO_DEFAULTS_GIVEN = "Give at least one default to set, or use `clear`."
SAFETY_DEFAULT_TOO_HIGH = (
    "The default safety tolerance {safety} is above the highest allowed in that channel "
    "({highest}); pick {highest} or lower, or raise the channel's limit with /flexadmin safety."
)


@dataclass(frozen=True, slots=True)
class FilterList:
    """A server's blocked terms and how many the bot's owner blocks everywhere."""

    words: tuple[str, ...]
    patterns: tuple[str, ...]
    bot_wide: int


class CommunityControls(LimitControls):
    """Prompt filter, flagged outputs and channel defaults: a part of :class:`bot.admin.Admin`."""

    # -- prompt filter ---------------------------------------------------------------------------

    async def filter_add(self, actor_id: int, guild_id: int, kind: str, text: str) -> FilterChanged:
        """Block a word/phrase or an RE2 pattern on this server (checked before it is stored)."""
        term_kind = _kind(kind)
        term = check_term(text) if term_kind == "word" else check_pattern(text)
        async with self.db.transaction() as tx:
            count = await filters_repo.count_terms(tx, guild_id, term_kind)
            if count >= MAX_TERMS[term_kind]:
                raise UserError.of(TOO_MANY_TERMS[term_kind], limit="prompt_filter", count=count)
            added = await filters_repo.add_term(tx, guild_id, term_kind, term, actor_id)
            if added:
                await self._audit(tx, guild_id, actor_id, "filter_add", kind=term_kind, term=term)
        return FilterChanged(term_kind, term, added=True, changed=added)

    async def filter_remove(
        self, actor_id: int, guild_id: int, kind: str, text: str
    ) -> FilterChanged:
        term_kind = _kind(kind)
        term = " ".join(text.split()) if term_kind == "word" else text.strip()
        async with self.db.transaction() as tx:
            removed = await filters_repo.remove_term(tx, guild_id, term_kind, term)
            if removed:
                await self._audit(
                    tx, guild_id, actor_id, "filter_remove", kind=term_kind, term=term
                )
        return FilterChanged(term_kind, term, added=False, changed=removed)

    async def filter_list(self, guild_id: int) -> FilterList:
        rows = await filters_repo.terms(self.db, guild_id)
        return FilterList(
            tuple(r.term for r in rows if r.kind == "word"),
            tuple(r.term for r in rows if r.kind == "pattern"),
            len(self.settings.blocked_terms) + len(self.settings.blocked_patterns),
        )

    async def filter_test(self, guild_id: int, prompt: str) -> Hit | None:
        """What the filter would say about a prompt here (the bot-wide list included)."""
        terms = await filters_repo.blocking_terms(
            self.db, guild_id, self.settings.blocked_terms, self.settings.blocked_patterns
        )
        return find_blocked(prompt, terms)

    # -- flagged outputs -------------------------------------------------------------------------

    async def set_flagged_output(
        self,
        actor_id: int,
        guild_id: int,
        channel_id: int,
        choice: str,
        *,
        channel_is_nsfw: bool,
    ) -> FlaggedChanged:
        """How an output fal's safety checker flagged is shown in a channel.

        ``hide`` (the default) posts no image; ``spoiler`` posts it behind Discord's spoiler,
        and only in an age-restricted channel (delivery checks the channel again each time).
        """
        if choice not in FLAGGED_CHOICES:
            raise UserError(UNKNOWN_FLAGGED)
        flagged: FlaggedOutput = "spoiler" if choice == "spoiler" else "hide"
        if flagged == "spoiler" and not channel_is_nsfw:
            raise UserError.of(SPOILER_NEEDS_NSFW, channel=channel_id)
        async with self.db.transaction() as tx:
            await channels_repo.set_flagged_output(tx, guild_id, channel_id, flagged, actor_id)
            await self._audit(
                tx, guild_id, actor_id, "set_flagged_output", channel=channel_id, show=flagged
            )
        return FlaggedChanged(channel_id, flagged)

    async def flagged_output(self, guild_id: int | None, channel_id: int | None) -> FlaggedOutput:
        """The admins' stored choice for the channel (``hide`` unless they chose otherwise)."""
        if guild_id is None or channel_id is None:
            return "hide"
        return (await channels_repo.channel_settings(self.db, guild_id, channel_id)).flagged_output

    async def flagged_display(
        self, guild_id: int | None, channel_id: int | None, channel_is_nsfw: bool
    ) -> FlaggedOutput:
        """How a flagged output may be shown in this channel now: as a spoiler only where the
        admins chose so and the channel is age-restricted at this moment; else not at all."""
        if not channel_is_nsfw:
            return "hide"
        return await self.flagged_output(guild_id, channel_id)

    # -- channel defaults ------------------------------------------------------------------------

    async def set_channel_defaults(
        self,
        actor_id: int,
        guild_id: int,
        channel_id: int,
        defaults: ChannelDefaults,
        *,
        channel_is_nsfw: bool = False,
    ) -> DefaultsChanged:
        """Set some of a channel's defaults (the fields given; the others stay)."""
        checked = check_channel_defaults(defaults, ParamLimits.from_settings(self.settings))
        if checked.safety is not None:
            highest = await self._highest_safety(guild_id, channel_id)
            if int(checked.safety) > int(highest):
                raise UserError.of(SAFETY_DEFAULT_TOO_HIGH, safety=checked.safety, highest=highest)
        values = {
            column: value
            for column, value in zip(channels_repo.DEFAULT_COLUMNS, checked.as_tuple(), strict=True)
            if value is not None
        }
        if not values:
            raise UserError(NO_DEFAULTS_GIVEN)
        async with self.db.transaction() as tx:
            await channels_repo.set_defaults(tx, guild_id, channel_id, values, actor_id)
            await self._audit(
                tx, guild_id, actor_id, "set_channel_defaults", channel=channel_id, **values
            )
            now = await channels_repo.channel_settings(tx, guild_id, channel_id)
        return DefaultsChanged(channel_id, _defaults_of(now))

    async def clear_channel_defaults(
        self, actor_id: int, guild_id: int, channel_id: int
    ) -> DefaultsChanged:
        async with self.db.transaction() as tx:
            await channels_repo.clear_defaults(tx, guild_id, channel_id, actor_id)
            await self._audit(tx, guild_id, actor_id, "clear_channel_defaults", channel=channel_id)
        return DefaultsChanged(channel_id, ChannelDefaults())

    async def channel_defaults(
        self, guild_id: int | None, channel_id: int | None
    ) -> ChannelDefaults:
        """The defaults members' edits start from in this channel (none outside a server)."""
        if guild_id is None or channel_id is None:
            return ChannelDefaults()
        row = await channels_repo.channel_settings(self.db, guild_id, channel_id)
        defaults = _defaults_of(row)
        if defaults.safety is not None:
            # The channel's limit may have been lowered since: a default never goes past it.
            highest = await self._highest_safety(guild_id, channel_id)
            if int(defaults.safety) > int(highest):
                defaults = replace(defaults, safety=highest)
        return defaults

    async def _highest_safety(self, guild_id: int, channel_id: int) -> str:
        rows = await policy_repo.safety_rows(self.db, guild_id, channel_id)
        chosen = next((r for r in rows if r.channel_id == channel_id), None) or next(
            (r for r in rows if r.channel_id == policy_repo.GUILD_DEFAULT), None
        )
        return chosen.max_tolerance if chosen is not None else DEFAULT_SAFETY_TOLERANCE


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise UserError(UNKNOWN_KIND)
    return "word" if kind == "word" else "pattern"


def _defaults_of(row: ChannelSettings) -> ChannelDefaults:
    return ChannelDefaults(
        steps=row.steps,
        guidance=row.guidance,
        size=row.size,
        output_format=row.output_format,
        safety=row.safety,
    )
