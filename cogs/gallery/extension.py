"""The extension discord.py loads: the gallery's commands, only when the gallery is on.

Deletions in Discord are recorded even while the gallery is off, so that switching it on later
never shows a result a moderator removed meanwhile.

``/flexadmin gallery`` hangs under the admin group, so ``cogs.admin.extension`` loads first
(``cogs.client.EXTENSIONS`` order).
"""

from __future__ import annotations

from discord import app_commands
from discord.ext import commands

from cogs.admin.group import GROUP_NAME
from cogs.gallery.commands import GalleryAdmin, GalleryCog
from cogs.gallery.deletions import ResultDeletions
from cogs.interactions import core_of


async def setup(bot: commands.Bot) -> None:
    core = core_of(bot)
    await bot.add_cog(ResultDeletions(core))
    if not core.gallery.enabled:
        return
    await bot.add_cog(GalleryCog(core))
    admin = bot.tree.get_command(GROUP_NAME)
    if not isinstance(admin, app_commands.Group):
        raise RuntimeError("/flexadmin must be loaded before the gallery extension")
    admin.add_command(GalleryAdmin(core))
