"""What server admins control (DESIGN §5), as a core API the /flexadmin cogs call.

Every change is written together with an ``audit`` row naming who made it, in one transaction.
Access gates (allowed channels, required role, DMs) and the safety policy per channel are read
here too, so the member-facing cogs ask one place. ``guild_id=None`` means bot-wide (the owner's).
Limits and credit are in :mod:`bot.admin_limits`, which :class:`Admin` builds on.

The core speaks in facts: a change returns what it did (``LimitChanged``, ``BlockChanged``, ...)
with member, role and channel ids, and the cogs word it (with Discord mentions). Only the words
that name nobody are written here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.admin_community import CommunityControls
from bot.admin_facts import (
    BlockChanged,
    ChannelsChanged,
    GateRefused,
    PauseChanged,
    RoleChanged,
    SafetyChanged,
    SafetyPolicy,
    SettingRow,
)

# Re-exported: the /flexadmin cogs parse and word limits with these.
from bot.admin_limits import LIMIT_WORDS as LIMIT_WORDS
from bot.admin_limits import guild_key
from bot.admin_limits import parse_limit_value as parse_limit_value
from bot.admin_limits import parse_money as parse_money
from bot.admin_report import settings_report
from bot.engine import usage as usage_q
from bot.errors import UserError
from bot.model import DEFAULT_SAFETY_TOLERANCE, AuditRow, SafetyTolerance, UsagePeriod
from bot.store import access as access_repo
from bot.store import audit as audit_repo
from bot.store import policy as policy_repo
from bot.store import prefs as prefs_repo


class Admin(CommunityControls):
    """Policy reads for the gates and audited policy changes for /flexadmin.

    Limits and credit come from :class:`bot.admin_limits.LimitControls`; the prompt filter,
    flagged outputs and channel defaults from :class:`bot.admin_community.CommunityControls`.
    """

    # -- gates -------------------------------------------------------------------------------

    async def channel_gate(
        self,
        guild_id: int | None,
        channel_id: int,
        role_ids: Sequence[int],
        channel_is_nsfw: bool,
    ) -> None:
        """DMs on/off, allowed channels (none stored = all) and the required role.

        Raises GateRefused (``limit`` dms, channel or role) when the member may not go on.
        """
        if guild_id is None:
            if self.settings.allow_dms:
                return
            raise GateRefused(
                "Flexbot works in servers only; use it in a server channel.", limit="dms"
            )
        allowed = await policy_repo.allowed_channels(self.db, guild_id)
        if allowed and channel_id not in allowed:
            raise GateRefused(
                "Flexbot is not enabled in this channel.",
                limit="channel",
                channel_ids=tuple(allowed[:5]),
            )
        role = await policy_repo.required_role(self.db, guild_id)
        if role is not None and role not in role_ids:
            raise GateRefused(
                "You need a particular role to use Flexbot here.", limit="role", role_id=role
            )

    async def safety_limits(
        self, guild_id: int | None, channel_id: int, channel_is_nsfw: bool
    ) -> SafetyPolicy:
        """The channel override, else the server default, else tolerance "2" with checker on."""
        if guild_id is None:
            return SafetyPolicy(DEFAULT_SAFETY_TOLERANCE, False)
        rows = await policy_repo.safety_rows(self.db, guild_id, channel_id)
        chosen = next((r for r in rows if r.channel_id == channel_id), None) or next(
            (r for r in rows if r.channel_id == policy_repo.GUILD_DEFAULT), None
        )
        if chosen is None:
            return SafetyPolicy(DEFAULT_SAFETY_TOLERANCE, False)
        return SafetyPolicy(chosen.max_tolerance, channel_is_nsfw and chosen.checker_off_allowed)

    # -- access ------------------------------------------------------------------------------

    async def block(
        self, actor_id: int, guild_id: int | None, user_id: int, reason: str | None = None
    ) -> BlockChanged:
        if user_id == actor_id:
            raise UserError("You cannot block yourself.")
        async with self.db.transaction() as tx:
            await access_repo.set_blocked(tx, guild_key(guild_id), user_id, True, actor_id, reason)
            await self._audit(tx, guild_id, actor_id, "block", user=user_id, reason=reason)
        return BlockChanged(user_id, blocked=True, everywhere=guild_id is None)

    async def unblock(self, actor_id: int, guild_id: int | None, user_id: int) -> BlockChanged:
        async with self.db.transaction() as tx:
            await access_repo.set_blocked(tx, guild_key(guild_id), user_id, False, actor_id)
            await self._audit(tx, guild_id, actor_id, "unblock", user=user_id)
        return BlockChanged(user_id, blocked=False, everywhere=guild_id is None)

    async def pause(
        self, actor_id: int, guild_id: int | None, reason: str | None = None
    ) -> PauseChanged:
        """Refuse new edits (queued and running ones finish)."""
        async with self.db.transaction() as tx:
            await access_repo.set_paused(tx, guild_key(guild_id), True, actor_id, reason)
            await self._audit(tx, guild_id, actor_id, "pause", reason=reason)
        return PauseChanged(paused=True, everywhere=guild_id is None)

    async def resume(self, actor_id: int, guild_id: int | None) -> PauseChanged:
        async with self.db.transaction() as tx:
            await access_repo.set_paused(tx, guild_key(guild_id), False, actor_id)
            await self._audit(tx, guild_id, actor_id, "resume")
        return PauseChanged(paused=False, everywhere=guild_id is None)

    async def set_allowed_channels(
        self, actor_id: int, guild_id: int, channel_ids: Sequence[int]
    ) -> ChannelsChanged:
        """Replace the allowed channels; an empty list allows every channel."""
        async with self.db.transaction() as tx:
            await policy_repo.set_allowed_channels(tx, guild_id, channel_ids, actor_id)
            await self._audit(
                tx, guild_id, actor_id, "set_allowed_channels", channels=list(channel_ids)
            )
        return ChannelsChanged(tuple(channel_ids))

    async def allow_channel(
        self, actor_id: int, guild_id: int, channel_id: int, allowed: bool
    ) -> ChannelsChanged:
        """Add a channel to, or remove it from, the allowed list."""
        current = await policy_repo.allowed_channels(self.db, guild_id)
        if allowed:
            wanted = [*current, channel_id]
        else:
            if not current:
                raise UserError(
                    "Every channel is allowed; first allow the channels Flexbot should use."
                )
            wanted = [c for c in current if c != channel_id]
            if not wanted:
                raise UserError("That would leave no channel; use `channels-reset` to allow all.")
        return await self.set_allowed_channels(actor_id, guild_id, wanted)

    async def set_required_role(
        self, actor_id: int, guild_id: int, role_id: int | None
    ) -> RoleChanged:
        async with self.db.transaction() as tx:
            await policy_repo.set_required_role(tx, guild_id, role_id, actor_id)
            await self._audit(tx, guild_id, actor_id, "set_required_role", role=role_id)
        return RoleChanged(role_id)

    async def set_safety(
        self,
        actor_id: int,
        guild_id: int,
        channel_id: int | None,
        max_tolerance: SafetyTolerance | str,
        checker_off_allowed: bool = False,
        *,
        channel_is_nsfw: bool = False,
    ) -> SafetyChanged:
        """Highest tolerance for a channel (or the server default with no channel)."""
        if max_tolerance not in tuple(SafetyTolerance):
            raise UserError("Safety tolerance is 1 (strictest) to 5 (most permissive).")
        tolerance = SafetyTolerance(max_tolerance)
        if checker_off_allowed and channel_id is not None and not channel_is_nsfw:
            raise UserError(
                "The safety checker may only be switched off in age-restricted channels."
            )
        target = policy_repo.GUILD_DEFAULT if channel_id is None else channel_id
        async with self.db.transaction() as tx:
            await policy_repo.set_safety(
                tx, guild_id, target, tolerance, checker_off_allowed, actor_id
            )
            await self._audit(
                tx,
                guild_id,
                actor_id,
                "set_safety",
                channel=channel_id,
                max_tolerance=tolerance,
                checker_off_allowed=checker_off_allowed,
            )
        return SafetyChanged(channel_id, tolerance, checker_off_allowed)

    async def clear_safety(self, actor_id: int, guild_id: int, channel_id: int) -> SafetyChanged:
        async with self.db.transaction() as tx:
            await policy_repo.clear_safety(tx, guild_id, channel_id)
            await self._audit(tx, guild_id, actor_id, "clear_safety", channel=channel_id)
        return SafetyChanged(channel_id, None)

    async def set_remix_opt_out(self, user_id: int, opt_out: bool) -> str:
        """A member's own choice: others may (not) use their images as references."""
        async with self.db.transaction() as tx:
            await prefs_repo.set_remix_opt_out(tx, user_id, opt_out)
            await self._audit(tx, None, user_id, "remix_opt_out", opt_out=opt_out)
        if opt_out:
            return "Others can no longer remix your images or results."
        return "Others may remix your images and results again."

    async def remix_opted_out(self, user_id: int) -> bool:
        return await prefs_repo.remix_opted_out(self.db, user_id)

    # -- reports ------------------------------------------------------------------------------

    async def settings_report(self, guild_id: int | None) -> list[SettingRow]:
        """The settings a server's admins may see, then this server's own overrides."""
        return await settings_report(self.db, self.settings, guild_id)

    async def usage_report(
        self, guild_id: int | None, period: UsagePeriod | str = UsagePeriod.MONTH, *, top: int = 10
    ) -> usage_q.UsageReport:
        """Totals, top members and channels for ``today``, ``month``, ``last30`` or ``all``."""
        return await usage_q.usage_report(
            self.db, guild_id, usage_q.period(period, self.clock()), top=top
        )

    async def export_csv(
        self, guild_id: int | None, period: UsagePeriod | str = UsagePeriod.MONTH
    ) -> str:
        """One CSV row per job; ``amount_usd`` sums to the ledger total of the period."""
        return await usage_q.export_csv(self.db, guild_id, usage_q.period(period, self.clock()))

    async def audit_log(self, guild_id: int | None, limit: int = 20) -> list[AuditRow]:
        return await audit_repo.audit_rows(self.db, guild_id, limit)
