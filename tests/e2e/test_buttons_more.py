"""Tweak and Cancel buttons end to end: real Flexbot, fake Discord, fake fal, SQLite on disk."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import FlexbotRun, slash_edit
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage

pytest_plugins = ["tests.e2e.flexbot_fixtures"]


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.2}


def next_result(discord: FakeDiscord) -> Awaitable[FakeMessage]:
    """Wait for the next result posted in #general after this call."""
    seen = {m.id for m in discord.general.messages if m.files}
    return discord.general.wait_for_message(
        lambda m: bool(m.files) and m.author is discord.bot_user and m.id not in seen, timeout=15
    )


async def start_edit(discord: FakeDiscord, prompt: str, **options: Any) -> FakeInteraction:
    it = await slash_edit(discord, prompt, filename="a.png", **options)
    await it.wait_for_original()
    return it


def text_inputs(modal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The modal's text inputs by custom_id (in action rows or labels)."""
    found: dict[str, dict[str, Any]] = {}
    for top in modal["components"]:
        for comp in top.get("components", []) + ([top["component"]] if "component" in top else []):
            if comp["type"] == 4:
                found[comp["custom_id"]] = comp
    return found


def ledger_of(flexbot: FlexbotRun, job_id: int) -> dict[str, int]:
    rows = flexbot.query(
        "SELECT kind, SUM(amount_micros) AS amount FROM ledger WHERE job_id = ? GROUP BY kind",
        (job_id,),
    )
    return {r["kind"]: r["amount"] for r in rows}


async def test_tweak_button_opens_prefilled_modal_and_queues_the_new_values(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    waiter = next_result(discord)
    await start_edit(discord, "make it blue", seed=77, steps=12, guidance=4.5)
    first = await waiter

    click = await discord.click(first, "Tweak", user=discord.bob)
    modal = await click.wait_for_modal()
    assert modal["title"] == "Tweak job #1"
    inputs = text_inputs(modal)
    assert {k: v.get("value") for k, v in inputs.items()} == {
        "prompt": "make it blue",
        "steps": "12",
        "guidance": "4.5",
        "seed": "77",
    }
    assert [inputs[k]["label"] for k in inputs] == ["Prompt", "Steps", "Guidance", "Seed"]

    waiter = next_result(discord)
    sub = await discord.submit_modal(
        modal,
        {"prompt": "make it green", "steps": "9", "guidance": "3.5", "seed": "1234"},
        user=discord.bob,
    )
    ack = await sub.wait_for_original()
    assert ack.ephemeral
    assert "job #2" in ack.content
    tweaked = await waiter
    fields = {f["name"]: f["value"] for f in tweaked.embeds[0]["fields"]}
    assert tweaked.embeds[0]["description"] == "make it green"
    assert (fields["Seed"], fields["Steps"], fields["Guidance"]) == ("1234", "9", "3.5")
    assert fields["Lineage"] == f"tweak of #1 by <@{discord.alice.id}>"
    assert tweaked.mentioned_user_ids == {discord.bob.id}

    await flexbot.wait_for_job_state(2, "delivered")
    job = flexbot.job(2)
    params = json.loads(job["params"])
    assert params["prompt"] == "make it green"
    assert params["num_inference_steps"] == 9
    assert params["guidance_scale"] == 3.5
    assert job["seed"] == 1234
    assert (job["parent_job_id"], job["origin"], job["user_id"]) == (1, "tweak", discord.bob.id)
    assert job["input_hashes"] == flexbot.job(1)["input_hashes"]


async def test_tweak_with_a_bad_value_is_refused_and_nothing_is_queued(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    waiter = next_result(discord)
    await start_edit(discord, "make it blue", seed=7)
    first = await waiter
    click = await discord.click(first, "Tweak", user=discord.alice)
    modal = await click.wait_for_modal()
    sub = await discord.submit_modal(
        modal,
        {"prompt": "again", "steps": "500", "guidance": "4", "seed": "7"},
        user=discord.alice,
    )
    answer = await sub.wait_for_original()
    assert answer.ephemeral
    assert "500" in answer.content
    assert "went wrong" not in answer.content
    assert len(flexbot.jobs()) == 1


@pytest.mark.parametrize("flexbot_env", [{"FLEXBOT_USER_MAX_RUNNING": "1"}])  # keep job 2 queued
@pytest.mark.parametrize("fal_options", [{"processing_time": 30.0}])
async def test_cancel_button_on_a_queued_job_refuses_others_and_releases_the_money(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    await start_edit(discord, "first")
    await flexbot.wait_for_job_state(1, "running")
    second = await start_edit(discord, "second")
    await flexbot.wait_for_job_state(2, "queued")
    status = await second.wait_for_followup(lambda m: "Job #2" in m.content)
    assert not status.ephemeral
    assert "Cancel" in [b["label"] for b in status.buttons()]
    assert flexbot.job(2)["held_micros"] > 0

    refused = await discord.click(status, "Cancel", user=discord.bob)
    answer = await refused.wait_for_original()
    assert answer.ephemeral
    assert "Only the member who asked" in answer.content
    assert flexbot.job(2)["state"] == "queued"

    click = await discord.click(status, "Cancel", user=discord.alice)
    answer = await click.wait_for_original()
    assert answer.ephemeral
    assert "Job #2 cancelled; nothing was charged." in answer.content
    await flexbot.wait_for_job_state(2, "cancelled")
    job = flexbot.job(2)
    assert job["held_micros"] == 0
    assert job["charged_micros"] == 0
    ledger = ledger_of(flexbot, 2)
    assert ledger["reserve"] == ledger["release"] > 0
    assert "charge" not in ledger
    assert flexbot.job(1)["state"] == "running"


@pytest.mark.parametrize("fal_options", [{"processing_time": 30.0}])
async def test_cancel_button_on_a_running_job_cancels_it_at_fal(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await start_edit(discord, "slow")
    await flexbot.wait_for_job_state(1, "running")
    status = await it.wait_for_followup(lambda m: "Job #1" in m.content)

    refused = await discord.click(status, "Cancel", user=discord.bob)
    assert "Only the member who asked" in (await refused.wait_for_original()).content

    click = await discord.click(status, "Cancel", user=discord.alice)
    answer = await click.wait_for_original()
    assert answer.ephemeral
    assert "Cancelling job #1" in answer.content
    await flexbot.wait_for_job_state(1, "cancelled")
    await discord.wait_for(lambda: "ended: Cancelled" in status.content)
    assert status.buttons() == []
    assert flexbot.fal.cancels >= 1
    job = flexbot.job(1)
    assert (job["held_micros"], job["charged_micros"]) == (0, 0)
    ledger = ledger_of(flexbot, 1)
    assert ledger["reserve"] == ledger["release"] > 0
    assert "charge" not in ledger
    assert not [m for m in discord.general.messages if m.files]


@pytest.mark.parametrize("fal_options", [{"processing_time": 30.0}])
async def test_moderator_may_cancel_someone_elses_job(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await start_edit(discord, "slow")
    await flexbot.wait_for_job_state(1, "running")
    status = await it.wait_for_followup(lambda m: "Job #1" in m.content)
    click = await discord.click(status, "Cancel", user=discord.mod)
    assert "Cancelling job #1" in (await click.wait_for_original()).content
    await flexbot.wait_for_job_state(1, "cancelled")
    assert flexbot.job(1)["held_micros"] == 0
