"""The discord.py bot: built with the core (never without one), loads the feature cogs.

The core arrives through the constructor (discord.py ``examples/advanced_startup.py``); the
engine starts in ``setup_hook`` with the Discord delivery, before commands are registered, so a
button clicked right after a restart finds the engine running.
"""

from __future__ import annotations

import contextlib
import logging

import discord
from discord.ext import commands

from bot.core import Core
from cogs.delivery import DiscordDelivery
from cogs.tree import FlexTree

log = logging.getLogger(__name__)

#: Extensions loaded at start-up, in order.
EXTENSIONS = ("cogs.edits.extension", "cogs.members.extension", "cogs.admin.extension")


class FlexBot(commands.Bot):
    """Flexbot on Discord: the core plus the gateway, the command tree and the cogs."""

    tree: FlexTree

    def __init__(self, core: Core) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions of the guilds we are in
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=FlexTree,
        )
        self.core = core
        self.settings = core.settings
        self.gateway_connected = False

    async def on_connect(self) -> None:
        self.gateway_connected = True

    async def on_resumed(self) -> None:
        self.gateway_connected = True

    async def on_disconnect(self) -> None:
        self.gateway_connected = False

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            await self.load_extension(name)
        await self.core.engine.start(DiscordDelivery(self, self.core.engine))
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Global registration by default; instant registration to the configured guilds."""
        guilds = self.settings.discord_sync_guilds
        if not guilds:
            synced = await self.tree.sync()
            log.info("registered %d global command(s)", len(synced))
            return
        for guild_id in guilds:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("registered %d command(s) in guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        self.gateway_connected = True
        user = self.user
        log.info(
            "logged in as %s (%s) in %d guild(s)", user, user.id if user else "?", len(self.guilds)
        )

    async def close(self) -> None:
        # Stop the engine first so in-flight jobs reach a stored state while Discord is up.
        with contextlib.suppress(Exception):
            await self.core.engine.stop()
        await super().close()
