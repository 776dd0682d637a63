"""/usage (spend against every cap, remaining, resets, a 30-day chart), /optout remix|gallery."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import spend_chart
from bot.core import Core
from bot.engine import usage
from bot.i18n import translate
from cogs.errors import locale_of
from cogs.interactions import requester_of
from cogs.members.render import CHART_NAME, render_usage


class UsageCog(commands.Cog):
    """Members' own spend and preferences."""

    optout = app_commands.Group(name="optout", description="Your Flexbot preferences.")

    def __init__(self, core: Core) -> None:
        self.core = core

    @app_commands.command(
        name="usage", description="Your spend today and this month, and what is left."
    )
    async def usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = time.time()
        mu = await usage.member_usage(self.core.engine, requester_of(interaction), now)
        daily_cap = next((c.cap_micros for c in mu.caps if c.name == "user_daily_cap"), None)
        png = await asyncio.to_thread(spend_chart, mu.series, daily_cap=daily_cap)
        await interaction.edit_original_response(
            embed=render_usage(mu, now, locale_of(interaction)),
            attachments=[discord.File(io.BytesIO(png), filename=CHART_NAME)],
        )

    @optout.command(
        name="remix", description="Stop (on) or allow (off) others remixing your images."
    )
    @app_commands.describe(state="on: others may not remix your images; off: they may")
    async def remix(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        message = await self.core.admin.set_remix_opt_out(interaction.user.id, state == "on")
        # The core's answer is a fixed English sentence: it is its own msgid.
        text = translate(locale_of(interaction), message)
        await interaction.response.send_message(text, ephemeral=True)

    @optout.command(
        name="gallery", description="Keep (on) or show (off) your results in the web gallery."
    )
    @app_commands.describe(state="on: none of your results appear in any web gallery; off: they do")
    async def gallery(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        message = await self.core.gallery.set_opt_out(interaction.user.id, state == "on")
        await interaction.response.send_message(message, ephemeral=True)
