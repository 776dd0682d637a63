"""/usage (spend against every cap, remaining, resets, a 30-day chart) and /optout remix."""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.charts import spend_chart
from bot.engine import usage
from bot.engine.quota import humanize_delta
from bot.model import Requester, usd
from bot.settings import UNLIMITED
from cogs import render

if TYPE_CHECKING:
    from bot.app import FlexBot

CHART_NAME = "usage.png"


def requester_of(interaction: discord.Interaction) -> Requester:
    roles = getattr(interaction.user, "roles", [])
    return Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=tuple(r.id for r in roles),
    )


def render_usage(mu: usage.MemberUsage, now: float) -> discord.Embed:
    """The /usage embed: one field per cap, with what is left and when it resets."""
    embed = discord.Embed(title="Your Flexbot usage", colour=discord.Colour.blurple())
    embed.description = (
        f"Today: **{usd(mu.today_micros)}** · This month: **{usd(mu.month_micros)}**"
        + (f" · Credit this month: {usd(mu.credit_micros)}" if mu.credit_micros else "")
        + f"\nQueued: {mu.queued} · Running: {mu.running}"
    )
    for cap in mu.caps:
        resets = (
            f"resets <t:{int(cap.resets_at.timestamp())}:R> "
            f"({humanize_delta(cap.resets_at.timestamp() - now)})"
        )
        if cap.cap_micros is None:
            value = f"{usd(cap.spent_micros)} spent · no cap ({UNLIMITED})"
        else:
            total = cap.cap_micros + cap.credit_micros
            value = (
                f"{usd(cap.spent_micros)} of {usd(total)} · "
                f"**{usd(cap.remaining_micros or 0)} left** · {resets}"
            )
        embed.add_field(
            name=f"{cap.label} ({render.limit_source(cap.source)})", value=value, inline=False
        )
    if mu.recent:
        lines = [f"#{j.id} {j.state} · {usd(j.held_micros + j.charged_micros)}" for j in mu.recent]
        embed.add_field(name="Recent edits", value="\n".join(lines), inline=False)
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed


class UsageCog(commands.Cog):
    """Members' own spend and preferences."""

    optout = app_commands.Group(name="optout", description="Your Flexbot preferences.")

    def __init__(self, bot: FlexBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="usage", description="Your spend today and this month, and what is left."
    )
    async def usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = time.time()
        mu = await usage.member_usage(self.bot.core.engine, requester_of(interaction), now)
        daily_cap = next((c.cap_micros for c in mu.caps if c.name == "user_daily_cap"), None)
        png = await asyncio.to_thread(spend_chart, mu.series, daily_cap=daily_cap)
        await interaction.edit_original_response(
            embed=render_usage(mu, now),
            attachments=[discord.File(io.BytesIO(png), filename=CHART_NAME)],
        )

    @optout.command(
        name="remix", description="Stop (on) or allow (off) others remixing your images."
    )
    @app_commands.describe(state="on: others may not remix your images; off: they may")
    async def remix(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        message = await self.bot.core.admin.set_remix_opt_out(interaction.user.id, state == "on")
        await interaction.response.send_message(message, ephemeral=True)


async def setup(bot: FlexBot) -> None:
    await bot.add_cog(UsageCog(bot))
