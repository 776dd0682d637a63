"""/edit and "Edit with FLUX" end to end: real Flexbot, fake Discord, fake fal, SQLite on disk."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import FlexbotRun, png
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
