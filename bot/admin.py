"""What server admins control (DESIGN §5), as a core API the /flexadmin cogs call.

Every change is written together with an ``audit`` row naming who made it, in one transaction.
Access gates (allowed channels, required role, DMs) and the safety policy per channel are read
here too, so the member-facing cogs ask one place. ``guild_id=None`` means bot-wide (the owner's).

The core speaks in facts: a change returns what it did (``LimitChanged``, ``BlockChanged``, ...)
with member, role and channel ids, and the cogs word it (with Discord mentions). Only the words
that name nobody are written here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import InvalidOperation
from typing import Any

from bot.admin_facts import (
    BlockChanged,
    ChannelsChanged,
    CreditChanged,
    GateRefused,
    LimitChanged,
    PauseChanged,
    RoleChanged,
    SafetyChanged,
    SafetyPolicy,
    SettingRow,
)
from bot.admin_report import settings_report, show_limit
from bot.engine import quota
from bot.engine import usage as usage_q
from bot.engine.quota import COUNT_LIMITS, LIMIT_NAMES, MONEY_LIMITS
from bot.errors import UserError
from bot.model import (
    DEFAULT_SAFETY_TOLERANCE,
    AuditRow,
    LimitScope,
    SafetyTolerance,
    UsagePeriod,
    micros_from_usd,
    usd,
)
from bot.settings import UNLIMITED, Settings
from bot.store import access as access_repo
from bot.store import audit as audit_repo
from bot.store import credits as credits_repo
from bot.store import limits as limits_repo
from bot.store import policy as policy_repo
from bot.store import prefs as prefs_repo
from bot.store.db import Database, Tx

MEMBER_LIMITS = frozenset(LIMIT_NAMES) - {"guild_monthly_cap", "global_monthly_cap"}
LIMIT_WORDS = {
    "user_daily_cap": "member daily cap",
    "user_monthly_cap": "member monthly cap",
    "guild_monthly_cap": "server monthly cap",
    "global_monthly_cap": "bot-wide monthly cap",
    "user_max_queued": "max queued jobs per member",
    "user_max_running": "max running jobs per member",
    "user_cooldown_seconds": "cooldown between edits (s)",
}
#: How a refusal names the owner's ceiling a server tried to go over.
CEILING_WORDS = {
    "user_daily_cap": "member daily cap",
    "user_monthly_cap": "member monthly cap",
    "guild_monthly_cap": "this server's monthly cap",
    "user_max_queued": "queued jobs per member",
    "user_max_running": "running jobs per member",
}


def parse_money(text: str, *, allow_unlimited: bool = False) -> int | None:
    """Dollars as typed by an admin ("1.50", "$2") into micro-dollars, exactly."""
    cleaned = text.strip().lstrip("$").strip()
    if allow_unlimited and cleaned.lower() in (UNLIMITED, "none", "off"):
        return None
    try:
        micros = micros_from_usd(cleaned)
    except (InvalidOperation, ValueError):
        extra = ' or "unlimited"' if allow_unlimited else ""
        raise UserError(f"{text!r} is not an amount; use dollars such as 1.50{extra}.") from None
    if micros < 0:
        raise UserError("Amounts cannot be negative.")
    return micros


def parse_limit_value(name: str, text: str) -> int | None:
    """A limit's value: dollars for money caps, a whole number for counts and seconds."""
    if name in MONEY_LIMITS:
        return parse_money(text, allow_unlimited=True)
    cleaned = text.strip().lower()
    if cleaned in (UNLIMITED, "none") and name != "user_cooldown_seconds":
        return None
    if not cleaned.isdigit():
        raise UserError(f"{LIMIT_WORDS.get(name, name)} takes a whole number, not {text!r}.")
    return int(cleaned)


def _gid(guild_id: int | None) -> int:
    return guild_id or limits_repo.GLOBAL


def _credit_refusal(have: int, bound: int) -> UserError:
    room = max(0, bound - have)
    rule = f"the bot's owner allows at most {usd(bound)} of credit per member per month"
    if not have:
        text = f"{rule[0].upper()}{rule[1:]}; grant {usd(room)} or less."
    elif room:
        text = f"That member already has {usd(have)} of credit this month; {rule}, so grant "
        text += f"{usd(room)} or less."
    else:
        text = f"That member already has {usd(have)} of credit this month; {rule}."
    return UserError(text, limit="max_credit_grant", remaining=room)


class Admin:
    """Policy reads for the gates and audited policy changes for /flexadmin."""

    def __init__(
        self, db: Database, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    async def _audit(
        self, tx: Tx, guild_id: int | None, actor_id: int, action: str, **detail: Any
    ) -> None:
        await audit_repo.record(tx, guild_id, actor_id, action, detail)

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

    # -- limits and money --------------------------------------------------------------------

    async def set_limit(
        self,
        actor_id: int,
        guild_id: int | None,
        name: str,
        value: int | None,
        *,
        user_id: int | None = None,
        role_id: int | None = None,
    ) -> LimitChanged:
        """Override one limit for a member, a role, the server (or bot-wide with no guild)."""
        scope, target = self._scope(guild_id, name, user_id, role_id)
        self._check_value(name, value)
        async with self.db.transaction() as tx:
            if scope != LimitScope.GLOBAL:
                await self._check_owner_bound(tx, name, value)
            await limits_repo.set_limit(tx, scope, _gid(guild_id), target, name, value, actor_id)
            await self._audit(
                tx,
                guild_id,
                actor_id,
                "set_limit",
                scope=scope,
                target=target,
                name=name,
                value=value,
            )
        return LimitChanged(name, scope, target, value)

    async def clear_limit(
        self,
        actor_id: int,
        guild_id: int | None,
        name: str,
        *,
        user_id: int | None = None,
        role_id: int | None = None,
    ) -> LimitChanged:
        """Remove an override so the next level (role, server, default) applies again."""
        scope, target = self._scope(guild_id, name, user_id, role_id)
        async with self.db.transaction() as tx:
            await limits_repo.clear_limit(tx, scope, _gid(guild_id), target, name)
            await self._audit(
                tx, guild_id, actor_id, "clear_limit", scope=scope, target=target, name=name
            )
        return LimitChanged(name, scope, target, None, cleared=True)

    def _scope(
        self, guild_id: int | None, name: str, user_id: int | None, role_id: int | None
    ) -> tuple[LimitScope, int]:
        if name not in LIMIT_NAMES:
            raise UserError(f"Unknown limit {name!r}; one of {', '.join(LIMIT_NAMES)}.")
        if user_id is not None and role_id is not None:
            raise UserError("Pick a member or a role, not both.")
        if user_id is not None or role_id is not None:
            if name not in MEMBER_LIMITS:
                raise UserError(f"{LIMIT_WORDS[name]} applies to a whole server, not a member.")
            if guild_id is None:
                raise UserError("Member and role limits are set inside a server.")
            if user_id is not None:
                return LimitScope.USER, user_id
            return LimitScope.ROLE, role_id or 0
        if guild_id is None:
            return LimitScope.GLOBAL, 0
        if name == "global_monthly_cap":
            raise UserError("The bot-wide monthly cap is the bot owner's setting.")
        return LimitScope.GUILD, 0

    @staticmethod
    def _check_value(name: str, value: int | None) -> None:
        if value is None:
            if name == "user_cooldown_seconds":
                raise UserError("The cooldown cannot be unlimited; use 0 to switch it off.")
            return
        if value < 0:
            raise UserError(f"{LIMIT_WORDS[name]} cannot be negative.")
        if name in ("user_max_queued", "user_max_running") and value < 1:
            raise UserError(f"{LIMIT_WORDS[name]} must be at least 1; block the member instead.")
        if name in COUNT_LIMITS and value > 1_000_000:
            raise UserError(f"{LIMIT_WORDS[name]} is too large.")

    async def _check_owner_bound(self, tx: Tx, name: str, value: int | None) -> None:
        """Refuse a server's, role's or member's value the owner's does not allow.

        The owner's value is a global override, else the setting; resolve_limits clamps to the
        same bound, so this refusal tells the admin what the engine would do anyway.
        """
        rows = await limits_repo.guild_overrides(tx, limits_repo.GLOBAL)
        owner = quota.owner_limits(
            quota.default_limits(self.settings),
            [(r.scope, r.target_id, r.name, r.value) for r in rows],
        )
        bound = owner[name]
        if quota.within_owner_bound(name, value, bound) == value:
            return
        if name in quota.FLOOR_LIMITS:
            raise UserError(
                f"The bot's owner requires at least {bound} s between edits; pick {bound} or more.",
                limit=name,
            )
        shown = show_limit(name, bound)
        raise UserError(
            f"The bot's owner set the {CEILING_WORDS[name]} ceiling at {shown}; "
            f"pick {shown} or less.",
            limit=name,
        )

    async def grant_credit(
        self, actor_id: int, guild_id: int, user_id: int, amount_micros: int, reason: str | None
    ) -> CreditChanged:
        """Extra allowance for a member this month, on top of their own caps.

        The member's net credit this month on this server (grants less revocations) stays at or
        under ``max_credit_grant``. A bound per month rather than per grant, because the bill
        grows with the total; net, because credit counts against spending that only adds up over
        the month, so revoking and granting again gives no more than one grant would. Credit
        never raises the server's or the bot's monthly cap (quota.check_budget).
        """
        if amount_micros <= 0:
            raise UserError("Grant a positive amount, such as 1.50.")
        bound = self.settings.max_credit_grant
        month = quota.month_start(self.clock()).timestamp()
        async with self.db.transaction() as tx:
            have = await credits_repo.credits_since(tx, guild_id, user_id, month)
            if have + amount_micros > bound:
                raise _credit_refusal(have, bound)
            await credits_repo.grant_credit(tx, guild_id, user_id, amount_micros, actor_id, reason)
            await self._audit(
                tx,
                guild_id,
                actor_id,
                "grant_credit",
                user=user_id,
                amount=amount_micros,
                reason=reason,
            )
        return CreditChanged(user_id, amount_micros, granted=True)

    async def revoke_credit(
        self, actor_id: int, guild_id: int, user_id: int, amount_micros: int, reason: str | None
    ) -> CreditChanged:
        """Take back credit granted this month (never below zero)."""
        if amount_micros <= 0:
            raise UserError("Revoke a positive amount, such as 1.50.")
        month = quota.month_start(self.clock()).timestamp()
        async with self.db.transaction() as tx:
            have = await credits_repo.credits_since(tx, guild_id, user_id, month)
            taken = min(have, amount_micros)
            if taken == 0:
                raise UserError("That member has no credit this month.", remaining=0)
            await credits_repo.grant_credit(tx, guild_id, user_id, -taken, actor_id, reason)
            await self._audit(
                tx,
                guild_id,
                actor_id,
                "revoke_credit",
                user=user_id,
                amount=taken,
                reason=reason,
            )
        return CreditChanged(user_id, taken, granted=False, left_micros=have - taken)

    # -- access ------------------------------------------------------------------------------

    async def block(
        self, actor_id: int, guild_id: int | None, user_id: int, reason: str | None = None
    ) -> BlockChanged:
        if user_id == actor_id:
            raise UserError("You cannot block yourself.")
        async with self.db.transaction() as tx:
            await access_repo.set_blocked(tx, _gid(guild_id), user_id, True, actor_id, reason)
            await self._audit(tx, guild_id, actor_id, "block", user=user_id, reason=reason)
        return BlockChanged(user_id, blocked=True, everywhere=guild_id is None)

    async def unblock(self, actor_id: int, guild_id: int | None, user_id: int) -> BlockChanged:
        async with self.db.transaction() as tx:
            await access_repo.set_blocked(tx, _gid(guild_id), user_id, False, actor_id)
            await self._audit(tx, guild_id, actor_id, "unblock", user=user_id)
        return BlockChanged(user_id, blocked=False, everywhere=guild_id is None)

    async def pause(
        self, actor_id: int, guild_id: int | None, reason: str | None = None
    ) -> PauseChanged:
        """Refuse new edits (queued and running ones finish)."""
        async with self.db.transaction() as tx:
            await access_repo.set_paused(tx, _gid(guild_id), True, actor_id, reason)
            await self._audit(tx, guild_id, actor_id, "pause", reason=reason)
        return PauseChanged(paused=True, everywhere=guild_id is None)

    async def resume(self, actor_id: int, guild_id: int | None) -> PauseChanged:
        async with self.db.transaction() as tx:
            await access_repo.set_paused(tx, _gid(guild_id), False, actor_id)
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
