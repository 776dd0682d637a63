"""Budget rules (pure): which limits apply to a member, and whether a job fits under them.

Resolution of each limit, most specific first: a user override, else the highest of the member's
role overrides (unlimited beats any number), else the guild's override, else a global override,
else the setting. All windows are UTC calendar days and months.

The owner's value (a global override, else the setting) is a ceiling for the caps and counts and a
floor for the cooldown: a server's, role's or member's override is clamped to it here, where every
check reads its limits, so an override stored before the admin command refused such values (or
written by hand) cannot lift a member or a server past what the owner allows. The bot-wide cap
comes from the owner alone, and a server-wide cap is never taken from a member's override.

A limit that says no is a ``UserError`` naming the limit, what is left of it and when it resets;
the checks here return it (they are pure), the engine raises it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.errors import UserError
from bot.i18n import ENGLISH, Duration, Moment, Money, format_duration
from bot.model import LimitScope
from bot.settings import Settings

MONEY_LIMITS = ("user_daily_cap", "user_monthly_cap", "guild_monthly_cap", "global_monthly_cap")
COUNT_LIMITS = ("user_max_queued", "user_max_running", "user_cooldown_seconds")
LIMIT_NAMES = MONEY_LIMITS + COUNT_LIMITS


@dataclass(frozen=True, slots=True)
class LimitSource:
    """Where a limit's value came from: an override at ``scope`` (for ``target_id``: the member
    or the role), or the operator's setting when ``scope`` is None."""

    scope: LimitScope | None = None
    target_id: int = 0


DEFAULT_SOURCE = LimitSource()


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits that apply to one member in one guild, with where each came from."""

    values: Mapping[str, int | None]
    sources: Mapping[str, LimitSource] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int | None:
        return self.values[name]


def default_limits(settings: Settings) -> dict[str, int | None]:
    return {
        "user_daily_cap": settings.user_daily_cap,
        "user_monthly_cap": settings.user_monthly_cap,
        "guild_monthly_cap": settings.guild_monthly_cap,
        "global_monthly_cap": settings.global_monthly_cap,
        "user_max_queued": settings.user_max_queued,
        "user_max_running": settings.user_max_running,
        "user_cooldown_seconds": int(settings.user_cooldown_seconds),
    }


#: Which scopes may override each limit below the owner's (global) one.
_SCOPES_BELOW_OWNER = {
    name: (
        frozenset()
        if name == "global_monthly_cap"
        else frozenset({LimitScope.GUILD})
        if name == "guild_monthly_cap"
        else frozenset({LimitScope.GUILD, LimitScope.ROLE, LimitScope.USER})
    )
    for name in LIMIT_NAMES
}
#: The one limit where lower is more generous: the owner's value is a floor, not a ceiling.
FLOOR_LIMITS = frozenset({"user_cooldown_seconds"})


def within_owner_bound(name: str, value: int | None, bound: int | None) -> int | None:
    """``value`` clamped to the owner's ``bound`` (None = unlimited): the most a server, role
    or member override may give, or for the cooldown the least it may take."""
    if name in FLOOR_LIMITS:
        return max(value or 0, bound or 0)
    if bound is None:
        return value
    return bound if value is None else min(value, bound)


def owner_limits(
    defaults: Mapping[str, int | None],
    overrides: Iterable[tuple[LimitScope, int, str, int | None]],
) -> dict[str, int | None]:
    """The owner's value of each limit: a global override, else the setting."""
    owner = {name: defaults[name] for name in LIMIT_NAMES}
    for scope, _, name, value in overrides:
        if scope == LimitScope.GLOBAL and name in owner:
            owner[name] = value
    return owner


def _more_generous(name: str, value: int | None, than: int | None) -> bool:
    if name in FLOOR_LIMITS:
        return (value or 0) < (than or 0)
    return than is not None and (value is None or value > than)


def resolve_limits(
    defaults: Mapping[str, int | None],
    overrides: Iterable[tuple[LimitScope, int, str, int | None]],
) -> Limits:
    """Combine settings and (scope, target_id, name, value) overrides into effective limits."""
    overrides = list(overrides)
    owner = owner_limits(defaults, overrides)
    owner_source = {name: DEFAULT_SOURCE for name in LIMIT_NAMES}
    chosen: dict[LimitScope, dict[str, tuple[int | None, LimitSource]]] = {
        scope: {} for scope in LimitScope
    }
    for scope, target, name, _ in overrides:
        if scope == LimitScope.GLOBAL and name in owner_source:
            owner_source[name] = LimitSource(scope, target)
    for scope, target, name, stored in overrides:
        if name not in LIMIT_NAMES:
            continue
        value, source = stored, LimitSource(scope, target)
        if scope != LimitScope.GLOBAL:
            if scope not in _SCOPES_BELOW_OWNER[name]:
                continue
            # Clamped before the roles compare, so the highest role stays under the ceiling too.
            value = within_owner_bound(name, stored, owner[name])
            if value != stored:
                source = owner_source[name]
        held = chosen[scope].get(name)
        if scope == LimitScope.ROLE and held and not _more_generous(name, value, held[0]):
            continue
        chosen[scope][name] = (value, source)
    values: dict[str, int | None] = {}
    sources: dict[str, LimitSource] = {}
    for name in LIMIT_NAMES:
        for scope in (LimitScope.USER, LimitScope.ROLE, LimitScope.GUILD, LimitScope.GLOBAL):
            if name in chosen[scope]:
                values[name], sources[name] = chosen[scope][name]
                break
        else:
            values[name], sources[name] = defaults[name], DEFAULT_SOURCE
    return Limits(values, sources)


def day_start(now: float) -> datetime:
    t = datetime.fromtimestamp(now, UTC)
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: float) -> datetime:
    return day_start(now).replace(day=1)


def next_month(now: float) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def humanize_delta(seconds: float) -> str:
    """A wait in English: ``45 s``, ``5 min``, ``2 h 5 min``, ``3 days``."""
    return format_duration(seconds, ENGLISH)


@dataclass(frozen=True, slots=True)
class Usage:
    """Money held or spent in each window that matters for one member, at one instant."""

    user_day: int
    user_month: int
    guild_month: int
    global_month: int
    user_credit: int = 0


#: The refusal for each money cap: one whole sentence each, so translators see it whole.
BUDGET_REFUSALS = {
    "user_daily_cap": "This edit costs about {cost}, but only {left} is left of your daily budget "
    "({cap}). It resets {resets} (in {wait}). Use fewer or smaller images, or ask an admin for "
    "more credit.",
    "user_monthly_cap": "This edit costs about {cost}, but only {left} is left of your monthly "
    "budget ({cap}). It resets {resets} (in {wait}). Use fewer or smaller images, or ask an "
    "admin for more credit.",
    "guild_monthly_cap": "This edit costs about {cost}, but only {left} is left of this server's "
    "monthly budget ({cap}). It resets {resets} (in {wait}). Use fewer or smaller images, or "
    "ask an admin for more credit.",
    "global_monthly_cap": "This edit costs about {cost}, but only {left} is left of the bot's "
    "monthly budget ({cap}). It resets {resets} (in {wait}). Use fewer or smaller images, or ask "
    "an admin for more credit.",
}
TOO_MANY_QUEUED = (
    "You already have {queued} edits waiting (the limit is {most}). Wait for one to finish or "
    "cancel one with /queue."
)
COOLDOWN = "Slow down a little: you can start another edit in {wait}."


def check_budget(estimate: int, limits: Limits, usage: Usage, now: float) -> UserError | None:
    """The first money cap this estimate would break (to raise), or None when it fits."""
    tomorrow = day_start(now) + timedelta(days=1)
    month = next_month(now)
    checks = (
        ("user_daily_cap", usage.user_day, usage.user_credit, tomorrow),
        ("user_monthly_cap", usage.user_month, usage.user_credit, month),
        ("guild_monthly_cap", usage.guild_month, 0, month),
        ("global_monthly_cap", usage.global_month, 0, month),
    )
    for name, spent, credit, resets in checks:
        cap = limits[name]
        if cap is None:
            continue
        remaining = max(0, cap + credit - spent)
        if estimate > remaining:
            return UserError.of(
                BUDGET_REFUSALS[name],
                limit=name,
                remaining=remaining,
                resets_at=resets.timestamp(),
                cost=Money(estimate),
                left=Money(remaining),
                cap=Money(cap + credit),
                resets=Moment(resets.timestamp()),
                wait=Duration(resets.timestamp() - now),
            )
    return None


def check_counts(
    limits: Limits, queued: int, running: int, last_submit: float | None, now: float
) -> UserError | None:
    """Per-member queue size and cooldown: the limit that says no (to raise), or None."""
    max_queued = limits["user_max_queued"]
    if max_queued is not None and queued >= max_queued:
        return UserError.of(
            TOO_MANY_QUEUED, limit="user_max_queued", remaining=0, queued=queued, most=max_queued
        )
    cooldown = limits["user_cooldown_seconds"] or 0
    if last_submit is not None and now - last_submit < cooldown:
        wait = cooldown - (now - last_submit)
        return UserError.of(
            COOLDOWN,
            limit="user_cooldown_seconds",
            resets_at=last_submit + cooldown,
            wait=Duration(wait + 0.999),
        )
    return None
