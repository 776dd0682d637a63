"""The extension discord.py loads: builds this feature's cogs with the core."""

from __future__ import annotations

from discord.ext import commands

from cogs.edits.buttons import FlexButton
from cogs.edits.commands import Edit
from cogs.edits.reuse import Reuse
from cogs.interactions import core_of


async def setup(bot: commands.Bot) -> None:
    core = core_of(bot)
    edit = Edit(core)
    await bot.add_cog(edit)
    bot.tree.add_command(edit.menu)  # discord.py cogs cannot declare context menus themselves
    await bot.add_cog(Reuse(core))
    bot.add_dynamic_items(FlexButton)
