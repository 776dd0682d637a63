"""Proof that the fake Discord harness drives a real discord.py bot end to end."""

from __future__ import annotations

from tests.e2e.conftest import BotProcess
from tests.fakes.discord import FakeDiscord

PNG = b"\x89PNG\r\n\x1a\n" + b"fake image bytes" * 10


async def test_bot_logs_in_and_registers_commands(discord: FakeDiscord, bot: BotProcess) -> None:
    names = {c["name"] for c in discord.commands[None]}
    assert names == {"edit", "post", "Edit with FLUX"}
    assert discord.requests_for("GET /users/@me")
    assert discord.gateway.ops(2), "IDENTIFY received"


async def test_slash_command_is_deferred_then_edited_with_file_and_button(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "make it blue"},
        attachments=[("in.png", PNG, "image/png")],
    )
    assert (await it.wait_for_response())["type"] == 5
    msg = await it.wait_for_original()
    assert msg.content == "edited: make it blue"
    assert msg.files == {"out.png": b"EDITED:" + PNG}
    assert [b["label"] for b in msg.buttons()] == ["Rerun"]
    assert msg.edits and msg.edits[0]["content"] == ""
