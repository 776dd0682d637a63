"""/flexadmin filter (blocked words and patterns) and /flexadmin defaults (per channel)."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands

from bot.core import Core
from bot.params import ChannelDefaults
from cogs.admin.group import AdminSubgroup, guild_id_of, reply
from cogs.admin.render import render_filter_list, render_filter_test
from cogs.errors import locale_of
from cogs.interactions import SAFETY_CHOICES, SIZE_CHOICES

Kind = Literal["word", "pattern"]


class FilterGroup(AdminSubgroup):
    """The words, phrases and patterns this server refuses in prompts."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="filter", description="Blocked words and patterns in prompts.")

    @app_commands.command(name="add", description="Refuse prompts holding a word or a pattern.")
    @app_commands.describe(
        term="A word or phrase (look-alike spellings match too), or an RE2 pattern",
        kind="word (default) or pattern",
    )
    async def add(self, interaction: discord.Interaction, term: str, kind: Kind = "word") -> None:
        admin = self.core.admin
        await reply(
            interaction, admin.filter_add(interaction.user.id, guild_id_of(interaction), kind, term)
        )

    @app_commands.command(name="remove", description="Allow a blocked word or pattern again.")
    @app_commands.describe(
        term="Exactly as listed by /flexadmin filter list", kind="word or pattern"
    )
    async def remove(
        self, interaction: discord.Interaction, term: str, kind: Kind = "word"
    ) -> None:
        admin = self.core.admin
        await reply(
            interaction,
            admin.filter_remove(interaction.user.id, guild_id_of(interaction), kind, term),
        )

    @app_commands.command(name="list", description="This server's blocked words and patterns.")
    async def list_(self, interaction: discord.Interaction) -> None:
        listed = await self.core.admin.filter_list(guild_id_of(interaction))
        text = render_filter_list(listed, locale_of(interaction))
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="test", description="Would this prompt be refused here?")
    @app_commands.describe(prompt="A prompt to try (nothing is queued or charged)")
    async def test(self, interaction: discord.Interaction, prompt: str) -> None:
        hit = await self.core.admin.filter_test(guild_id_of(interaction), prompt)
        text = render_filter_test(hit, locale_of(interaction))
        await interaction.response.send_message(text, ephemeral=True)


class DefaultsGroup(AdminSubgroup):
    """A channel's default edit options; members' own options still win."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="defaults", description="Default edit options per channel.")

    @app_commands.command(name="set", description="Defaults for edits in a channel.")
    @app_commands.describe(
        channel="The channel",
        steps="Inference steps",
        guidance="How closely to follow the prompt",
        size="Output size",
        format="Output format",
        safety="Safety tolerance (at most the channel's limit)",
    )
    @app_commands.choices(size=SIZE_CHOICES, safety=SAFETY_CHOICES)
    async def set_(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        steps: app_commands.Range[int, 2, 50] | None = None,
        guidance: app_commands.Range[float, 1.5, 10.0] | None = None,
        size: str | None = None,
        format: Literal["jpeg", "png"] | None = None,
        safety: str | None = None,
    ) -> None:
        defaults = ChannelDefaults(steps, guidance, size, format, safety)
        await reply(
            interaction,
            self.core.admin.set_channel_defaults(
                interaction.user.id, guild_id_of(interaction), channel.id, defaults
            ),
        )

    @app_commands.command(name="clear", description="A channel uses the bot's defaults again.")
    async def clear(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await reply(
            interaction,
            self.core.admin.clear_channel_defaults(
                interaction.user.id, guild_id_of(interaction), channel.id
            ),
        )
