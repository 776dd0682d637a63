"""Limits and credit as server admins (and the bot's owner) change them (DESIGN §5).

A server, role or member limit may only tighten the owner's (a cap or count at most the owner's
ceiling, a cooldown at least the owner's floor), and credit is bounded by ``max_credit_grant``
per member per month; a refusal says which bound and what is still allowed. Every change is
written with its ``audit`` row in one transaction. :class:`bot.admin.Admin` is the facade the
cogs call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any

from bot.admin_facts import CreditChanged, LimitChanged
from bot.admin_report import show_limit
from bot.engine import quota
from bot.engine.quota import COUNT_LIMITS, LIMIT_NAMES, MONEY_LIMITS
from bot.errors import UserError
from bot.i18n import Money, Text
from bot.model import LimitScope, micros_from_usd
from bot.settings import UNLIMITED, Settings
from bot.store import audit as audit_repo
from bot.store import credits as credits_repo
from bot.store import limits as limits_repo
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


# Refusals with values: templates with named placeholders, for the message catalogues.
NOT_AN_AMOUNT = "{text} is not an amount; use dollars such as 1.50."
NOT_AN_AMOUNT_OR_UNLIMITED = '{text} is not an amount; use dollars such as 1.50 or "unlimited".'
CREDIT_OVER_BOUND = (
    "The bot's owner allows at most {bound} of credit per member per month; grant {room} or less."
)
CREDIT_HAS_SOME = (
    "That member already has {have} of credit this month; the bot's owner allows at most "
    "{bound} of credit per member per month, so grant {room} or less."
)
CREDIT_HAS_ALL = (
    "That member already has {have} of credit this month; the bot's owner allows at most "
    "{bound} of credit per member per month."
)


def parse_money(text: str, *, allow_unlimited: bool = False) -> int | None:
    """Dollars as typed by an admin ("1.50", "$2") into micro-dollars, exactly."""
    cleaned = text.strip().lstrip("$").strip()
    if allow_unlimited and cleaned.lower() in (UNLIMITED, "none", "off"):
        return None
    try:
        micros = micros_from_usd(cleaned)
    except (InvalidOperation, ValueError):
        template = NOT_AN_AMOUNT_OR_UNLIMITED if allow_unlimited else NOT_AN_AMOUNT
        raise UserError.of(template, text=repr(text)) from None
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
        raise UserError.of(
            "{what} takes a whole number, not {text}.", what=_words(name), text=repr(text)
        )
    return int(cleaned)


def guild_key(guild_id: int | None) -> int:
    """The stored guild id of a change: ``None`` (bot-wide) is kept as limits_repo.GLOBAL."""
    return guild_id or limits_repo.GLOBAL


def _words(name: str) -> Text:
    """A limit's name as a message (the words the /flexadmin limit choices use)."""
    return Text(LIMIT_WORDS.get(name, name))


def _credit_refusal(have: int, bound: int) -> UserError:
    room = max(0, bound - have)
    if not have:
        template = CREDIT_OVER_BOUND
    elif room:
        template = CREDIT_HAS_SOME
    else:
        template = CREDIT_HAS_ALL
    return UserError.of(
        template,
        limit="max_credit_grant",
        remaining=room,
        have=Money(have),
        bound=Money(bound),
        room=Money(room),
    )


class LimitControls:
    """Audited limit and credit changes: the part of :class:`bot.admin.Admin` about spending."""

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
            await limits_repo.set_limit(
                tx, scope, guild_key(guild_id), target, name, value, actor_id
            )
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
            await limits_repo.clear_limit(tx, scope, guild_key(guild_id), target, name)
            await self._audit(
                tx, guild_id, actor_id, "clear_limit", scope=scope, target=target, name=name
            )
        return LimitChanged(name, scope, target, None, cleared=True)

    def _scope(
        self, guild_id: int | None, name: str, user_id: int | None, role_id: int | None
    ) -> tuple[LimitScope, int]:
        if name not in LIMIT_NAMES:
            raise UserError.of(
                "Unknown limit {name}; one of {names}.",
                name=repr(name),
                names=", ".join(LIMIT_NAMES),
            )
        if user_id is not None and role_id is not None:
            raise UserError("Pick a member or a role, not both.")
        if user_id is not None or role_id is not None:
            if name not in MEMBER_LIMITS:
                raise UserError.of(
                    "{what} applies to a whole server, not a member.", what=_words(name)
                )
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
            raise UserError.of("{what} cannot be negative.", what=_words(name))
        if name in ("user_max_queued", "user_max_running") and value < 1:
            raise UserError.of(
                "{what} must be at least 1; block the member instead.", what=_words(name)
            )
        if name in COUNT_LIMITS and value > 1_000_000:
            raise UserError.of("{what} is too large.", what=_words(name))

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
            raise UserError.of(
                "The bot's owner requires at least {seconds} s between edits; "
                "pick {seconds} or more.",
                limit=name,
                seconds=bound,
            )
        shown: object = Money(bound) if name in MONEY_LIMITS and bound is not None else bound
        if bound is None:
            shown = Text(show_limit(name, bound))
        raise UserError.of(
            "The bot's owner set the {ceiling} ceiling at {value}; pick {value} or less.",
            limit=name,
            ceiling=Text(CEILING_WORDS[name]),
            value=shown,
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
