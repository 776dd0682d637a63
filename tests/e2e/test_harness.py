"""Proof that the fake Discord harness drives a real discord.py bot end to end."""

from __future__ import annotations

import aiohttp

from tests.e2e.conftest import BotProcess
from tests.fakes.discord import FakeDiscord, FakeMessage

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


async def _slash_edit(discord: FakeDiscord) -> FakeMessage:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "p"},
        attachments=[("in.png", PNG, "image/png")],
    )
    return await it.wait_for_original()


async def test_button_click_posts_a_channel_message(discord: FakeDiscord, bot: BotProcess) -> None:
    answer = await _slash_edit(discord)
    click = await discord.click(answer, "Rerun", user=discord.bob)
    assert (await click.wait_for_response())["type"] == 6
    posted = await discord.general.wait_for_message(lambda m: m.content.startswith("rerun of job"))
    assert posted.mentioned_user_ids == {discord.bob.id}
    assert not posted.ephemeral


async def test_rate_limited_send_is_retried_by_discord_py(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    route = "POST /channels/{channel_id}/messages"
    discord.faults.rate_limit(route, times=1, retry_after=0.1, channel_id=discord.general.id)
    it = await discord.slash(
        "post", user=discord.alice, options={"channel": discord.general, "text": "hi"}
    )
    msg = await discord.general.wait_for_message(lambda m: m.content == "hi")
    assert [r.status for r in discord.requests_for(route)] == [429, 200]
    assert msg.author is discord.bot_user
    reply = await it.wait_for_original()
    assert reply.ephemeral and reply.content.startswith("Posted in")


async def test_forbidden_channel_is_reported_ephemerally(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    it = await discord.slash(
        "post", user=discord.alice, options={"channel": discord.locked_channel, "text": "hi"}
    )
    reply = await it.wait_for_original()
    assert reply.ephemeral
    assert "50013" in reply.content and discord.locked_channel.mention in reply.content
    assert discord.locked_channel.visible_messages == []
    assert discord.requests_for("POST /channels/{channel_id}/messages")[0].status == 403


async def test_button_works_after_sigkill_and_restart(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    answer = await _slash_edit(discord)
    first_pid = bot.pid
    await bot.restart(kill=True)
    assert bot.pid != first_pid
    await discord.click(answer, "Rerun", user=discord.alice)
    posted = await discord.general.wait_for_message(lambda m: m.content.startswith("rerun of job"))
    assert f"pid {bot.pid}" in posted.content


async def test_bot_resumes_after_gateway_drop_and_gets_missed_events(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    assert await discord.drop_gateway() == 1
    # Sent while the bot is disconnected: Discord replays it after RESUME.
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "late"},
        attachments=[("in.png", PNG, "image/png")],
    )
    msg = await it.wait_for_original()
    assert msg.content == "edited: late"
    assert discord.gateway.ops(6), "RESUME received"
    assert discord.gateway.resumed_count == 1
    assert discord.gateway.ready_count == 1


async def test_context_menu_opens_modal_and_submit_is_answered(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    source = await discord.general.post(
        discord.bob, "look", attachments=[("cat.png", PNG, "image/png")]
    )
    menu = await discord.context_menu("Edit with FLUX", message=source, user=discord.alice)
    modal = await menu.wait_for_modal()
    assert modal["title"] == "Edit with FLUX"
    submit = await discord.submit_modal(menu, {"prompt": "a hat"})
    reply = await submit.wait_for_original()
    assert reply.content == f"prompt=a hat source={source.id} images=1"


async def test_expired_interaction_token_is_rejected(discord: FakeDiscord, bot: BotProcess) -> None:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "p"},
        attachments=[("in.png", PNG, "image/png")],
    )
    await it.wait_for_original()
    discord.clock.advance(minutes=16)
    url = f"{discord.api_base}/webhooks/{discord.application_id}/{it.token}/messages/@original"
    async with aiohttp.ClientSession() as http, http.patch(url, json={"content": "late"}) as resp:
        assert resp.status == 401
        assert await resp.json() == {"message": "Invalid Webhook Token", "code": 50027}
