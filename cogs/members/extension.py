"""The extension discord.py loads: builds this feature's cogs with the core."""

from __future__ import annotations

from discord.ext import commands

from cogs.interactions import core_of
from cogs.members.queue import QueueCog
from cogs.members.usage import UsageCog


async def setup(bot: commands.Bot) -> None:
    core = core_of(bot)
    await bot.add_cog(QueueCog(core))
    await bot.add_cog(UsageCog(core))
