"""The global gates and the error boundary end to end: blocked members, paused servers, allowed
channels, a required role, the safety policy and "Something went wrong (ref ...)" in the log."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import FlexbotRun, slash_edit
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeMessage, FakeUser

pytest_plugins = ["tests.e2e.flexbot_fixtures"]


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.1}


async def edit(
    discord: FakeDiscord,
    user: FakeUser | None = None,
    channel: FakeChannel | None = None,
    **options: Any,
) -> FakeMessage:
    """Run /edit and return the member's (ephemeral) answer once it is final."""
    it = await slash_edit(
        discord,
        "make it blue",
        user=user,
        channel=channel or discord.general,
        filename="a.png",
        **options,
    )
    return await it.wait_for_original()


async def admin(discord: FakeDiscord, command: str, **options: Any) -> str:
    """Run a /flexadmin subcommand as the server owner; return its ephemeral answer."""
    it = await discord.slash(f"flexadmin {command}", user=discord.owner_user, options=options)
    answer = await it.wait_for_original()
    assert answer.ephemeral
    return answer.content


def public_messages(discord: FakeDiscord) -> list[FakeMessage]:
    return [
        m for ch in (discord.general, discord.nsfw_channel) for m in ch.messages if not m.ephemeral
    ]


async def test_blocked_member_is_refused_and_nothing_is_queued(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    said = await admin(discord, "access block", member=discord.bob, reason="spam")
    assert f"<@{discord.bob.id}> can no longer use Flexbot" in said
    answer = await edit(discord, user=discord.bob)
    assert answer.ephemeral
    assert answer.content == "You are not allowed to use Flexbot here."
    assert flexbot.jobs() == []
    assert flexbot.query("SELECT * FROM ledger") == []
    assert public_messages(discord) == []

    # Someone else is not affected; unblocking lets bob back in.
    assert "job #1" in (await edit(discord, user=discord.alice)).content
    await admin(discord, "access unblock", member=discord.bob)
    assert "job #2" in (await edit(discord, user=discord.bob)).content


async def test_paused_server_refuses_edit_until_resumed(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    said = await admin(discord, "pause", reason="maintenance")
    assert "paused on this server" in said
    answer = await edit(discord)
    assert answer.ephemeral
    assert "paused on this server" in answer.content
    assert flexbot.jobs() == []
    assert public_messages(discord) == []

    assert "again" in await admin(discord, "resume")
    answer = await edit(discord)
    assert "job #1" in answer.content
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    assert "job #1 is ready" in result.content
    await flexbot.wait_for_job_state(1, "delivered")


async def test_allowed_channels_refuse_elsewhere_and_name_where(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    said = await admin(discord, "access allow", channel=discord.nsfw_channel)
    assert f"only in <#{discord.nsfw_channel.id}>" in said
    answer = await edit(discord, channel=discord.general)
    assert answer.ephemeral
    assert "not enabled in this channel" in answer.content
    assert f"<#{discord.nsfw_channel.id}>" in answer.content
    assert flexbot.jobs() == []

    answer = await edit(discord, channel=discord.nsfw_channel)
    assert "job #1" in answer.content
    assert flexbot.job(1)["channel_id"] == discord.nsfw_channel.id


async def test_required_role_refuses_members_without_it(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    role = discord.artists_role
    said = await admin(discord, "access role", role=role)
    assert f"<@&{role.id}>" in said
    answer = await edit(discord, user=discord.bob)  # bob lacks Artists
    assert answer.ephemeral
    assert answer.content == f"You need the <@&{role.id}> role to use Flexbot here."
    assert flexbot.jobs() == []

    answer = await edit(discord, user=discord.alice)  # alice has Artists
    assert "job #1" in answer.content
    assert flexbot.job(1)["user_id"] == discord.alice.id


async def test_safety_members_may_ask_stricter_never_looser(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    answer = await edit(discord, safety="5")
    assert answer.ephemeral
    assert "Safety level 5 is not allowed in this channel" in answer.content
    assert "the highest here is 2" in answer.content
    assert flexbot.jobs() == []

    answer = await edit(discord, safety_checker=False)
    assert answer.ephemeral
    assert "safety checker can only be switched off in age-restricted channels" in answer.content
    assert flexbot.jobs() == []

    answer = await edit(discord, safety="1")
    assert "job #1" in answer.content
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Safety"] == "1"
    assert json.loads(flexbot.job(1)["params"])["safety_tolerance"] == "1"


async def test_admin_cannot_allow_checker_off_in_a_normal_channel_but_can_in_an_nsfw_one(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    said = await admin(
        discord, "safety set", tolerance="5", channel=discord.general, checker_off=True
    )
    assert "only be switched off in age-restricted channels" in said
    assert flexbot.query("SELECT * FROM safety_policy") == []
    answer = await edit(discord, safety_checker=False)
    assert "age-restricted" in answer.content
    assert flexbot.jobs() == []

    said = await admin(
        discord, "safety set", tolerance="5", channel=discord.nsfw_channel, checker_off=True
    )
    assert "is now 5" in said
    answer = await edit(discord, channel=discord.nsfw_channel, safety="5", safety_checker=False)
    assert "job #1" in answer.content
    result = await discord.nsfw_channel.wait_for_message(lambda m: bool(m.files), timeout=15)
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Safety"] == "5, checker off"


async def test_unexpected_error_gives_a_reference_that_is_in_the_log(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    await edit(discord)
    await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    await flexbot.wait_for_job_state(1, "delivered")
    # Damage the stored result on disk: its file becomes a directory, so reading it fails with
    # an OSError the bot does not expect (not "expired", which is a missing file).
    sha = flexbot.job(1)["output_hash"]
    blob = next(p for p in flexbot.data_dir.rglob(sha) if p.is_file())
    blob.unlink()
    blob.mkdir()
    flexbot.process.expect_errors = True

    it = await discord.slash("show", user=discord.alice, options={"job": 1})
    answer = await it.wait_for_original()
    assert answer.ephemeral
    match = re.search(r"Something went wrong \(ref ([0-9a-f]{6})\)", answer.content)
    assert match, answer.content
    ref = match[1]
    await discord.wait_for(lambda: f"ref={ref}" in flexbot.process.log(), timeout=5)
    log = flexbot.process.log()
    assert "IsADirectoryError" in log.split(f"ref={ref}", 1)[1]
    shutil.rmtree(blob)
