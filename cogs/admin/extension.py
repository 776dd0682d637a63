"""The extension discord.py loads: builds this feature's cogs with the core."""

from __future__ import annotations

from discord.ext import commands

from cogs.admin.access import AccessGroup, SafetyGroup
from cogs.admin.community import DefaultsGroup, FilterGroup
from cogs.admin.group import FlexAdmin
from cogs.admin.limits import CreditGroup, LimitGroup
from cogs.interactions import core_of


async def setup(bot: commands.Bot) -> None:
    core = core_of(bot)
    group = FlexAdmin(core)
    for subgroup in (LimitGroup, CreditGroup, AccessGroup, SafetyGroup, FilterGroup, DefaultsGroup):
        group.add_command(subgroup(core))
    bot.tree.add_command(group)
