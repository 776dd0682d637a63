"""/queue, /cancel, /usage and /optout end to end: real Flexbot, fake Discord, fake fal."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.e2e.flexbot_fixtures import (  # noqa: F401 (fixtures are found by name)
    FlexbotRun,
    fal,
    flexbot,
    flexbot_env,
    png,
    slash_edit,
)
from tests.fakes.discord import FakeDiscord


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 30.0}  # the first job keeps running; the next one stays queued


async def start_edit(discord: FakeDiscord, prompt: str) -> None:
    it = await slash_edit(discord, prompt, filename="a.png")
    await it.wait_for_original()


@pytest.mark.parametrize("flexbot_env", [{"FLEXBOT_USER_MAX_RUNNING": "1"}])  # keep job 2 queued
async def test_queue_lists_queued_job_and_cancel_from_there_releases_it(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    await start_edit(discord, "first")
    await flexbot.wait_for_job_state(1, "running")
    await start_edit(discord, "second")
    await flexbot.wait_for_job_state(2, "queued")

    it = await discord.slash("queue", user=discord.alice)
    msg = await it.wait_for_original()
    assert msg.ephemeral
    assert "#1 · running" in msg.content
    assert "#2 · queued, position 1" in msg.content

    click = await discord.click(msg, "flexq:cancel", user=discord.alice, values=["2"])
    await click.wait_for_response()
    await flexbot.wait_for_job_state(2, "cancelled")
    ledger = {
        r["kind"]: r["amount"]
        for r in flexbot.query(
            "SELECT kind, SUM(amount_micros) AS amount FROM ledger WHERE job_id = 2 GROUP BY kind"
        )
    }
    assert ledger["reserve"] == ledger["release"] > 0
    assert "charge" not in ledger
    await discord.wait_for(lambda: "Job #2 cancelled" in msg.content)
    assert "#2" not in msg.content.split("\n\n", 1)[1]

    other = await discord.slash("cancel", user=discord.bob, options={"job": 1})
    answer = await other.wait_for_original()
    assert answer.ephemeral
    assert "Only the member who asked" in answer.content


async def test_usage_replies_ephemeral_with_a_png_chart_and_optout_is_stored(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    await start_edit(discord, "first")
    await flexbot.wait_for_job_state(1, "running")
    it = await discord.slash("usage", user=discord.alice)
    msg = await it.wait_for_original(lambda m: bool(m.files))
    assert msg.ephemeral
    held = flexbot.job(1)["held_micros"]
    assert held > 0
    fields = {f["name"]: f["value"] for f in msg.embeds[0]["fields"]}
    daily = next(v for k, v in fields.items() if k.startswith("Your daily budget"))
    assert f"${held / 1_000_000:.2f} of $1.00" in daily
    (data,) = msg.files.values()
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    assert image.size == (600, 220)

    opt = await discord.slash("optout remix", user=discord.alice, options={"state": "on"})
    answer = await opt.wait_for_original()
    assert answer.ephemeral
    assert "can no longer remix" in answer.content
    rows = flexbot.query(
        "SELECT remix_opt_out FROM user_prefs WHERE user_id = ?", (discord.alice.id,)
    )
    assert rows == [{"remix_opt_out": 1}]
