"""The admin core against real SQLite and a real engine: audited changes that the engine obeys."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.admin import Admin, parse_limit_value, parse_money
from bot.admin_facts import AdminChange, GateRefused, Ids, SafetyPolicy
from bot.engine.quota import LimitSource
from bot.errors import UserError
from bot.fal.fake import FakeFal
from bot.model import JobTicket, LimitScope, Requester
from bot.store import audit as audit_repo
from bot.store import limits as limits_repo
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")

GUILD = 10
ADMIN = 555


async def test_every_admin_change_writes_an_audit_row_with_the_actor(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        changes = [
            admin.set_limit(ADMIN, GUILD, "user_daily_cap", 500_000),
            admin.set_limit(ADMIN, GUILD, "user_max_queued", 3, role_id=77),
            admin.set_limit(ADMIN, GUILD, "user_monthly_cap", 5_000_000, user_id=1),
            admin.clear_limit(ADMIN, GUILD, "user_monthly_cap", user_id=1),
            admin.grant_credit(ADMIN, GUILD, 1, 1_500_000, "contest"),
            admin.revoke_credit(ADMIN, GUILD, 1, 500_000, None),
            admin.block(ADMIN, GUILD, 2, "spam"),
            admin.unblock(ADMIN, GUILD, 2),
            admin.pause(ADMIN, GUILD),
            admin.resume(ADMIN, GUILD),
            admin.set_allowed_channels(ADMIN, GUILD, [100]),
            admin.allow_channel(ADMIN, GUILD, 101, True),
            admin.set_required_role(ADMIN, GUILD, 9),
            admin.set_safety(ADMIN, GUILD, None, "3"),
            admin.set_safety(ADMIN, GUILD, 100, "4", True, channel_is_nsfw=True),
            admin.clear_safety(ADMIN, GUILD, 100),
        ]
        for change in changes:
            assert isinstance(await change, AdminChange)
        rows = await audit_repo.audit_rows(kit.db, GUILD, limit=100)
        assert len(rows) == len(changes)
        assert {r.actor_id for r in rows} == {ADMIN}
        assert [r.action for r in reversed(rows)][:3] == ["set_limit", "set_limit", "set_limit"]
        grant = next(r for r in rows if r.action == "grant_credit")
        assert grant.detail == {"amount": 1_500_000, "reason": "contest", "user": 1}


async def test_a_refused_change_writes_no_audit_row(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        with pytest.raises(UserError, match="bot owner"):
            await admin.set_limit(ADMIN, GUILD, "global_monthly_cap", 1)
        with pytest.raises(UserError, match="whole server"):
            await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", 1, user_id=1)
        with pytest.raises(UserError, match="at least 1"):
            await admin.set_limit(ADMIN, GUILD, "user_max_queued", 0)
        with pytest.raises(UserError, match="no credit"):
            await admin.revoke_credit(ADMIN, GUILD, 1, 1, None)
        with pytest.raises(UserError, match="age-restricted"):
            await admin.set_safety(ADMIN, GUILD, 100, "5", True, channel_is_nsfw=False)
        assert await audit_repo.audit_rows(kit.db, GUILD) == []


async def test_admin_daily_cap_refuses_the_next_edit_over_it(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        admin = Admin(kit.db, kit.settings)
        first = await kit.submit(user=1)
        assert isinstance(first, JobTicket)
        done = await kit.wait_final(first.job_id)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", done.charged_micros)
        with pytest.raises(UserError) as info:
            await kit.submit(user=1)
        refused = info.value
        assert refused.limit == "user_daily_cap"
        assert refused.remaining == 0
        # Credit lifts the member above the cap again.
        await admin.grant_credit(ADMIN, GUILD, 1, 1_000_000, None)
        assert isinstance(await kit.submit(user=1), JobTicket)


async def test_member_override_beats_role_which_beats_server(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 200_000)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 300_000, role_id=77)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 400_000, user_id=1)
        engine = kit.engine
        plain = await engine.limits_for(Requester(2, GUILD, 100, ()))
        artist = await engine.limits_for(Requester(2, GUILD, 100, (77,)))
        member = await engine.limits_for(Requester(1, GUILD, 100, (77,)))
        assert plain["user_daily_cap"] == 200_000
        assert artist["user_daily_cap"] == 300_000
        assert member["user_daily_cap"] == 400_000
        assert member.sources["user_daily_cap"] == LimitSource(LimitScope.USER, 1)
        other_guild = await engine.limits_for(Requester(1, 11, 100, ()))
        assert other_guild["user_daily_cap"] == kit.settings.user_daily_cap


async def test_pause_and_block_refuse_edits_until_lifted(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.pause(ADMIN, GUILD)
        with pytest.raises(UserError) as info:
            await kit.submit(user=1)
        assert info.value.limit == "paused"
        assert isinstance(await kit.submit(user=1, guild=11), JobTicket)
        await admin.resume(ADMIN, GUILD)
        await admin.block(ADMIN, GUILD, 1)
        with pytest.raises(UserError) as info:
            await kit.submit(user=1)
        assert info.value.limit == "blocked"
        await admin.unblock(ADMIN, GUILD, 1)
        assert isinstance(await kit.submit(user=1), JobTicket)
        await admin.pause(ADMIN, None)
        with pytest.raises(UserError) as info:
            await kit.submit(user=3, guild=12)
        assert "everywhere" in info.value.message


async def test_channel_gate_allowed_channels_required_role_and_dms(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.channel_gate(GUILD, 100, [], False)  # passes: raises nothing
        with pytest.raises(GateRefused) as dm:
            await admin.channel_gate(None, 5, [], False)
        assert dm.value.limit == "dms"
        await admin.set_allowed_channels(ADMIN, GUILD, [100])
        with pytest.raises(GateRefused) as refused:
            await admin.channel_gate(GUILD, 101, [], False)
        assert refused.value.channel_ids == (100,)
        await admin.set_required_role(ADMIN, GUILD, 9)
        with pytest.raises(GateRefused) as refused:
            await admin.channel_gate(GUILD, 100, [8], False)
        assert refused.value.limit == "role"
        assert refused.value.role_id == 9
        await admin.channel_gate(GUILD, 100, [8, 9], False)
        await admin.set_allowed_channels(ADMIN, GUILD, [])
        await admin.channel_gate(GUILD, 555, [9], False)
    async with engine_kit(
        tmp_path / "dms", fake_fal.url, database_url=db_url, start=False, allow_dms=True
    ) as kit:
        await Admin(kit.db, kit.settings).channel_gate(None, 5, [], False)


async def test_safety_policy_defaults_server_default_and_channel_override(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        assert await admin.safety_limits(GUILD, 100, True) == SafetyPolicy("2", False)
        await admin.set_safety(ADMIN, GUILD, None, "3", True)
        assert await admin.safety_limits(GUILD, 100, False) == SafetyPolicy("3", False)
        assert await admin.safety_limits(GUILD, 100, True) == SafetyPolicy("3", True)
        await admin.set_safety(ADMIN, GUILD, 101, "1")
        assert await admin.safety_limits(GUILD, 101, True) == SafetyPolicy("1", False)
        assert await admin.safety_limits(None, 5, True) == SafetyPolicy("2", False)


async def test_settings_report_shows_effective_values_and_their_sources(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 500_000, role_id=77)
        await admin.set_allowed_channels(ADMIN, GUILD, [100])
        rows = await admin.settings_report(GUILD)
        keys = {r.key for r in rows}
        assert {k for k, _, _ in kit.settings.describe_for_admins()} <= keys
        assert any(
            r.key == "user_daily_cap"
            and r.value == "$0.50"
            and r.source == LimitSource(LimitScope.ROLE, 77)
            for r in rows
        )
        assert any(r.key == "allowed_channels" and r.value == Ids("channel", (100,)) for r in rows)
        assert any(r.key == "user_monthly_cap" and r.source == "default" for r in rows)


async def test_server_admin_cannot_raise_the_server_cap_over_the_owners_ceiling(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        assert kit.settings.guild_monthly_cap == 50_000_000
        admin = Admin(kit.db, kit.settings)
        for value in (50_000_001, None):
            with pytest.raises(UserError) as info:
                await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", value)
            assert info.value.limit == "guild_monthly_cap"
            assert "ceiling at $50.00; pick $50.00 or less" in info.value.message
        assert await audit_repo.audit_rows(kit.db, GUILD) == []
        await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", 50_000_000)
        await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", 5_000_000)
        limits = await kit.engine.limits_for(Requester(1, GUILD, 100, ()))
        assert limits["guild_monthly_cap"] == 5_000_000
    async with engine_kit(
        tmp_path / "open", fake_fal.url, database_url=db_url, start=False, guild_monthly_cap=None
    ) as kit:
        # The owner set no ceiling: a server may pick any cap, or none.
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", 900_000_000)
        await admin.set_limit(ADMIN, GUILD, "guild_monthly_cap", None)


async def test_role_and_member_limits_over_the_ceiling_are_refused(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path,
        fake_fal.url,
        database_url=db_url,
        start=False,
        user_cooldown_seconds=30.0,
        user_max_running=1,
    ) as kit:
        admin = Admin(kit.db, kit.settings)
        over = [
            ("user_daily_cap", 1_000_001, {"role_id": 77}, "$1.00"),
            ("user_daily_cap", None, {"role_id": 77}, "$1.00"),
            ("user_monthly_cap", 10_500_000, {"user_id": 1}, "$10.00"),
            ("user_max_queued", 11, {"role_id": 77}, "10"),
            ("user_max_running", 2, {"user_id": 1}, "1"),
            ("user_max_queued", None, {}, "10"),
        ]
        for name, value, who, ceiling in over:
            with pytest.raises(UserError) as info:
                await admin.set_limit(ADMIN, GUILD, name, value, **who)
            assert info.value.limit == name
            assert f"ceiling at {ceiling}; pick {ceiling} or less" in info.value.message
        with pytest.raises(UserError, match="at least 30 s between edits; pick 30 or more") as info:
            await admin.set_limit(ADMIN, GUILD, "user_cooldown_seconds", 10, role_id=77)
        assert info.value.limit == "user_cooldown_seconds"
        assert await audit_repo.audit_rows(kit.db, GUILD) == []
        # At or under the ceiling (over the floor for the cooldown) is the server's choice.
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 1_000_000, role_id=77)
        await admin.set_limit(ADMIN, GUILD, "user_max_queued", 3, user_id=1)
        await admin.set_limit(ADMIN, GUILD, "user_cooldown_seconds", 60, role_id=77)
        assert len(await audit_repo.audit_rows(kit.db, GUILD)) == 3


async def test_an_override_stored_over_the_ceiling_is_clamped_when_limits_resolve(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    # An edit costs $0.10 here; the owner allows a member $0.05 a day, a server $0.15 a month.
    async with engine_kit(
        tmp_path,
        fake_fal.url,
        database_url=db_url,
        user_daily_cap=50_000,
        guild_monthly_cap=150_000,
    ) as kit:
        async with kit.db.transaction() as tx:  # written before the fix, or by hand
            await limits_repo.set_limit(tx, LimitScope.USER, GUILD, 1, "user_daily_cap", None, 9)
            await limits_repo.set_limit(tx, LimitScope.ROLE, GUILD, 77, "user_daily_cap", 10**9, 9)
            await limits_repo.set_limit(
                tx, LimitScope.GUILD, GUILD, 0, "guild_monthly_cap", None, 9
            )
        for who in (Requester(1, GUILD, 100, ()), Requester(2, GUILD, 100, (77,))):
            limits = await kit.engine.limits_for(who)
            assert limits["user_daily_cap"] == 50_000
            assert limits.sources["user_daily_cap"] == LimitSource()
            assert limits["guild_monthly_cap"] == 150_000
        report = await Admin(kit.db, kit.settings).settings_report(GUILD)
        shown = {(r.key, r.value) for r in report if r.source != "default"}
        assert ("guild_monthly_cap", "$0.15 (owner's limit; unlimited was set)") in shown
        for user, roles in ((1, ()), (2, (77,))):
            with pytest.raises(UserError) as info:
                await kit.submit(user=user, roles=roles)
            assert info.value.limit == "user_daily_cap"
        # With the member caps out of the way, the server cap still holds at its ceiling.
        async with kit.db.transaction() as tx:
            await limits_repo.set_limit(tx, LimitScope.GLOBAL, 0, 0, "user_daily_cap", None, 9)
        first = await kit.submit(user=3)
        assert isinstance(first, JobTicket)
        done = await kit.wait_final(first.job_id)
        assert done.charged_micros == 100_000
        with pytest.raises(UserError) as info:
            await kit.submit(user=4)
        assert info.value.limit == "guild_monthly_cap"


async def test_credit_grants_are_bounded_per_member_per_month(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, start=False, max_credit_grant=5_000_000
    ) as kit:
        admin = Admin(kit.db, kit.settings)
        with pytest.raises(UserError, match=r"at most \$5.00 .* \$5.00 or less") as info:
            await admin.grant_credit(ADMIN, GUILD, 1, 5_000_001, None)
        assert info.value.limit == "max_credit_grant"
        await admin.grant_credit(ADMIN, GUILD, 1, 3_000_000, None)
        with pytest.raises(UserError, match=r"already has \$3.00 .* \$2.00 or less") as info:
            await admin.grant_credit(ADMIN, GUILD, 1, 2_500_000, None)
        assert info.value.remaining == 2_000_000
        await admin.grant_credit(ADMIN, GUILD, 1, 2_000_000, None)
        with pytest.raises(UserError, match="already has"):
            await admin.grant_credit(ADMIN, GUILD, 1, 1, None)
        # Taking credit back makes room again; another member has their own allowance.
        await admin.revoke_credit(ADMIN, GUILD, 1, 1_000_000, None)
        await admin.grant_credit(ADMIN, GUILD, 1, 1_000_000, None)
        await admin.grant_credit(ADMIN, GUILD, 2, 5_000_000, None)
        actions = [r.action for r in await audit_repo.audit_rows(kit.db, GUILD, limit=100)]
        assert actions.count("grant_credit") == 4


async def test_a_member_with_credit_is_still_refused_by_the_server_cap(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, user_daily_cap=50_000, guild_monthly_cap=50_000
    ) as kit:
        await Admin(kit.db, kit.settings).grant_credit(ADMIN, GUILD, 1, 5_000_000, None)
        with pytest.raises(UserError) as info:
            await kit.submit(user=1)
        assert info.value.limit == "guild_monthly_cap"
        assert "server's monthly budget ($0.05)" in info.value.message


async def test_settings_report_shows_admins_nothing_of_the_operator_or_other_servers(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path,
        fake_fal.url,
        database_url=db_url,
        start=False,
        discord_sync_guilds=(424242, 434343),
    ) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, 11, "user_daily_cap", 300_000, role_id=878787)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 200_000)
        async with kit.db.transaction() as tx:
            await limits_repo.set_limit(tx, LimitScope.GLOBAL, 0, 0, "global_monthly_cap", 1, 9)
        rows = await admin.settings_report(GUILD)
        text = repr(rows)
        keys = {r.key for r in rows}
        for hidden in (
            "data_dir",
            "secrets_file",
            "discord_api_base",
            "discord_gateway_url",
            "discord_sync_guilds",
            "fal_queue_url",
            "fal_rest_url",
            "fal_result_hosts",
            "global_monthly_cap",
            "discord_token",
            "fal_key",
            "health_host",
        ):
            assert hidden not in keys
        for secret in (str(tmp_path), "424242", "434343", "878787", fake_fal.url, "fal.run"):
            assert secret not in text
        assert any(r.key == "user_daily_cap" and r.value == "$0.20" for r in rows)
        assert any(r.key == "max_credit_grant" and r.value == "$20.00" for r in rows)


def test_money_is_parsed_exactly_from_dollars() -> None:
    assert parse_money("1.50") == 1_500_000
    assert parse_money("$0.000001") == 1
    assert parse_limit_value("user_daily_cap", "unlimited") is None
    assert parse_limit_value("user_max_queued", "4") == 4
    with pytest.raises(UserError, match="dollars"):
        parse_money("1.5000001")
    with pytest.raises(UserError):
        parse_limit_value("user_cooldown_seconds", "2.5")
