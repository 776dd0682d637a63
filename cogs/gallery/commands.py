"""/gallery (a member's link), /flexadmin gallery public (the switch) and the names it shows.

The core knows members and servers by id only; this cog tells it the names Discord shows, as
they go by in interactions, so the web pages can say who made what.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Core
from cogs.admin.group import AdminSubgroup, guild_id_of
from cogs.gallery.render import render_link

log = logging.getLogger(__name__)


class GalleryCog(commands.Cog):
    """A member's private link to their server's web gallery."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @app_commands.command(
        name="gallery", description="A private link to this server's web gallery."
    )
    @app_commands.guild_only()
    async def gallery(self, interaction: discord.Interaction) -> None:
        link = await self.core.gallery.link_for(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(render_link(link), ephemeral=True)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        guild = interaction.guild
        if guild is None:
            return
        gallery = self.core.gallery
        await gallery.note_name(guild.id, 0, guild.name)
        await gallery.note_name(guild.id, interaction.user.id, interaction.user.display_name)


class GalleryAdmin(AdminSubgroup):
    """/flexadmin gallery: whether this server's gallery is open to anyone."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="gallery", description="This server's web gallery.")

    @app_commands.command(
        name="public", description="Open this server's gallery to anyone (on) or members (off)."
    )
    @app_commands.describe(state="on: anyone with the address; off: members' /gallery links")
    async def public(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        message = await self.core.gallery.set_public(
            guild_id_of(interaction), interaction.user.id, state == "on"
        )
        await interaction.response.send_message(message, ephemeral=True)
