"""Results deleted in Discord leave the web gallery, however they were deleted.

The result's Delete button records its own deletion; a moderator deleting the message from
Discord's menu, or a purge, reaches the bot only as a gateway event (MESSAGE_DELETE,
MESSAGE_DELETE_BULK, with the GUILD_MESSAGES intent; ``cogs.client``). The raw events carry ids
only, which is all the core needs: the message cache stays off.
"""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.core import Core


class ResultDeletions(commands.Cog):
    """Hands every deleted guild message's id to the gallery, which hides a result among them."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.core.gallery.forget_messages(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.core.gallery.forget_messages(payload.guild_id, payload.message_ids)
