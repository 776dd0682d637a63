"""One server cannot see or use another's jobs (issue 11), end to end: real Flexbot in two fake
guilds, fake fal, SQLite on disk.

The rule: a job is visible and usable only from its own server, through its channel's safety
policy (an age-restricted job never reappears in an ordinary channel), and a moderator is one in
the job's server. A refused lookup reads exactly like a missing job: "There is no job #N.".
Every refusal here is checked for what a member would notice: the private answer, no message in
the channel, no job queued, nothing charged. Each test first shows the same path working inside
the job's own server, so a refusal cannot pass because the path is broken.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection
from typing import Any

import pytest

from tests.e2e.conftest import StartBot
from tests.e2e.flexbot_fixtures import FlexbotRun, png, slash_edit, start_flexbot
from tests.fakes.discord import (
    FakeChannel,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    Perm,
)

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

SECRET = "the secret plans of server A"
# What to type into the modals the Tweak, Remix and "Edit with FLUX" paths may open.
MODAL_VALUES = {
    "Tweak": {"prompt": "stolen", "steps": "10", "guidance": "4", "seed": "1"},
    "Remix": {"prompt": "stolen"},
    "Edit with FLUX": {"prompt": "add a hat"},
}


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.2}


@pytest.fixture
async def flexbot(
    discord: FakeDiscord, start_bot: StartBot, fal: Any, flexbot_env: dict[str, str]
) -> FlexbotRun:
    """The real Flexbot with its commands in both servers."""
    return await start_flexbot(discord, start_bot, fal, flexbot_env, guilds=discord.guilds)


# -- what a member sees --------------------------------------------------------------------------


def bot_posts(
    channels: list[FakeChannel], *, besides: Collection[FakeMessage] = ()
) -> list[FakeMessage]:
    """The bot's public messages in `channels`: what every member there sees."""
    return [
        m
        for ch in channels
        for m in ch.visible_messages
        if m.author.bot and not m.ephemeral and m not in besides
    ]


def describe(posts: list[FakeMessage]) -> list[str]:
    return [
        f"#{m.channel.name} of {m.channel.guild.name!r}: {m.content[:70]!r} files={list(m.files)}"
        for m in posts
    ]


def channels_of_b(discord: FakeDiscord) -> list[FakeChannel]:
    return list(discord.guild_b.channels.values())


async def final_answer(discord: FakeDiscord, it: FakeInteraction, values: dict[str, Any]) -> Any:
    """The member's private answer; if the bot opened a modal instead, it must not show job
    details (the secret prompt), and its answer is the one to the submitted modal."""
    await it.wait_for_response()
    if it.modal is not None:
        assert SECRET not in json.dumps(it.modal), f"the modal showed the job's prompt: {it.modal}"
        it = await discord.submit_modal(it, values)
    return await it.wait_for_original()


async def expect_refused(
    discord: FakeDiscord,
    it: FakeInteraction,
    expected: str,
    watch: list[FakeChannel],
    *,
    values: dict[str, Any] | None = None,
    besides: Collection[FakeMessage] = (),
) -> None:
    """The member is told `expected`, privately, and the bot posts nothing in `watch`."""
    answer = await final_answer(discord, it, values or {})
    if answer.content != expected:
        # The refusal did not happen: let what the bot does next land, so the failure shows it.
        with contextlib.suppress(TimeoutError):
            await discord.wait_for(lambda: bot_posts(watch, besides=besides), timeout=3)
    posted = describe(bot_posts(watch, besides=besides))
    assert answer.content == expected, f"answered {answer.content!r}; the bot then posted {posted}"
    assert answer.ephemeral
    assert not answer.files
    assert posted == []


def assert_nothing_queued_or_charged(flexbot: FlexbotRun, jobs: int, *users: FakeUser) -> None:
    assert len(flexbot.jobs()) == jobs, f"a job was queued: {flexbot.jobs()[jobs:]}"
    for user in users:
        rows = flexbot.query("SELECT * FROM ledger WHERE user_id = ?", (user.id,))
        assert rows == [], f"{user.username} was charged: {rows}"


# -- making jobs in server A ---------------------------------------------------------------------


async def result_in(discord: FakeDiscord, flexbot: FlexbotRun, channel: FakeChannel) -> FakeMessage:
    """Alice's edit in `channel` of server A, delivered: job #1's result message."""
    it = await slash_edit(discord, SECRET, channel=channel, filename="private.png")
    assert "job #1" in (await it.wait_for_original()).content
    result = await channel.wait_for_message(
        lambda m: bool(m.files) and m.author is discord.bot_user, timeout=15
    )
    await flexbot.wait_for_job_state(1, "delivered")
    return result


async def queued_ack(discord: FakeDiscord, it: FakeInteraction, job_id: int) -> None:
    """A positive control: the path queues job `job_id` for the member."""
    answer = await it.wait_for_original()
    assert answer.content.startswith(f"Queued as job #{job_id}"), answer.content


# -- the fake's second server --------------------------------------------------------------------


async def test_second_server_is_announced_and_gets_the_commands(
    discord: FakeDiscord, start_bot: StartBot
) -> None:
    bot = await start_bot(sync_guilds=discord.guilds)
    a, b = discord.guild, discord.guild_b
    assert [scope for scope, _ in discord.command_syncs] == [a.id, b.id]
    assert {c["name"] for c in discord.commands[b.id]} == {"edit", "post", "Edit with FLUX"}
    assert discord.alice.id in a.members
    assert discord.alice.id in b.members
    assert discord.carol.id in b.members
    assert discord.carol.id not in a.members
    assert discord.mod_b.id not in a.members
    assert b.permissions_in(discord.general_b, discord.mod_b.id) & Perm.MANAGE_MESSAGES
    assert not b.permissions_in(discord.general_b, discord.carol.id) & Perm.MANAGE_MESSAGES
    assert not b.permissions_in(discord.general_b, discord.alice.id) & Perm.MANAGE_MESSAGES
    assert discord.nsfw_channel_b.nsfw
    assert not discord.general_b.nsfw
    # The bot got both servers at login and answers a member of B in B's channel.
    it = await discord.slash(
        "edit",
        user=discord.carol,
        channel=discord.general_b,
        options={"prompt": "hi"},
        attachments=[("a.png", png(), "image/png")],
    )
    answer = await it.wait_for_original()
    assert answer.channel is discord.general_b
    assert answer.content == "edited: hi"
    (session,) = discord.gateway.sessions
    created = [f["d"]["id"] for f in session.log if f["t"] == "GUILD_CREATE"]
    assert created == [str(a.id), str(b.id)]
    assert bot.tracebacks() == []


# -- /show ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ordinary", "age-restricted"])
async def test_show_of_another_servers_job_is_refused_and_posts_nothing(
    discord: FakeDiscord, flexbot: FlexbotRun, kind: str
) -> None:
    here, there = (
        (discord.general, discord.general_b)
        if kind == "ordinary"
        else (discord.nsfw_channel, discord.nsfw_channel_b)
    )
    await result_in(discord, flexbot, here)

    # Control: in its own server (and the same kind of channel) /show posts the result.
    show = await discord.slash("show", user=discord.bob, channel=here, options={"job": 1})
    assert (await show.wait_for_followup(lambda m: bool(m.files))).files

    # From server B: neither alice (who asked for it, and is in both servers) nor carol.
    for user in (discord.alice, discord.carol):
        show = await discord.slash("show", user=user, channel=there, options={"job": 1})
        await expect_refused(discord, show, "There is no job #1.", channels_of_b(discord))
    missing = await discord.slash("show", user=discord.carol, channel=there, options={"job": 9})
    await expect_refused(discord, missing, "There is no job #9.", channels_of_b(discord))


# -- /rerun --------------------------------------------------------------------------------------


async def test_rerun_command_of_another_servers_job_is_refused_and_queues_nothing(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    await result_in(discord, flexbot, discord.general)
    rerun = await discord.slash("rerun", user=discord.bob, options={"job": 1})
    await queued_ack(discord, rerun, 2)

    for user in (discord.carol, discord.alice):
        rerun = await discord.slash(
            "rerun", user=user, channel=discord.general_b, options={"job": 1, "steps": 9}
        )
        await expect_refused(discord, rerun, "There is no job #1.", channels_of_b(discord))
    assert_nothing_queued_or_charged(flexbot, 2, discord.carol)
    assert all(j["guild_id"] == discord.guild.id for j in flexbot.jobs())


# -- the result buttons --------------------------------------------------------------------------


@pytest.mark.parametrize("button", ["Rerun", "Reroll", "Tweak", "Remix"])
async def test_result_button_of_another_servers_job_is_refused_and_queues_nothing(
    discord: FakeDiscord, flexbot: FlexbotRun, button: str
) -> None:
    result = await result_in(discord, flexbot, discord.general)
    values = MODAL_VALUES.get(button, {})

    # Control: bob clicks it in server A and gets job #2.
    click = await discord.click(result, button, user=discord.bob)
    if button in ("Tweak", "Remix"):
        await click.wait_for_modal()
        click = await discord.submit_modal(click, values)
    await queued_ack(discord, click, 2)

    # The same buttons on a message in server B (as /show posted them before the fix; the
    # buttons keep working after restarts, so each click must be checked).
    copy = await discord.post_as_bot(
        discord.general_b, "Job #1 posted below.", components=result.components
    )
    click = await discord.click(copy, button, user=discord.carol)
    await expect_refused(
        discord,
        click,
        "There is no job #1.",
        channels_of_b(discord),
        values=values,
        besides=(copy,),
    )
    assert_nothing_queued_or_charged(flexbot, 2, discord.carol)


# -- the safety policy inside one server ---------------------------------------------------------


async def test_age_restricted_job_cannot_be_shown_or_rerun_in_an_ordinary_channel(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    result = await result_in(discord, flexbot, discord.nsfw_channel)
    nsfw = discord.nsfw_channel

    # Controls: from an age-restricted channel both work.
    show = await discord.slash("show", user=discord.bob, channel=nsfw, options={"job": 1})
    assert (await show.wait_for_followup(lambda m: bool(m.files))).files
    rerun = await discord.slash("rerun", user=discord.bob, channel=nsfw, options={"job": 1})
    await queued_ack(discord, rerun, 2)

    ordinary = [discord.general]
    show = await discord.slash("show", user=discord.bob, options={"job": 1})
    await expect_refused(discord, show, "There is no job #1.", ordinary)
    rerun = await discord.slash("rerun", user=discord.bob, options={"job": 1})
    await expect_refused(discord, rerun, "There is no job #1.", ordinary)
    copy = await discord.post_as_bot(discord.general, "Job #1", components=result.components)
    click = await discord.click(copy, "Rerun", user=discord.bob)
    await expect_refused(discord, click, "There is no job #1.", ordinary, besides=(copy,))
    assert len(flexbot.jobs()) == 2


# -- /cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flexbot_env", [{"FLEXBOT_USER_MAX_RUNNING": "1"}])  # keep job 2 queued
@pytest.mark.parametrize("fal_options", [{"processing_time": 30.0}])
async def test_moderator_of_another_server_cannot_cancel_a_job(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    for n, prompt in enumerate(("first", "second", "third"), start=1):
        it = await slash_edit(discord, prompt)
        assert f"job #{n}" in (await it.wait_for_original()).content
    await flexbot.wait_for_job_state(1, "running")
    await flexbot.wait_for_job_state(2, "queued")
    await flexbot.wait_for_job_state(3, "queued")

    # Control: server A's moderator cancels alice's queued job #3.
    cancel = await discord.slash("cancel", user=discord.mod, options={"job": 3})
    answer = await cancel.wait_for_original()
    assert answer.content == "Job #3 cancelled; nothing was charged."
    await flexbot.wait_for_job_state(3, "cancelled")

    # Server B's moderator (Manage Messages there), and a plain member of B: the same as no job.
    for user in (discord.mod_b, discord.carol):
        for job_id in (2, 1):
            cancel = await discord.slash(
                "cancel", user=user, channel=discord.general_b, options={"job": job_id}
            )
            expected = f"There is no job #{job_id}."
            await expect_refused(discord, cancel, expected, channels_of_b(discord))
    assert flexbot.job(2)["state"] == "queued"
    assert flexbot.job(2)["held_micros"] > 0
    assert flexbot.job(1)["state"] == "running"
    assert flexbot.job(1)["cancel_requested"] == 0
    assert flexbot.fal.cancels == 0


# -- "Edit with FLUX" and the remix opt-out ------------------------------------------------------


async def test_edit_with_flux_refuses_a_message_whose_author_opted_out_of_remixes(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    def image_post(user: FakeUser) -> Any:
        return discord.general.post(
            user, "my art", attachments=[("art.png", png((1, 2, 3)), "image/png")]
        )

    opt = await discord.slash("optout remix", user=discord.bob, options={"state": "on"})
    assert "can no longer remix" in (await opt.wait_for_original()).content
    bobs = await image_post(discord.bob)
    mods = await image_post(discord.mod)

    # Controls: a member who did not opt out, and bob on his own message.
    for user, source, job_id in ((discord.alice, mods, 1), (discord.bob, bobs, 2)):
        menu = await discord.context_menu("Edit with FLUX", user=user, message=source)
        await menu.wait_for_modal()
        sub = await discord.submit_modal(menu, MODAL_VALUES["Edit with FLUX"])
        await queued_ack(discord, sub, job_id)
    await flexbot.wait_for_job_state(1, "delivered")
    await flexbot.wait_for_job_state(2, "delivered")
    before = bot_posts([discord.general])

    menu = await discord.context_menu("Edit with FLUX", user=discord.alice, message=bobs)
    answer = await final_answer(discord, menu, MODAL_VALUES["Edit with FLUX"])
    # The refusal names the reason: the author opted out of others remixing their images.
    says_why = re.search(r"opted out|remix", answer.content, re.IGNORECASE) is not None
    if not says_why:
        with contextlib.suppress(TimeoutError):
            await discord.wait_for(lambda: bot_posts([discord.general], besides=before), timeout=3)
    posted = describe(bot_posts([discord.general], besides=before))
    assert says_why, f"answered {answer.content!r}; then posted {posted}"
    assert "Queued" not in answer.content
    assert answer.ephemeral
    assert posted == []
    assert len(flexbot.jobs()) == 2
