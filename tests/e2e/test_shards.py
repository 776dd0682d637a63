"""Shards: the fake Discord routes each guild's events to the shard owning it, and Flexbot runs
every shard in one process or a chosen few of them per process.

With two shards the fake's `guild` is on shard 0 and `guild_b` on shard 1
(`(guild_id >> 22) % 2`, the gateway docs' "Sharding").
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest

from bot.fal.fake import FakeFal
from tests.e2e.conftest import StartBot
from tests.e2e.flexbot_fixtures import (
    FLEXBOT_CMD,
    FlexbotRun,
    flexbot_settings,
    slash_edit,
    start_flexbot,
)
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.discord.gateway import INTENT_GUILD_MESSAGES, GatewaySession, Op
from tests.fakes.discord.state import shard_of

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

INTENT_GUILDS = 1


# -- the fake's routing, with raw gateway clients -----------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def identify(
    http: aiohttp.ClientSession, discord: FakeDiscord, shard: list[int] | None
) -> tuple[aiohttp.ClientWebSocketResponse, list[dict[str, Any]]]:
    """Connect and IDENTIFY (with `shard` unless None); the socket and READY + its GUILD_CREATEs."""
    ws = await http.ws_connect(discord.gateway_url)
    hello = await ws.receive_json(timeout=5)
    assert hello["op"] == Op.HELLO
    data: dict[str, Any] = {
        "token": discord.token,
        "intents": INTENT_GUILDS | INTENT_GUILD_MESSAGES,
        "properties": {},
    }
    if shard is not None:
        data["shard"] = shard
    await ws.send_str(json.dumps({"op": Op.IDENTIFY, "d": data}))
    ready = await ws.receive_json(timeout=5)
    assert ready["t"] == "READY", ready
    frames = [ready]
    for _ in ready["d"]["guilds"]:
        frames.append(await ws.receive_json(timeout=5))
    return ws, frames


def guild_ids(frames: list[dict[str, Any]]) -> list[int]:
    return [int(f["d"]["id"]) for f in frames if f["t"] == "GUILD_CREATE"]


def only_session(discord: FakeDiscord, shard_id: int) -> GatewaySession:
    (session,) = discord.gateway.shard_sessions(shard_id)
    return session


async def test_each_shard_gets_only_its_guilds_and_their_events(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    assert shard_of(discord.guild.id, 2) == 0
    assert shard_of(discord.guild_b.id, 2) == 1
    ws0, frames0 = await identify(http, discord, [0, 2])
    ws1, frames1 = await identify(http, discord, [1, 2])
    assert frames0[0]["d"]["shard"] == [0, 2]
    assert frames1[0]["d"]["shard"] == [1, 2]
    assert [g["id"] for g in frames0[0]["d"]["guilds"]] == [str(discord.guild.id)]
    assert guild_ids(frames0) == [discord.guild.id]
    assert guild_ids(frames1) == [discord.guild_b.id]

    await discord.general.post(discord.alice, "on shard 0")
    await discord.general_b.post(discord.carol, "on shard 1")
    assert (await ws0.receive_json(timeout=5))["d"]["content"] == "on shard 0"
    assert (await ws1.receive_json(timeout=5))["d"]["content"] == "on shard 1"
    shard0, shard1 = only_session(discord, 0), only_session(discord, 1)
    assert [m["content"] for m in shard0.events("MESSAGE_CREATE")] == ["on shard 0"]
    assert [m["content"] for m in shard1.events("MESSAGE_CREATE")] == ["on shard 1"]
    # Events outside any guild (DMs) go to shard 0 only.
    assert discord.gateway.route(None) == [shard0]
    assert [op.shard_id for op in discord.gateway.ops(Op.IDENTIFY)] == [0, 1]


async def test_identify_without_shard_is_shard_0_of_1_and_gets_every_guild(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    _, frames = await identify(http, discord, None)
    assert "shard" not in frames[0]["d"]
    assert guild_ids(frames) == [discord.guild.id, discord.guild_b.id]
    (session,) = discord.gateway.sessions
    assert session.shard == (0, 1)
    assert discord.gateway.route(discord.guild_b.id) == [session]


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [1]])
async def test_invalid_shard_is_closed_with_4010(
    discord: FakeDiscord, http: aiohttp.ClientSession, shard: list[int]
) -> None:
    ws = await http.ws_connect(discord.gateway_url)
    await ws.receive_json(timeout=5)
    identify = {"token": discord.token, "intents": 1, "properties": {}, "shard": shard}
    await ws.send_str(json.dumps({"op": Op.IDENTIFY, "d": identify}))
    closed = await ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE
    assert closed.data == 4010
    assert discord.gateway.sessions == []


async def test_gateway_bot_recommends_the_configured_shard_count(discord: FakeDiscord) -> None:
    discord.recommended_shards = 3
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            discord.api_base + "/gateway/bot", headers={"Authorization": f"Bot {discord.token}"}
        )
    assert answer.json()["shards"] == 3


# -- Flexbot --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_shards(discord: FakeDiscord) -> set[tuple[int, int]]:
    return {s.shard for s in discord.gateway.sessions if s.connected}


def interaction_ids(session: GatewaySession) -> set[int]:
    return {int(d["id"]) for d in session.events("INTERACTION_CREATE")}


async def edit_answered(discord: FakeDiscord, run: FlexbotRun, **options: Any) -> FakeInteraction:
    """/edit in a channel; waits until its result is posted there and the job delivered."""
    channel = options["channel"]
    earlier = {m.id for m in channel.messages}
    job = len(run.jobs()) + 1
    it = await slash_edit(discord, **options)
    await channel.wait_for_message(lambda m: bool(m.files) and m.id not in earlier, timeout=15)
    await run.wait_for_job_state(job, "delivered")
    return it


async def test_one_process_runs_the_recommended_shards_and_answers_in_each(
    discord: FakeDiscord, start_bot: StartBot, fal: FakeFal
) -> None:
    discord.recommended_shards = 2
    discord.identify_max_concurrency = 2  # shard 1 may IDENTIFY at once, not 5 s later
    port = free_port()
    run = await start_flexbot(
        discord, start_bot, fal, {"FLEXBOT_HEALTH_PORT": str(port)}, guilds=discord.guilds
    )
    await discord.wait_for(lambda: live_shards(discord) == {(0, 2), (1, 2)})
    assert sorted(op.data["shard"] for op in discord.gateway.ops(Op.IDENTIFY)) == [[0, 2], [1, 2]]
    assert "this process runs every shard Discord recommends" in run.process.log()
    assert len(discord.requests_for("GET /gateway/bot")) == 1
    shard0, shard1 = only_session(discord, 0), only_session(discord, 1)

    in_b = await edit_answered(discord, run, user=discord.carol, channel=discord.general_b)
    in_a = await edit_answered(discord, run, user=discord.alice, channel=discord.general)
    assert interaction_ids(shard1) == {in_b.id}
    assert interaction_ids(shard0) == {in_a.id}
    assert {j["guild_id"] for j in run.jobs()} == {discord.guild.id, discord.guild_b.id}

    # /healthz: "gateway connected" means every shard of the process, not the last one to
    # connect: shard 0 resumes, shard 1 is still down.
    health = f"http://127.0.0.1:{port}/healthz"
    async with httpx.AsyncClient() as client:
        assert (await client.get(health)).status_code == 200
        gate = discord.gateway.hold_resumes(shard_id=1)
        assert await discord.drop_gateway() == 2
        await discord.wait_for(lambda: discord.gateway.resumed_count == 1)
        await discord.wait_for(
            lambda: {op.shard_id for op in discord.gateway.ops(Op.RESUME)} == {0, 1}
        )
        assert live_shards(discord) == {(0, 2)}
        await edit_answered(discord, run, user=discord.alice, channel=discord.general)
        down = await client.get(health)
        assert down.status_code == 503
        assert down.json()["checks"]["discord"] == "Discord gateway is not connected"
        gate.set()
        await discord.wait_for(lambda: discord.gateway.resumed_count == 2)
        await edit_answered(discord, run, user=discord.carol, channel=discord.general_b)
        assert (await client.get(health)).status_code == 200


async def test_a_process_of_shard_1_gets_only_shard_1s_guild_and_registers_nothing(
    discord: FakeDiscord, start_bot: StartBot, fal: FakeFal
) -> None:
    first = await start_flexbot(
        discord,
        start_bot,
        fal,
        {"FLEXBOT_SHARD_COUNT": "2", "FLEXBOT_SHARD_IDS": "0"},
        guilds=discord.guilds,
    )
    syncs = len(discord.command_syncs)
    env = {**flexbot_settings(fal), "FLEXBOT_SHARD_COUNT": "2", "FLEXBOT_SHARD_IDS": "1"}
    process = await start_bot(
        cmd=FLEXBOT_CMD, env=env, sync_guilds=discord.guilds, wait_commands=False
    )
    second = FlexbotRun(process, fal, discord)
    await discord.wait_for(lambda: live_shards(discord) == {(0, 2), (1, 2)})
    # setup_hook (where a sync would be) runs before IDENTIFY: the shard-0 process registered.
    assert len(discord.command_syncs) == syncs
    assert "this process runs shard(s) 1 of 2" in process.log()
    shard0, shard1 = only_session(discord, 0), only_session(discord, 1)
    assert [int(g["id"]) for g in shard1.events("GUILD_CREATE")] == [discord.guild_b.id]

    in_a = await edit_answered(discord, first, user=discord.alice, channel=discord.general)
    in_b = await edit_answered(discord, second, user=discord.carol, channel=discord.general_b)
    assert interaction_ids(shard1) == {in_b.id}
    assert interaction_ids(shard0) == {in_a.id}
    # Each process stored only the job of its own shard's guild.
    assert [j["guild_id"] for j in first.jobs()] == [discord.guild.id]
    assert [j["guild_id"] for j in second.jobs()] == [discord.guild_b.id]
