"""Issue 14 end to end: the prompt filter on every entry point, outputs fal's safety checker
flagged, and per-channel defaults, through the real bot on the fake Discord and the fake fal."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import (  # noqa: F401 (fixtures are found by name)
    FlexbotRun,
    fal,
    flexbot,
    flexbot_env,
    png,
    slash_edit,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.state import FakeInteraction, FakeMessage


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.05}


async def admin(discord: FakeDiscord, command: str, **options: Any) -> str:
    it = await discord.slash(f"flexadmin {command}", user=discord.owner_user, options=options)
    answer = await it.wait_for_original()
    assert answer.ephemeral
    return answer.content


async def refusal(it: FakeInteraction) -> FakeMessage:
    """The member's private answer once it says something."""
    answer = await it.wait_for_original(lambda m: bool(m.content))
    assert answer.ephemeral
    return answer


def bot_results(discord: FakeDiscord, channel: Any = None) -> list[FakeMessage]:
    channel = channel or discord.general
    return [m for m in channel.messages if m.author is discord.bot_user and m.embeds]


async def test_a_blocked_word_is_refused_privately_on_every_entry_point(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    first = await slash_edit(discord, "a calm lake")
    await first.wait_for_original()
    await flexbot.wait_for_job_state(1, "delivered")
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    assert "now refused" in await admin(discord, "filter add", term="blocked")
    assert "now refused" in await admin(discord, "filter add", term="ass")
    ledger_before = flexbot.query("SELECT * FROM ledger")
    submitted_before = len(flexbot.fal.jobs)

    answers: list[FakeMessage] = []
    # /edit, a fullwidth letter and a zero-width space
    for prompt in ("a \uff22locked cat", "b\u200blocked", "BL0CKED"):
        answers.append(await refusal(await slash_edit(discord, prompt)))
    # the context menu's modal
    source = await discord.general.post(
        discord.bob, "look", attachments=[("cat.png", png((1, 2, 3)), "image/png")]
    )
    menu = await discord.context_menu("Edit with FLUX", user=discord.alice, message=source)
    modal = await menu.wait_for_modal()
    answers.append(
        await refusal(
            await discord.submit_modal(modal, {"prompt": "blocked hat"}, user=discord.alice)
        )
    )
    # Tweak and Remix under the result
    tweak = await discord.click(result, "Tweak", user=discord.alice)
    modal = await tweak.wait_for_modal()
    sub = await discord.submit_modal(
        modal,
        {"prompt": "blocked", "steps": "9", "guidance": "3.5", "seed": "1"},
        user=discord.alice,
    )
    answers.append(await refusal(sub))
    remix = await discord.click(result, "Remix", user=discord.bob)
    modal = await remix.wait_for_modal()
    answers.append(
        await refusal(await discord.submit_modal(modal, {"prompt": "blocked"}, user=discord.bob))
    )
    # /rerun with a new prompt
    rerun = await discord.slash(
        "rerun", user=discord.alice, options={"job": 1, "prompt": "very blocked"}
    )
    answers.append(await refusal(rerun))

    for answer in answers:
        assert "“blocked”" in answer.content, answer.content
        assert "does not allow" in answer.content
    assert len(flexbot.fal.jobs) == submitted_before  # nothing reached fal
    assert len(flexbot.jobs()) == 1
    assert flexbot.query("SELECT * FROM ledger") == ledger_before  # nothing held or charged
    blocked = flexbot.query("SELECT actor_id, detail FROM audit WHERE action = 'prompt_blocked'")
    assert len(blocked) == len(answers)
    assert {json.loads(r["detail"])["term"] for r in blocked} == {"blocked"}
    # Moderators see the refusals in /flexadmin audit.
    assert "prompt_blocked" in await admin(discord, "audit")

    # A word that only contains a blocked one passes.
    ok = await slash_edit(discord, "a class photo")
    assert "job #2" in (await ok.wait_for_original(lambda m: "job" in m.content)).content
    await flexbot.wait_for_job_state(2, "delivered")


async def test_filter_list_test_remove_and_patterns_that_cannot_stall(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    refused = await admin(discord, "filter add", term=r"(a)\1", kind="pattern")
    assert "cannot be used" in refused
    assert "RE2" in refused
    assert "now refused" in await admin(discord, "filter add", term="(a+)+$", kind="pattern")
    assert "now refused" in await admin(discord, "filter add", term="bad phrase")
    listed = await admin(discord, "filter list")
    assert "“bad phrase”" in listed
    assert "`(a+)+$`" in listed
    assert "passes" in await admin(discord, "filter test", prompt="a good phrase")
    assert "“bad phrase”" in await admin(discord, "filter test", prompt="a BAD-phrase")

    # The catastrophic-backtracking pattern on the longest prompt a member may send: RE2 is
    # linear, so the refusal comes back as fast as any answer.
    started = time.monotonic()
    answer = await refusal(await slash_edit(discord, "a" * 1999))
    took = time.monotonic() - started
    assert "does not allow" in answer.content
    assert took < 5, f"{took:.2f} s"
    slow = await slash_edit(discord, "a" * 1998 + "b")
    assert "job #1" in (await slow.wait_for_original(lambda m: "job" in m.content)).content

    assert "no longer blocked" in await admin(discord, "filter remove", term="bad phrase")
    assert "passes" in await admin(discord, "filter test", prompt="a bad phrase")
    actions = [r["action"] for r in flexbot.query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("filter_add") == 2
    assert actions.count("filter_remove") == 1


async def test_a_flagged_output_in_an_ordinary_channel_posts_no_image_and_says_so(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    it = await slash_edit(discord, "FAKE_FLAGGED lake")
    await it.wait_for_original()
    await flexbot.wait_for_job_state(1, "delivered")
    (posted,) = bot_results(discord)
    assert posted.files == {}
    assert posted.attachments == []
    assert "safety checker flagged" in posted.content
    assert "not shown" in posted.content
    assert "charged" in posted.content
    assert posted.mentioned_user_ids == {discord.alice.id}
    assert "image" not in posted.embeds[0]
    assert "Remix" not in [b["label"] for b in posted.buttons()]
    job = flexbot.job(1)
    assert job["nsfw_flagged"] == 1
    (charge,) = flexbot.query("SELECT amount_micros FROM ledger WHERE kind = 'charge'")
    assert charge["amount_micros"] == job["cost_micros"] > 0
    assert f"${job['cost_micros'] / 1e6:.2f}" in posted.content
    # /show will not post it openly either.
    show = await discord.slash("show", user=discord.alice, options={"job": 1})
    assert "flagged" in (await refusal(show)).content
    assert len(bot_results(discord)) == 1


async def test_a_flagged_output_is_a_spoiler_where_an_age_restricted_channel_chose_it(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    refused = await admin(discord, "safety flagged", channel=discord.general, show="spoiler")
    assert "age-restricted" in refused
    chosen = await admin(discord, "safety flagged", channel=discord.nsfw_channel, show="spoiler")
    assert "spoiler" in chosen
    it = await slash_edit(discord, "FAKE_FLAGGED night", channel=discord.nsfw_channel)
    await it.wait_for_original()
    posted = await discord.nsfw_channel.wait_for_message(lambda m: bool(m.files), timeout=15)
    (name,) = posted.files
    assert name.startswith("SPOILER_")
    assert "image" not in posted.embeds[0]  # an embed would show it openly
    assert "spoiler" in posted.content
    # An unflagged result in the same channel is shown as usual.
    it = await slash_edit(discord, "plain night", channel=discord.nsfw_channel)
    await it.wait_for_original()
    await flexbot.wait_for_job_state(2, "delivered")
    plain = [m for m in discord.nsfw_channel.messages if m.files][-1]
    assert not next(iter(plain.files)).startswith("SPOILER_")
    settings = await admin(discord, "settings")
    assert "flagged_output = spoiler" in settings


async def test_channel_defaults_fill_what_members_leave_out(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    set_ = await admin(
        discord, "defaults set", channel=discord.general, steps=9, format="png", guidance=6.0
    )
    assert "steps 9" in set_
    first = await slash_edit(discord, "one")
    await first.wait_for_original()
    second = await slash_edit(discord, "two", steps=20, format="jpeg")
    await second.wait_for_original()
    elsewhere = await slash_edit(discord, "three", channel=discord.nsfw_channel)
    await elsewhere.wait_for_original()
    params = [json.loads(j["params"]) for j in flexbot.jobs()]
    assert [(p["num_inference_steps"], p["output_format"]) for p in params] == [
        (9, "png"),
        (20, "jpeg"),
        (28, "jpeg"),
    ]
    assert [p["guidance_scale"] for p in params] == [6.0, 6.0, 3.5]
    assert "channel_defaults = steps 9, guidance 6, format png" in await admin(discord, "settings")
    assert "bot's defaults again" in await admin(discord, "defaults clear", channel=discord.general)
    await (await slash_edit(discord, "four")).wait_for_original()
    assert json.loads(flexbot.job(4)["params"])["num_inference_steps"] == 28
