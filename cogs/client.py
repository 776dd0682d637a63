"""The discord.py bot: built with the core (never without one), loads the feature cogs.

The core arrives through the constructor (discord.py ``examples/advanced_startup.py``); the
engine starts in ``setup_hook`` with the Discord delivery, before commands are registered, so a
button clicked right after a restart finds the engine running.

The bot is an ``AutoShardedBot``: one process runs every shard (``shard_count`` unset: as many as
Discord recommends), or the ``shard_ids`` it is given of ``shard_count``, so several processes
share one bot, each receiving the events of its shards' guilds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord
from discord.ext import commands

from bot.core import Core
from cogs.delivery import DiscordDelivery
from cogs.identify import IdentifyPacer
from cogs.translator import FlexTranslator
from cogs.tree import FlexTree

log = logging.getLogger(__name__)

#: Extensions loaded at start-up, in order.
EXTENSIONS = (
    "cogs.edits.extension",
    "cogs.members.extension",
    "cogs.admin.extension",
    "cogs.gallery.extension",  # after admin: it adds /flexadmin gallery
)


class FlexBot(commands.AutoShardedBot):
    """Flexbot on Discord: the core plus the gateway shards, the command tree and the cogs."""

    tree: FlexTree

    def __init__(self, core: Core) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions of the guilds we are in
        # MESSAGE_DELETE(_BULK): a result deleted in Discord leaves the web gallery. Not privileged
        # (no message content); it brings MESSAGE_CREATE/UPDATE too, which nothing here reads.
        intents.guild_messages = True
        settings = core.settings
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=None,  # no message cache: the raw delete events carry the ids we need
            tree_cls=FlexTree,
            shard_count=settings.shard_count,
            # None = every shard. discord.py types the option List[int] yet reads a missing one
            # as None (shard.py `kwargs.pop('shard_ids', None)`), and documents it Optional.
            shard_ids=list(settings.shard_ids) or None,  # type: ignore[arg-type]
        )
        self.core = core
        self.settings = settings
        self._live_shards: set[int] = set()
        self._pacer = IdentifyPacer(time.monotonic)
        self._identify_concurrency: int | None = None

    @property
    def own_shards(self) -> set[int]:
        """The shards this process runs; empty until the count is known (Discord's, at launch)."""
        if self.shard_count is None:
            return set()
        return set(self.shard_ids or range(self.shard_count))

    @property
    def gateway_connected(self) -> bool:
        """Whether every shard this process runs holds a live gateway session."""
        own = self.own_shards
        return bool(own) and own <= self._live_shards

    @property
    def registers_commands(self) -> bool:
        """Whether this process registers the commands: only the one running shard 0.

        Commands belong to the application, not to a shard: one registration serves every
        shard. Were each process to sync, they would repeat the same requests against Discord's
        daily limit on command creates and race each other during a rolling deploy. Every full
        set of shards has exactly one shard 0, so exactly one process registers.
        """
        return not self.shard_ids or 0 in self.shard_ids

    async def on_message(self, message: discord.Message, /) -> None:
        """Nothing: Flexbot has no text commands. (discord.py's default would parse every message
        that mentions the bot as a command and log CommandNotFound for it.)"""

    async def on_shard_connect(self, shard_id: int) -> None:
        self._live_shards.add(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._live_shards.add(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._live_shards.discard(shard_id)

    async def launch_shards(self) -> None:
        """Read GET /gateway/bot once: the shard count (unless set) and the identify concurrency.

        discord.py would also take the gateway URL from that answer when it picks the count,
        bypassing ``discord_gateway_url``; with the count set here it connects where
        ``bot.app.point_discord_at`` pointed it, sharded or not.
        """
        try:
            count, _url, limits = await self.http.get_bot_gateway()
        except discord.GatewayNotFound:
            if self.shard_count is None:
                raise  # no count to run: discord.py fails the start the same way
            log.warning("could not read Discord's session start limit; identifying one at a time")
        else:
            self._identify_concurrency = max(1, limits["max_concurrency"])
            if self.shard_count is None:
                self.shard_count = count
                log.info("Discord recommends %d shard(s)", count)
        await super().launch_shards()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Wait out Discord's session start limit for this shard's bucket (cogs/identify.py)."""
        delay = self._pacer.reserve(shard_id or 0, self._identify_concurrency or 1)
        if delay > 0:
            log.info("shard %s waits %.1f s for Discord's identify limit", shard_id, delay)
            await asyncio.sleep(delay)

    def describe_shards(self) -> str:
        """Which shards this process runs, for the start-up log."""
        if self.shard_ids:
            ids = ", ".join(str(n) for n in self.shard_ids)
            return f"shard(s) {ids} of {self.shard_count}"
        if self.shard_count is not None:
            return f"all {self.shard_count} shard(s)"
        return "every shard Discord recommends"

    async def setup_hook(self) -> None:
        log.info(
            "this process runs %s; %s",
            self.describe_shards(),
            "it registers the commands"
            if self.registers_commands
            else "the process running shard 0 registers the commands",
        )
        await self.tree.set_translator(FlexTranslator())
        for name in EXTENSIONS:
            await self.load_extension(name)
        await self.core.engine.start(DiscordDelivery(self, self.core.engine))
        if self.registers_commands:
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
        user = self.user
        log.info(
            "logged in as %s (%s) in %d guild(s) on shard(s) %s of %s",
            user,
            user.id if user else "?",
            len(self.guilds),
            ", ".join(str(n) for n in sorted(self.own_shards)),
            self.shard_count,
        )

    async def close(self) -> None:
        # Stop the engine first so in-flight jobs reach a stored state while Discord is up.
        with contextlib.suppress(Exception):
            await self.core.engine.stop()
        await super().close()
