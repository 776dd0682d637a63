"""/flexadmin report: the last check against fal's request list, whole bot for the bot's owner,
one server's jobs for that server's admins."""

from __future__ import annotations

from tests.e2e.flexbot_fixtures import FlexbotRun
from tests.fakes.discord import FakeDiscord, FakeUser

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

MANAGE_GUILD = 1 << 5


async def report(discord: FakeDiscord, user: FakeUser) -> str:
    it = await discord.slash("flexadmin report", user=user)
    answer = await it.wait_for_original()
    assert answer.ephemeral
    return answer.content


async def test_the_owner_sees_the_whole_bot_and_a_servers_admin_only_their_jobs(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    # The bot checks once at start; ask until that first check has finished (each ask is a
    # round trip through Discord, no sleeping).
    for _ in range(200):
        owner = await report(discord, discord.owner_user)
        if "not finished a check" not in owner:
            break
    assert owner.startswith("Last check <t:")
    assert "whole bot" in owner
    assert "0 request(s) fal ran and billed that no job records ($0.00)" in owner

    discord.mod_role.permissions |= MANAGE_GUILD  # a server admin, not the bot's owner
    admin = await report(discord, discord.mod)
    assert "this server's jobs" in admin
    assert "no differences" in admin
    assert "whole bot" not in admin
