"""Proof that the fake Discord harness drives a real discord.py bot end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import BotProcess, StartBot
from tests.fakes.discord import FakeDiscord, FakeMessage, Perm

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
    assert msg.edits
    assert msg.edits[0]["content"] == ""


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
    assert reply.ephemeral
    assert reply.content.startswith("Posted in")


async def test_forbidden_channel_is_reported_ephemerally(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    it = await discord.slash(
        "post", user=discord.alice, options={"channel": discord.locked_channel, "text": "hi"}
    )
    reply = await it.wait_for_original()
    assert reply.ephemeral
    assert "50013" in reply.content
    assert discord.locked_channel.mention in reply.content
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
    gate = discord.gateway.hold_resumes()
    assert await discord.drop_gateway() == 1
    await discord.wait_for(lambda: discord.gateway.ops(6), timeout=10)
    # Sent before the RESUME is answered: it can only reach the bot by replay.
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "late"},
        attachments=[("in.png", PNG, "image/png")],
    )
    gate.set()
    msg = await it.wait_for_original()
    assert msg.content == "edited: late"
    assert discord.gateway.replayed_count >= 1
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


# --- the fake on its own, over plain HTTP: Discord's limits and error shapes ---------------------


@pytest.fixture
async def http(discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    """A client authenticated as the bot."""
    headers = {"Authorization": f"Bot {discord.token}"}
    async with aiohttp.ClientSession(base_url=discord.url, headers=headers) as session:
        yield session


def _messages_url(discord: FakeDiscord, channel_id: int) -> str:
    return f"/api/v10/channels/{channel_id}/messages"


async def test_message_over_2000_chars_is_rejected_like_discord(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        _messages_url(discord, discord.general.id), json={"content": "x" * 2001}
    ) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 2000 or fewer in length.",
                        }
                    ]
                }
            },
        }
    assert discord.general.visible_messages == []


@pytest.mark.parametrize(
    ("body", "error_path"),
    [
        ({"embeds": [{"title": "t" * 257}]}, ["embeds", "0", "title"]),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2500}]}, ["embeds"]),
        ({"embeds": [{"title": "t"}] * 11}, ["embeds"]),
        (
            {
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "a", "custom_id": "x" * 101}
                        ],
                    }
                ]
            },
            ["components", "0", "components", "0", "custom_id"],
        ),
        (
            {
                "components": [
                    {
                        "type": 1,
                        "components": [{"type": 2, "style": 1, "label": "a", "custom_id": "same"}],
                    },
                    {
                        "type": 1,
                        "components": [{"type": 2, "style": 1, "label": "b", "custom_id": "same"}],
                    },
                ]
            },
            ["components", "1", "components", "0", "custom_id"],
        ),
        (
            {
                "components": [
                    {
                        "type": 1,
                        "components": [{"type": 2, "style": 1, "label": "a", "custom_id": "c"}],
                    }
                ]
                * 6
            },
            ["components"],
        ),
    ],
)
async def test_invalid_message_bodies_get_invalid_form_body(
    discord: FakeDiscord, http: aiohttp.ClientSession, body: dict[str, Any], error_path: list[str]
) -> None:
    discord.expect_violations = True  # these bodies are refused on purpose
    async with http.post(
        _messages_url(discord, discord.general.id), json={"content": "c", **body}
    ) as resp:
        data = await resp.json()
    assert resp.status == 400
    assert data["code"] == 50035
    node = data["errors"]
    for key in error_path:
        node = node[key]
    assert node["_errors"]


async def test_file_over_upload_limit_is_413_40005(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps({"content": "big"}), content_type="application/json")
    form.add_field("files[0]", b"\0" * (discord.guild.upload_limit + 1), filename="big.png")
    async with http.post(_messages_url(discord, discord.general.id), data=form) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == 40005


async def test_everyone_with_allowed_mentions_none_pings_nobody(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url = _messages_url(discord, discord.general.id)
    body = {"content": f"@everyone look {discord.alice.mention}", "allowed_mentions": {"parse": []}}
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
    async with http.post(url, json={"content": "@everyone look"}) as resp:
        assert resp.status == 200
    quiet, loud = discord.general.visible_messages
    assert quiet.mentioned_user_ids == set()
    assert not quiet.mention_everyone
    assert loud.mention_everyone
    assert loud.mentioned_user_ids == set(discord.guild.members) - {discord.bot_user.id}


async def test_deleted_message_and_channel_answer_404(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    msg = await discord.general.post(discord.alice, "hello")
    url = f"{_messages_url(discord, discord.general.id)}/{msg.id}"
    async with http.get(url) as resp:
        assert resp.status == 200
        assert (await resp.json())["content"] == "hello"
    await discord.delete_message(msg)
    async with http.get(url) as resp:
        assert (resp.status, (await resp.json())["code"]) == (404, 10008)
    await discord.delete_channel(discord.general)
    async with http.post(_messages_url(discord, discord.general.id), json={"content": "x"}) as resp:
        assert (resp.status, (await resp.json())["code"]) == (404, 10003)


async def test_injected_faults_fire_the_requested_number_of_times(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    route = "GET /channels/{channel_id}"
    discord.faults.server_error(route, times=1)
    discord.faults.forbidden(route, times=1)
    url = f"/api/v10/channels/{discord.general.id}"
    statuses = []
    for _ in range(3):
        async with http.get(url) as resp:
            statuses.append(resp.status)
    assert statuses == [500, 403, 200]


async def test_unknown_route_is_recorded_and_named() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/channels/1/pins") as resp:
            assert resp.status == 404
            assert "GET /api/v10/channels/1/pins" in (await resp.json())["message"]
        assert fake.unknown_routes == ["GET /api/v10/channels/1/pins"]


async def test_guild_has_the_channels_tests_need(discord: FakeDiscord) -> None:
    guild = discord.guild
    bot_id = discord.bot_user.id
    assert discord.nsfw_channel.nsfw
    assert discord.thread.is_thread
    assert discord.thread.parent_id == discord.general.id
    assert not guild.permissions_in(discord.locked_channel, bot_id) & Perm.SEND_MESSAGES
    assert guild.permissions_in(discord.general, bot_id) & Perm.SEND_MESSAGES
    assert guild.permissions_in(discord.locked_channel, discord.alice.id) & Perm.SEND_MESSAGES


async def test_commands_can_be_synced_to_the_guild(
    discord: FakeDiscord, start_bot: StartBot
) -> None:
    await start_bot(sync_guild=True)
    assert None not in discord.commands
    assert {c["name"] for c in discord.commands[discord.guild.id]} == {
        "edit",
        "post",
        "Edit with FLUX",
    }
    it = await discord.slash(
        "edit",
        user=discord.bob,
        options={"prompt": "g"},
        attachments=[("in.png", PNG, "image/png")],
    )
    assert (await it.wait_for_original()).content == "edited: g"


async def test_second_callback_is_already_acknowledged(
    discord: FakeDiscord, bot: BotProcess
) -> None:
    it = await discord.slash(
        "edit",
        user=discord.alice,
        options={"prompt": "p"},
        attachments=[("in.png", PNG, "image/png")],
    )
    await it.wait_for_original()
    url = f"{discord.api_base}/interactions/{it.id}/{it.token}/callback?with_response=1"
    async with aiohttp.ClientSession() as http, http.post(url, json={"type": 5}) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == 40060


async def test_repeated_enforced_nonce_returns_the_first_message(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    body = {"content": "result", "nonce": "flexbot-job-7", "enforce_nonce": True}
    url = _messages_url(discord, discord.general.id)
    async with http.post(url, json=body) as first, http.post(url, json=body) as second:
        assert (await first.json())["id"] == (await second.json())["id"]
    assert len(discord.general.visible_messages) == 1
    discord.clock.advance(minutes=6)  # past Discord's few-minute window: a new message
    async with http.post(url, json=body) as third:
        assert third.status == 200
    assert len(discord.general.visible_messages) == 2
