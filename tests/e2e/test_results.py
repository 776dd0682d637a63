"""Result buttons, /rerun and /show end to end: real Flexbot, fake Discord, fake fal, SQLite."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import FlexbotRun, png, slash_edit
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeMessage

pytest_plugins = ["tests.e2e.flexbot_fixtures"]


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.2}


def bot_results(discord: FakeDiscord, channel: FakeChannel) -> list[FakeMessage]:
    return [m for m in channel.messages if m.files and m.author is discord.bot_user]


def next_result(discord: FakeDiscord) -> Awaitable[FakeMessage]:
    """Wait for the next result posted after this call."""
    channel = discord.general
    seen = {m.id for m in bot_results(discord, channel)}
    return channel.wait_for_message(
        lambda m: bool(m.files) and m.author is discord.bot_user and m.id not in seen, timeout=15
    )


async def first_edit(discord: FakeDiscord, **options: Any) -> FakeMessage:
    waiter = next_result(discord)
    await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "make it blue", **options},
        attachments=[("a.png", png(), "image/png")],
    )
    return await waiter


async def test_rerun_button_after_sigkill_restart_gives_same_bytes(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    first = await first_edit(discord, seed=5)
    await flexbot.wait_for_job_state(1, "delivered")
    await flexbot.process.restart(kill=True)
    waiter = next_result(discord)
    await discord.click(first, "Rerun", user=discord.alice)
    again = await waiter
    assert "job #2" in again.content
    assert list(again.files.values()) == list(first.files.values())
    assert flexbot.job(2)["parent_job_id"] == 1


async def test_remix_by_another_member_is_charged_to_them(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    first = await first_edit(discord)
    click = await discord.click(first, "Remix", user=discord.bob)
    modal = await click.wait_for_modal()
    waiter = next_result(discord)
    await discord.submit_modal(modal, {"prompt": "now red"}, user=discord.bob)
    remix = await waiter
    assert f"remix of #1 by <@{discord.alice.id}>" in remix.content
    assert remix.mentioned_user_ids == {discord.bob.id}
    await flexbot.wait_for_job_state(2, "delivered")
    job = flexbot.job(2)
    assert job["user_id"] == discord.bob.id
    assert job["origin"] == "remix"
    charges = flexbot.query("SELECT user_id FROM ledger WHERE job_id = 2 AND kind = 'charge'")
    assert charges == [{"user_id": discord.bob.id}]


async def test_delete_refused_for_others_allowed_for_moderators(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    first = await first_edit(discord)
    refused = await discord.click(first, "Delete", user=discord.bob)
    answer = await refused.wait_for_original()
    assert answer.ephemeral
    assert "Manage Messages" in answer.content
    assert not first.deleted
    await discord.click(first, "Delete", user=discord.mod)
    await discord.wait_for(lambda: first.deleted)


async def test_reroll_uses_a_new_seed_and_clicker_pays(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    first = await first_edit(discord, seed=5)
    waiter = next_result(discord)
    await discord.click(first, "Reroll", user=discord.bob)
    await waiter
    await flexbot.wait_for_job_state(2, "delivered")
    job = flexbot.job(2)
    assert job["user_id"] == discord.bob.id
    assert job["seed"] != 5


@pytest.mark.parametrize("fal_options", [{"processing_time": 1.0}])
async def test_channel_deleted_while_running_then_show_posts_elsewhere(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await slash_edit(discord, "slow", filename="a.png")
    await it.wait_for_followup(lambda m: "Job #1" in m.content)
    await flexbot.wait_for_job_state(1, "running")
    await discord.delete_channel(discord.general)
    await flexbot.wait_for_job_state(1, "undeliverable")
    assert flexbot.job(1)["cost_micros"] > 0
    show = await discord.slash(
        "show", user=discord.alice, channel=discord.nsfw_channel, options={"job": 1}
    )
    posted = await show.wait_for_followup(lambda m: bool(m.files))
    assert not posted.ephemeral
    assert "Rerun" in [b["label"] for b in posted.buttons()]


async def test_rerun_command_with_overrides(discord: FakeDiscord, flexbot: FlexbotRun) -> None:
    await first_edit(discord, seed=5)
    waiter = next_result(discord)
    await discord.slash("rerun", user=discord.bob, options={"job": 1, "steps": 9})
    result = await waiter
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Steps"] == "9"
    assert fields["Seed"] == "5"
