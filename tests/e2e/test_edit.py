"""/edit and "Edit with FLUX" end to end: real Flexbot, fake Discord, fake fal, SQLite on disk."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import FlexbotRun, png, slash_edit
from tests.fakes.discord import FakeDiscord, FakeMessage

pytest_plugins = ["tests.e2e.flexbot_fixtures"]


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.3}


async def edit(discord: FakeDiscord, **options: Any) -> tuple[Any, FakeMessage]:
    """Run /edit with two images; return the interaction and the posted result."""
    it = await discord.slash(
        "edit",
        user=options.pop("user", discord.alice),
        options={"prompt": "make it blue", **options},
        attachments=[
            ("a.png", png((200, 0, 0)), "image/png"),
            ("b.png", png((0, 200, 0)), "image/png"),
        ],
    )
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    return it, result


async def test_edit_with_two_images_posts_result_replying_to_status(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it, result = await edit(discord, seed=77, steps=12, guidance=4.5)
    assert it.callbacks[0]["type"] == 5
    ack = await it.wait_for_original()
    assert ack.ephemeral
    assert "job #1" in ack.content
    status = it.followups[0]
    assert not status.ephemeral
    assert result.message_reference is not None
    assert int(result.message_reference["message_id"]) == status.id
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Seed"] == "77"
    assert fields["Steps"] == "12"
    assert fields["Guidance"] == "4.5"
    assert fields["Requester"] == f"<@{discord.alice.id}>"
    assert [b["label"] for b in result.buttons()] == ["Rerun", "Reroll", "Tweak", "Remix", "Delete"]
    assert result.mentioned_user_ids == {discord.alice.id}
    await discord.wait_for(lambda: str(result.id) in status.content)
    await flexbot.wait_for_job_state(1, "delivered")
    assert flexbot.job(1)["result_message_id"] == result.id


async def test_everyone_in_prompt_pings_nobody_but_the_requester(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    _, result = await edit(discord, prompt=f"@everyone look <@{discord.bob.id}>")
    assert not result.mention_everyone
    assert result.mentioned_user_ids == {discord.alice.id}


async def test_non_image_is_refused_by_name_and_nothing_is_charged(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "blue"},
        attachments=[
            ("ok.png", png(), "image/png"),
            ("notes.txt", b"hello, not an image", "text/plain"),
        ],
    )
    answer = await it.wait_for_original()
    assert answer.ephemeral
    assert "notes.txt" in answer.content
    assert flexbot.jobs() == []
    assert not [m for m in discord.general.messages if not m.ephemeral]


async def test_out_of_range_value_is_refused(discord: FakeDiscord, flexbot: FlexbotRun) -> None:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "blue", "size": "9000x9000"},
        attachments=[("ok.png", png(), "image/png")],
    )
    answer = await it.wait_for_original()
    assert answer.ephemeral
    assert "9000" in answer.content
    assert flexbot.jobs() == []


@pytest.mark.parametrize("flexbot_env", [{"FLEXBOT_USER_DAILY_CAP": "0.001"}])
async def test_over_budget_is_refused_with_the_cap(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await slash_edit(discord, "blue")
    answer = await it.wait_for_original()
    assert answer.ephemeral
    assert "daily" in answer.content.lower()
    assert flexbot.jobs() == []


async def test_bot_without_send_permission_names_what_is_missing(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await slash_edit(discord, "blue", channel=discord.locked_channel)
    answer = await it.wait_for_original()
    assert answer.ephemeral
    assert "Send Messages" in answer.content
    assert flexbot.jobs() == []


@pytest.mark.parametrize("fal_options", [{"processing_time": 1.5}])
async def test_job_finishing_after_token_expiry_still_delivers(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await slash_edit(discord, "slow")
    await it.wait_for_followup(lambda m: "Job #1" in m.content)
    await flexbot.wait_for_job_state(1, "running")
    discord.clock.advance(minutes=16)
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    assert "job #1" in result.content
    await flexbot.wait_for_job_state(1, "delivered")


async def test_context_menu_opens_modal_and_queues_an_edit(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    source = await discord.general.post(
        discord.bob, "look", attachments=[("cat.png", png((1, 2, 3)), "image/png")]
    )
    it = await discord.context_menu("Edit with FLUX", user=discord.alice, message=source)
    modal = await it.wait_for_modal()
    sub = await discord.submit_modal(
        modal,
        {"prompt": "add a hat", "images": [("hat.png", png((9, 9, 9)), "image/png")]},
        user=discord.alice,
    )
    result = await discord.general.wait_for_message(
        lambda m: bool(m.files) and m.author is discord.bot_user, timeout=15
    )
    assert (await sub.wait_for_original()).ephemeral
    assert result.embeds[0]["description"] == "add a hat"
    job = flexbot.job(1)
    assert job["origin"] == "context_menu"
    assert job["source_message_id"] == source.id
    assert job["user_id"] == discord.alice.id
