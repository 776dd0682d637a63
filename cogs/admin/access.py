"""/flexadmin access (channels, required role, block) and /flexadmin safety."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands

from bot.core import Core
from bot.model import SafetyTolerance
from cogs.admin.group import AdminSubgroup, guild_id_of, reply
from cogs.interactions import SAFETY_CHOICES


class AccessGroup(AdminSubgroup):
    """Who may use Flexbot, and where."""

    def __init__(self, core: Core) -> None:
        super().__init__(
            core, name="access", description="Channels, required role, blocked members."
        )

    @app_commands.command(name="allow", description="Let Flexbot answer in this channel.")
    @app_commands.describe(channel="Once any channel is allowed, only allowed ones work")
    async def allow(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.allow_channel(interaction.user.id, guild_id_of(interaction), channel.id, True),
        )

    @app_commands.command(name="disallow", description="Stop Flexbot answering in a channel.")
    async def disallow(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.allow_channel(interaction.user.id, guild_id_of(interaction), channel.id, False),
        )

    @app_commands.command(name="all-channels", description="Let Flexbot answer everywhere.")
    async def all_channels(self, interaction: discord.Interaction) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.set_allowed_channels(interaction.user.id, guild_id_of(interaction), []),
        )

    @app_commands.command(name="role", description="Require a role to use Flexbot (none: anyone).")
    async def role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.set_required_role(
                interaction.user.id, guild_id_of(interaction), role.id if role else None
            ),
        )

    @app_commands.command(name="block", description="Stop a member using Flexbot here.")
    async def block(
        self, interaction: discord.Interaction, member: discord.Member, reason: str | None = None
    ) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.block(interaction.user.id, guild_id_of(interaction), member.id, reason),
        )

    @app_commands.command(name="unblock", description="Let a blocked member use Flexbot again.")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        admin = self.core.admin
        await reply(
            interaction, admin.unblock(interaction.user.id, guild_id_of(interaction), member.id)
        )


class SafetyGroup(AdminSubgroup):
    """The loosest safety members may ask for, per channel."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="safety", description="Highest safety tolerance per channel.")

    @app_commands.command(name="set", description="Highest tolerance for a channel or the server.")
    @app_commands.choices(tolerance=SAFETY_CHOICES)
    @app_commands.describe(
        tolerance="1 = strictest, 5 = most permissive",
        channel="A channel (default: the server's default)",
        checker_off="Allow switching the safety checker off (age-restricted channels only)",
    )
    async def set_(
        self,
        interaction: discord.Interaction,
        tolerance: str,
        channel: discord.TextChannel | None = None,
        checker_off: bool = False,
    ) -> None:
        await reply(
            interaction,
            self.core.admin.set_safety(
                interaction.user.id,
                guild_id_of(interaction),
                channel.id if channel else None,
                SafetyTolerance(tolerance),
                checker_off,
                channel_is_nsfw=bool(channel and channel.is_nsfw()),
            ),
        )

    @app_commands.command(
        name="flagged", description="How images fal's safety checker flagged are shown."
    )
    @app_commands.describe(
        channel="The channel",
        show="hide: no image (default); spoiler: behind a spoiler (age-restricted channels only)",
    )
    async def flagged(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        show: Literal["hide", "spoiler"],
    ) -> None:
        await reply(
            interaction,
            self.core.admin.set_flagged_output(
                interaction.user.id,
                guild_id_of(interaction),
                channel.id,
                show,
                channel_is_nsfw=channel.is_nsfw(),
            ),
        )

    @app_commands.command(name="clear", description="A channel follows the server default again.")
    async def clear(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.clear_safety(interaction.user.id, guild_id_of(interaction), channel.id),
        )
