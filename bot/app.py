"""Assembly: settings -> database, blobs, fal, engine, discord.py bot and its cogs.

The only module in ``bot/`` that imports discord. Everything is built once here, inside
``async with`` blocks, and handed to the cogs through the ``FlexBot`` instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import discord
import yarl
from discord.ext import commands

from bot.admin import Admin
from bot.cli import fal_client, image_limits, param_limits
from bot.doctor import CheckResult
from bot.engine import quota
from bot.engine.delivery import Delivery
from bot.engine.engine import Engine
from bot.fal.client import FalClient
from bot.health import HealthServer, watch_loop_lag
from bot.images import ImageProcessor
from bot.metrics import Snapshot
from bot.params import ParamLimits
from bot.permissions import missing_for_posting
from bot.secret import Secret
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.blobs import BlobStore
from bot.store.db import Database

log = logging.getLogger(__name__)

#: Extensions loaded at start-up, in order.
COGS = (
    "cogs.errors",
    "cogs.edit",
    "cogs.results",
    "cogs.queue",
    "cogs.usage",
    "cogs.admin",
    "cogs.admin_limits",
    "cogs.admin_access",
)

DRY_RUN_WARNING = (
    "FAL_KEY is not set: DRY RUN on the bundled fake fal. Edits produce placeholder images and "
    "NOTHING IS BILLED. Set FAL_KEY to edit with the real FLUX.2 [flex]."
)


@dataclass
class Core:
    """What the cogs need from the core, built once at start-up."""

    settings: Settings
    db: Database
    blobs: BlobStore
    fal: FalClient
    images: ImageProcessor
    engine: Engine
    param_limits: ParamLimits
    dry_run: bool
    admin: Admin


class FlexBot(commands.Bot):
    """The discord.py bot; ``core`` is set before login and used by every cog."""

    core: Core

    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions of the guilds we are in
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.gateway_connected = False

    async def on_connect(self) -> None:
        self.gateway_connected = True

    async def on_resumed(self) -> None:
        self.gateway_connected = True

    async def on_disconnect(self) -> None:
        self.gateway_connected = False

    async def setup_hook(self) -> None:
        for name in COGS:
            with contextlib.suppress(commands.ExtensionNotFound):
                await self.load_extension(name)
        await self.core.engine.start()
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
        with contextlib.suppress(AttributeError):
            await self.core.engine.stop()
        await super().close()


def point_discord_at(settings: Settings) -> None:
    """Use another REST base / gateway (a proxy, or a local fake in tests)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


@contextlib.asynccontextmanager
async def fal_for_bot(settings: Settings) -> AsyncIterator[tuple[FalClient, bool]]:
    """The real fal when FAL_KEY is set, else the bundled fake in this process (dry run)."""
    if settings.fal_key:
        async with fal_client(settings, settings.fal_key) as client:
            yield client, False
        return
    from bot.fal.fake import FakeFal

    log.warning(DRY_RUN_WARNING)
    async with (
        FakeFal(processing_time=2.0) as server,
        fal_client(settings, Secret("dry-run"), server.url) as client,
    ):
        yield client, True


def make_delivery(bot: FlexBot) -> Delivery:
    from cogs.delivery import DiscordDelivery

    return DiscordDelivery(bot)


async def check_discord(settings: Settings) -> list[CheckResult]:
    """Log in, list the guilds, and name every text channel where the bot lacks a permission."""
    assert settings.discord_token is not None
    point_discord_at(settings)
    intents = discord.Intents.none()
    intents.guilds = True
    client = discord.Client(intents=intents)
    ready = asyncio.Event()
    client.event(_set_on_ready(ready))
    runner = asyncio.create_task(client.start(settings.discord_token.reveal()))
    waiter = asyncio.create_task(ready.wait())
    try:
        done, _ = await asyncio.wait(
            {runner, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if runner in done and isinstance(runner.exception(), discord.LoginFailure):
            return [
                CheckResult(
                    "discord token",
                    False,
                    "Discord refused DISCORD_TOKEN",
                    "reset the token in the developer portal (Bot > Reset Token)",
                )
            ]
        if waiter not in done:
            reason = runner.exception() if runner.done() else "no READY within 30 s"
            return [
                CheckResult(
                    "discord token",
                    False,
                    f"could not connect ({reason})",
                    "check the network and discord_api_base/discord_gateway_url",
                )
            ]
        results = [
            CheckResult(
                "discord token",
                True,
                f"logged in as {client.user} in {len(client.guilds)} server(s)",
            )
        ]
        for guild in client.guilds:
            me = guild.me
            for channel in guild.text_channels:
                perms = channel.permissions_for(me)
                if not perms.view_channel:
                    continue  # channels the bot is not meant to see are not a problem
                missing = missing_for_posting(perms)
                if missing:
                    results.append(
                        CheckResult(
                            f"permissions in #{channel.name} ({guild.name})",
                            False,
                            f"missing {', '.join(missing)}",
                            f"grant the bot's role {', '.join(missing)} in #{channel.name}, or "
                            "keep members from using Flexbot there (/flexadmin access)",
                        )
                    )
        return results
    finally:
        waiter.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner


def _set_on_ready(ready: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    async def on_ready() -> None:
        ready.set()

    return on_ready


def health_server(bot: FlexBot) -> HealthServer:
    """/healthz: gateway connected, database answering, engine running. /metrics: Prometheus."""
    core = bot.core

    async def discord_check() -> str | None:
        return None if bot.gateway_connected else "Discord gateway is not connected"

    async def database_check() -> str | None:
        async with core.db.conn.execute("SELECT 1") as cur:
            return None if await cur.fetchone() else "database did not answer"

    async def engine_check() -> str | None:
        return None if core.engine.running else "job engine is not running"

    async def snapshot() -> Snapshot:
        month = quota.month_start(core.engine.clock()).timestamp()
        spend = await jobs_repo.spend_by_guild(core.db.conn, month)
        return Snapshot(
            jobs_by_state=await jobs_repo.count_by_state(core.db.conn),
            queue_depth=len(core.engine.scheduler),
            spend_by_guild={str(guild or "dm"): micros for guild, micros in spend.items()},
        )

    return HealthServer(
        core.settings.health_host,
        core.settings.health_port,
        checks={"discord": discord_check, "database": database_check, "engine": engine_check},
        metrics=core.engine.metrics,
        snapshot=snapshot,
    )


async def run(settings: Settings) -> int:
    """Run the bot until SIGINT/SIGTERM; returns the process exit code."""
    assert settings.discord_token is not None
    point_discord_at(settings)
    bot = FlexBot(settings)
    async with contextlib.AsyncExitStack() as stack:
        db = await Database.open(settings.database_path)
        stack.push_async_callback(db.close)
        log.info(
            "database ready at %s (schema %d)", settings.database_path, await db.schema_version()
        )
        fal, dry_run = await stack.enter_async_context(fal_for_bot(settings))
        images = stack.enter_context(ImageProcessor(image_limits(settings), settings.image_workers))
        blobs = BlobStore(settings.blob_dir)
        engine = Engine(db=db, blobs=blobs, fal=fal, delivery=make_delivery(bot), settings=settings)
        bot.core = Core(
            settings,
            db,
            blobs,
            fal,
            images,
            engine,
            param_limits(settings),
            dry_run,
            Admin(db, settings, clock=engine.clock),
        )
        stack.push_async_callback(bot.close)
        if settings.health_port:
            health = health_server(bot)
            await health.start()
            stack.push_async_callback(health.stop)
        lag = asyncio.create_task(watch_loop_lag(engine.metrics))
        stack.callback(lag.cancel)

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(bot.start(settings.discord_token.reveal()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if runner in done:
            exc = runner.exception()
            if isinstance(exc, discord.LoginFailure):
                log.error(
                    "Discord refused the token (DISCORD_TOKEN): reset it in the developer "
                    "portal and try again"
                )
                return 2
            if exc is not None:
                raise exc
            return 0
        log.info("shutting down")
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, timeout=settings.shutdown_timeout_seconds + 5)
    return 0
