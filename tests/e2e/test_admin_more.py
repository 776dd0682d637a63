"""/flexadmin credit, audit and settings, and command registration (guild or global), end to end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import StartBot
from tests.e2e.flexbot_fixtures import FLEXBOT_CMD, FlexbotRun, flexbot_settings, slash_edit
from tests.fakes.discord import FakeDiscord, FakeMessage, FakeUser

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

MEMBER_COMMANDS = {"edit", "rerun", "show", "queue", "cancel", "usage", "optout"}
ALL_COMMANDS = {*MEMBER_COMMANDS, "flexadmin", "Edit with FLUX"}
MANAGE_GUILD = 1 << 5


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.1}


@pytest.fixture
def flexbot_env() -> dict[str, str]:
    return {"FLEXBOT_USER_DAILY_CAP": "0.001"}  # below the cost of any edit


async def edit(discord: FakeDiscord, user: FakeUser | None = None) -> FakeMessage:
    it = await slash_edit(discord, "make it blue", user=user, filename="a.png")
    return await it.wait_for_original()


async def admin(discord: FakeDiscord, command: str, **options: Any) -> str:
    it = await discord.slash(f"flexadmin {command}", user=discord.owner_user, options=options)
    answer = await it.wait_for_original()
    assert answer.ephemeral
    return answer.content


async def test_credit_grant_lets_a_member_over_their_cap_edit_and_revoke_takes_it_back(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    refused = await edit(discord)
    assert "daily budget" in refused.content
    assert flexbot.jobs() == []

    said = await admin(discord, "credit grant", member=discord.alice, amount="1.00", reason="prize")
    assert said == f"Granted $1.00 of credit to <@{discord.alice.id}> for this month."
    assert "job #1" in (await edit(discord)).content
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    assert result.mentioned_user_ids == {discord.alice.id}
    await flexbot.wait_for_job_state(1, "delivered")
    charges = flexbot.query("SELECT user_id FROM ledger WHERE job_id = 1 AND kind = 'charge'")
    assert charges == [{"user_id": discord.alice.id}]
    # Bob got no credit and stays under the cap.
    assert "daily budget" in (await edit(discord, discord.bob)).content

    said = await admin(discord, "credit revoke", member=discord.alice, amount="1.00")
    assert said.startswith(f"Revoked $1.00 of credit from <@{discord.alice.id}>")
    assert "daily budget" in (await edit(discord)).content
    assert len(flexbot.jobs()) == 1


async def test_audit_lists_who_changed_what(discord: FakeDiscord, flexbot: FlexbotRun) -> None:
    it = await discord.slash("flexadmin audit", user=discord.owner_user)
    assert (await it.wait_for_original()).content == "No admin changes yet."

    await admin(discord, "limit set", limit="user_daily_cap", value="0.0005", member=discord.bob)
    await admin(discord, "access block", member=discord.alice, reason="spam")
    await admin(discord, "credit grant", member=discord.bob, amount="0.75")
    await admin(discord, "pause")

    # A member without Manage Server can neither change nor read the audit.
    it = await discord.slash("flexadmin audit", user=discord.alice)
    assert "Manage Server" in (await it.wait_for_original()).content

    lines = (await admin(discord, "audit")).splitlines()
    owner = f"<@{discord.owner_user.id}>"
    assert len(lines) == 4
    assert all(owner in line for line in lines)
    actions = [line.split(owner, 1)[1].split()[0] for line in lines]
    assert actions == ["pause", "grant_credit", "block", "set_limit"]  # newest first
    # Members as mentions and money in dollars, not ids and micro-dollars.
    assert lines[1].endswith(f"grant_credit amount=$0.75 user=<@{discord.bob.id}>")
    assert lines[2].endswith(f"block reason=spam user=<@{discord.alice.id}>")
    assert lines[3].endswith(
        f"set_limit name=user_daily_cap scope=user target=<@{discord.bob.id}> value=$0.0005"
    )
    rows = flexbot.query("SELECT actor_id, action FROM audit ORDER BY id")
    assert [r["action"] for r in rows] == ["set_limit", "block", "grant_credit", "pause"]
    assert {r["actor_id"] for r in rows} == {discord.owner_user.id}


async def test_settings_show_changed_values_with_their_source(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    async def settings_text() -> str:
        it = await discord.slash("flexadmin settings", user=discord.owner_user)
        msg = await it.wait_for_original()
        assert msg.ephemeral
        return msg.content + "".join(b.decode() for b in msg.files.values())

    before = await settings_text()
    assert "user_daily_cap = $0.001  (environment)" in before  # the owner's setting
    assert "user_monthly_cap = $10.00  (default)" in before
    assert "server override" not in before
    assert "paused = no  (default)" in before

    # The owner's setting is a ceiling: a server admin can lower it, never raise it.
    refused = await admin(discord, "limit set", limit="user_daily_cap", value="3")
    assert "$0.001" in refused
    await admin(discord, "limit set", limit="user_max_queued", value="4", member=discord.bob)
    await admin(discord, "access role", role=discord.artists_role)
    await admin(discord, "pause")
    after = await settings_text()
    assert "user_daily_cap = $0.001  (environment)" in after
    assert f"user_max_queued = 4  (<@{discord.bob.id}> override)" in after
    assert f"required_role = <@&{discord.artists_role.id}>  (server)" in after
    assert "paused = yes  (server)" in after

    # The ceiling is what the engine obeys: alice (an Artist) still does not fit under it.
    await admin(discord, "resume")
    assert "daily budget" in (await edit(discord)).content


async def test_guild_sync_registers_every_command_in_the_guild(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    gid = discord.guild.id
    assert [scope for scope, _ in discord.command_syncs] == [gid]
    assert None not in discord.commands
    registered = {c["name"]: c for c in discord.commands[gid]}
    assert set(registered) == ALL_COMMANDS
    assert all(c["guild_id"] == str(gid) for c in registered.values())
    flexadmin = registered["flexadmin"]
    assert int(flexadmin["default_member_permissions"]) == MANAGE_GUILD
    subs = {o["name"] for o in flexadmin["options"]}
    assert {"usage", "export", "settings", "audit", "pause", "resume"} <= subs
    assert {"limit", "credit", "access", "safety"} <= subs
    assert registered["Edit with FLUX"]["type"] == 3
    # They answer at once: a member's /usage works.
    it = await discord.slash("usage", user=discord.alice)
    assert (await it.wait_for_original(lambda m: bool(m.files))).ephemeral


async def test_without_sync_guilds_commands_are_registered_globally(
    discord: FakeDiscord, start_bot: StartBot, fal: Any
) -> None:
    env = {**flexbot_settings(fal), "FLEXBOT_DISCORD_SYNC_GUILDS": ""}
    process = await start_bot(cmd=FLEXBOT_CMD, env=env, sync_guild=False)
    assert [scope for scope, _ in discord.command_syncs] == [None]
    assert discord.guild.id not in discord.commands
    registered = {c["name"]: c for c in discord.commands[None]}
    assert set(registered) == ALL_COMMANDS
    assert all("guild_id" not in c for c in registered.values())
    assert "global command(s)" in process.log()
    it = await discord.slash("usage", user=discord.alice)
    assert (await it.wait_for_original(lambda m: bool(m.files))).ephemeral


async def test_an_edit_refused_for_its_budget_downloads_and_stores_nothing(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    refused = await edit(discord)
    assert "daily budget" in refused.content
    assert discord.cdn_downloads == []  # refused from the declared size, before downloading
    blobs = flexbot.data_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
    assert flexbot.query("SELECT * FROM blobs") == []
    # The same edit, once it fits, downloads its image (the check above is not vacuous).
    await admin(discord, "credit grant", member=discord.alice, amount="1.00")
    assert "job #1" in (await edit(discord)).content
    assert discord.cdn_downloads
