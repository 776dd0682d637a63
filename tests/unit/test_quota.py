"""How overrides combine with the owner's settings: the owner's value bounds every server."""

from __future__ import annotations

from bot.engine.quota import LimitSource, resolve_limits
from bot.model import LimitScope

ROLE, USER, GUILD, GLOBAL = LimitScope.ROLE, LimitScope.USER, LimitScope.GUILD, LimitScope.GLOBAL
DEFAULTS: dict[str, int | None] = {
    "user_daily_cap": 1_000_000,
    "user_monthly_cap": 10_000_000,
    "guild_monthly_cap": 50_000_000,
    "global_monthly_cap": 100_000_000,
    "user_max_queued": 10,
    "user_max_running": 1,
    "user_cooldown_seconds": 30,
}


def test_the_highest_role_wins_but_never_above_the_owners_ceiling() -> None:
    limits = resolve_limits(
        DEFAULTS,
        [
            (ROLE, 501, "user_daily_cap", 400_000),
            (ROLE, 502, "user_daily_cap", None),  # unlimited, stored by hand
            (ROLE, 503, "user_daily_cap", 700_000),
            (ROLE, 501, "user_max_queued", 3),
            (ROLE, 502, "user_max_queued", 5),
            (ROLE, 503, "user_max_queued", 4),
        ],
    )
    assert limits["user_daily_cap"] == 1_000_000
    assert limits.sources["user_daily_cap"] == LimitSource()  # the setting, not role 502
    assert limits["user_max_queued"] == 5
    assert limits.sources["user_max_queued"] == LimitSource(ROLE, 502)


def test_member_and_server_overrides_over_the_ceiling_are_clamped() -> None:
    limits = resolve_limits(
        DEFAULTS,
        [
            (USER, 1, "user_monthly_cap", 99_000_000),
            (GUILD, 0, "guild_monthly_cap", None),
            (GUILD, 0, "user_max_running", 8),
            (USER, 1, "user_daily_cap", 200_000),
        ],
    )
    assert limits["user_monthly_cap"] == 10_000_000
    assert limits["guild_monthly_cap"] == 50_000_000
    assert limits["user_max_running"] == 1
    assert limits["user_daily_cap"] == 200_000  # under the ceiling: the server's choice
    assert limits.sources["user_daily_cap"] == LimitSource(USER, 1)


def test_the_cooldown_setting_is_a_floor_for_servers_and_roles() -> None:
    limits = resolve_limits(
        DEFAULTS,
        [(GUILD, 0, "user_cooldown_seconds", 0), (ROLE, 7, "user_cooldown_seconds", 5)],
    )
    assert limits["user_cooldown_seconds"] == 30
    longer = resolve_limits(
        DEFAULTS,
        [(ROLE, 7, "user_cooldown_seconds", 90), (ROLE, 8, "user_cooldown_seconds", 60)],
    )
    assert longer["user_cooldown_seconds"] == 60  # the most generous role, over the floor
    assert longer.sources["user_cooldown_seconds"] == LimitSource(ROLE, 8)


def test_a_global_override_is_the_owners_ceiling_and_an_unlimited_setting_bounds_nothing() -> None:
    limits = resolve_limits(
        {**DEFAULTS, "guild_monthly_cap": None},
        [
            (GLOBAL, 0, "user_daily_cap", 300_000),
            (GUILD, 0, "user_daily_cap", 900_000),
            (GUILD, 0, "guild_monthly_cap", None),
        ],
    )
    assert limits["user_daily_cap"] == 300_000
    assert limits.sources["user_daily_cap"] == LimitSource(GLOBAL, 0)
    assert limits["guild_monthly_cap"] is None


def test_server_wide_caps_come_only_from_server_or_owner_scopes() -> None:
    limits = resolve_limits(
        DEFAULTS,
        [
            (USER, 1, "guild_monthly_cap", 1),
            (GUILD, 0, "global_monthly_cap", 1),
            (ROLE, 5, "guild_monthly_cap", 1),
        ],
    )
    assert limits["guild_monthly_cap"] == 50_000_000
    assert limits["global_monthly_cap"] == 100_000_000
