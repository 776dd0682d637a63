"""Issue 14's store and core on SQLite and PostgreSQL: prompt filters, flagged outputs and
channel defaults, through the real engine and the fake fal."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.admin import Admin
from bot.errors import UserError
from bot.fal.fake import FakeFal
from bot.model import JobState, Requester
from bot.params import ChannelDefaults, ParamLimits, parse_edit_params
from bot.prompt_filter import PromptBlocked
from bot.store import audit as audit_repo
from bot.store.db import fetch_one
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")

GUILD = 10
ADMIN = 555
NSFW = 200


async def test_filter_terms_are_stored_per_server_and_audited(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        assert (await admin.filter_add(ADMIN, GUILD, "word", "  Blocked  ")).changed
        assert not (await admin.filter_add(ADMIN, GUILD, "word", "Blocked")).changed
        assert (await admin.filter_add(ADMIN, GUILD, "pattern", r"dr[uo]gs?")).changed
        assert (await admin.filter_add(ADMIN, 11, "word", "other")).changed
        listed = await admin.filter_list(GUILD)
        assert listed.words == ("Blocked",)
        assert listed.patterns == (r"dr[uo]gs?",)
        assert (await admin.filter_test(GUILD, "so \uff22LOCKED")) is not None
        assert (await admin.filter_test(GUILD, "other")) is None  # another server's word
        assert (await admin.filter_remove(ADMIN, GUILD, "word", "Blocked")).changed
        assert not (await admin.filter_remove(ADMIN, GUILD, "word", "Blocked")).changed
        assert (await admin.filter_list(GUILD)).words == ()
        actions = [r.action for r in await audit_repo.audit_rows(kit.db, GUILD)]
        assert actions == ["filter_remove", "filter_add", "filter_add"]


async def test_a_pathological_pattern_is_refused_when_added(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        for bad in [r"(a)\1", r"(?=a)b", "((a{100}){100}){100}"]:
            with pytest.raises(UserError, match="RE2"):
                await admin.filter_add(ADMIN, GUILD, "pattern", bad)
        assert (await admin.filter_list(GUILD)).patterns == ()


async def test_a_blocked_prompt_is_refused_before_anything_is_queued_or_charged(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        admin = Admin(kit.db, kit.settings)
        await admin.filter_add(ADMIN, GUILD, "word", "blocked")
        with pytest.raises(PromptBlocked) as refused:
            await kit.submit(prompt="a b\u200blocked cat")
        assert refused.value.limit == "prompt_filter"
        assert "“blocked”" in refused.value.message
        jobs = await fetch_one(kit.db, "SELECT COUNT(*) FROM jobs")
        ledger = await fetch_one(kit.db, "SELECT COUNT(*) FROM ledger")
        assert jobs is not None
        assert ledger is not None
        assert (jobs[0], ledger[0]) == (0, 0)
        assert fake_fal.jobs == {}  # nothing reached fal
        row = (await audit_repo.audit_rows(kit.db, GUILD))[0]
        assert row.action == "prompt_blocked"
        assert row.actor_id == 1
        assert row.detail["term"] == "blocked"
        # The same word passes on another server, and inside a longer word here.
        await kit.wait_final((await kit.submit(guild=11, prompt="blocked")).job_id)
        await kit.wait_final((await kit.submit(prompt="unblocked road")).job_id)


async def test_the_bot_wide_list_applies_to_every_server_and_dms(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path,
        fake_fal.url,
        database_url=db_url,
        blocked_terms=("forbidden thing",),
        blocked_patterns=(r"\bsecret\d+",),
    ) as kit:
        for guild in (GUILD, 99, None):
            with pytest.raises(PromptBlocked, match="Flexbot does not allow"):
                await kit.submit(guild=guild, prompt="a Forbidden-Thing here")
        with pytest.raises(PromptBlocked, match="“secret42”"):
            await kit.submit(prompt="show secret42")
        with pytest.raises(PromptBlocked):
            await kit.engine.precheck(
                Requester(1, GUILD, 100),
                parse_edit_params(prompt="forbidden  thing", num_images=1, limits=ParamLimits()),
                [(64, 48)],
                [1000],
            )


async def test_a_flagged_output_is_stored_as_flagged_and_charged(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        plain = await kit.wait_final((await kit.submit(prompt="a calm lake")).job_id)
        flagged = await kit.wait_final((await kit.submit(prompt="FAKE_FLAGGED lake")).job_id)
        assert plain.state == flagged.state == JobState.DELIVERED
        assert not plain.nsfw_flagged
        assert flagged.nsfw_flagged
        assert flagged.cost_micros == plain.cost_micros > 0
        assert flagged.charged_micros == flagged.cost_micros


async def test_flagged_output_choice_and_channel_defaults_per_channel(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        admin = Admin(kit.db, kit.settings)
        assert await admin.flagged_output(GUILD, NSFW) == "hide"
        with pytest.raises(UserError, match="age-restricted"):
            await admin.set_flagged_output(ADMIN, GUILD, 100, "spoiler", channel_is_nsfw=False)
        await admin.set_flagged_output(ADMIN, GUILD, NSFW, "spoiler", channel_is_nsfw=True)
        assert await admin.flagged_output(GUILD, NSFW) == "spoiler"
        assert await admin.flagged_output(GUILD, 100) == "hide"

        changed = await admin.set_channel_defaults(
            ADMIN, GUILD, 100, ChannelDefaults(steps=12, size="1024X768", output_format="png")
        )
        assert changed.defaults == ChannelDefaults(steps=12, size="1024x768", output_format="png")
        await admin.set_channel_defaults(ADMIN, GUILD, 100, ChannelDefaults(guidance=5.0))
        got = await admin.channel_defaults(GUILD, 100)
        assert got == ChannelDefaults(12, 5.0, "1024x768", "png", None)
        assert await admin.channel_defaults(GUILD, 101) == ChannelDefaults()
        with pytest.raises(UserError, match="steps"):
            await admin.set_channel_defaults(ADMIN, GUILD, 100, ChannelDefaults(steps=500))
        with pytest.raises(UserError, match="above the highest"):
            await admin.set_channel_defaults(ADMIN, GUILD, 100, ChannelDefaults(safety="5"))
        await admin.set_safety(ADMIN, GUILD, 100, "4")
        await admin.set_channel_defaults(ADMIN, GUILD, 100, ChannelDefaults(safety="4"))
        await admin.set_safety(ADMIN, GUILD, 100, "3")  # lowered later: the default follows
        assert (await admin.channel_defaults(GUILD, 100)).safety == "3"
        # The flagged-output choice survives clearing the defaults.
        await admin.set_channel_defaults(ADMIN, GUILD, NSFW, ChannelDefaults(steps=9))
        await admin.clear_channel_defaults(ADMIN, GUILD, NSFW)
        assert await admin.channel_defaults(GUILD, NSFW) == ChannelDefaults()
        assert await admin.flagged_output(GUILD, NSFW) == "spoiler"
        report = {(r.key, str(r.source)) for r in await admin.settings_report(GUILD)}
        assert any(key == "channel_defaults" for key, _ in report)
        assert any(key == "flagged_output" for key, _ in report)
