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
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")

GUILD = 10
ADMIN = 555


async def test_every_admin_change_writes_an_audit_row_with_the_actor(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        changes = [
            admin.set_limit(ADMIN, GUILD, "user_daily_cap", 2_000_000),
            admin.set_limit(ADMIN, GUILD, "user_max_queued", 3, role_id=77),
            admin.set_limit(ADMIN, GUILD, "user_monthly_cap", None, user_id=1),
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


async def test_a_refused_change_writes_no_audit_row(tmp_path: Path, fake_fal: FakeFal) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
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
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url) as kit:
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
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 2_000_000)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 3_000_000, role_id=77)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 4_000_000, user_id=1)
        engine = kit.engine
        plain = await engine.limits_for(Requester(2, GUILD, 100, ()))
        artist = await engine.limits_for(Requester(2, GUILD, 100, (77,)))
        member = await engine.limits_for(Requester(1, GUILD, 100, (77,)))
        assert plain["user_daily_cap"] == 2_000_000
        assert artist["user_daily_cap"] == 3_000_000
        assert member["user_daily_cap"] == 4_000_000
        assert member.sources["user_daily_cap"] == LimitSource(LimitScope.USER, 1)
        other_guild = await engine.limits_for(Requester(1, 11, 100, ()))
        assert other_guild["user_daily_cap"] == kit.settings.user_daily_cap


async def test_pause_and_block_refuse_edits_until_lifted(tmp_path: Path, fake_fal: FakeFal) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
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
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
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
    async with engine_kit(tmp_path / "dms", fake_fal.url, start=False, allow_dms=True) as kit:
        await Admin(kit.db, kit.settings).channel_gate(None, 5, [], False)


async def test_safety_policy_defaults_server_default_and_channel_override(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        assert await admin.safety_limits(GUILD, 100, True) == SafetyPolicy("2", False)
        await admin.set_safety(ADMIN, GUILD, None, "3", True)
        assert await admin.safety_limits(GUILD, 100, False) == SafetyPolicy("3", False)
        assert await admin.safety_limits(GUILD, 100, True) == SafetyPolicy("3", True)
        await admin.set_safety(ADMIN, GUILD, 101, "1")
        assert await admin.safety_limits(GUILD, 101, True) == SafetyPolicy("1", False)
        assert await admin.safety_limits(None, 5, True) == SafetyPolicy("2", False)


async def test_settings_report_shows_effective_values_and_their_sources(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, GUILD, "user_daily_cap", 2_500_000, role_id=77)
        await admin.set_allowed_channels(ADMIN, GUILD, [100])
        rows = await admin.settings_report(GUILD)
        keys = {r.key for r in rows}
        assert {k for k, _, _ in kit.settings.describe()} <= keys
        assert any(
            r.key == "user_daily_cap"
            and r.value == "$2.50"
            and r.source == LimitSource(LimitScope.ROLE, 77)
            for r in rows
        )
        assert any(r.key == "allowed_channels" and r.value == Ids("channel", (100,)) for r in rows)
        assert any(r.key == "poll_interval_seconds" and r.source == "default" for r in rows)


def test_money_is_parsed_exactly_from_dollars() -> None:
    assert parse_money("1.50") == 1_500_000
    assert parse_money("$0.000001") == 1
    assert parse_limit_value("user_daily_cap", "unlimited") is None
    assert parse_limit_value("user_max_queued", "4") == 4
    with pytest.raises(UserError, match="dollars"):
        parse_money("1.5000001")
    with pytest.raises(UserError):
        parse_limit_value("user_cooldown_seconds", "2.5")
