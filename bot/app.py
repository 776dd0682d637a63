"""The wiring: the core from :func:`bot.core.open_core`, handed to the discord.py bot.

The one module in ``bot/`` that imports discord (and the Discord layer in ``cogs/``). Everything
else is built by the composition root; this module adds the gateway, the health server and the
process's signals (discord.py ``examples/advanced_startup.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import discord
import yarl

from bot.core import Core, open_core
from bot.doctor import CheckResult
from bot.engine import quota
from bot.health import HealthServer, watch_loop_lag
from bot.metrics import Snapshot
from bot.permissions import missing_for_posting
from bot.settings import Settings
from cogs.client import FlexBot

log = logging.getLogger(__name__)


def point_discord_at(settings: Settings) -> None:
    """Use another REST base / gateway (a proxy, or a local fake in tests)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


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
        failure = _login_failure(runner, waiter, done)
        if failure is not None:
            return [failure]
        logged_in = CheckResult(
            "discord token",
            True,
            f"logged in as {client.user} in {len(client.guilds)} server(s)",
        )
        return [logged_in, *_missing_permissions(client)]
    finally:
        waiter.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner


def _login_failure(
    runner: asyncio.Task[None], waiter: asyncio.Task[Any], done: set[asyncio.Task[Any]]
) -> CheckResult | None:
    """Why the login did not reach READY (refused token, no connection); None when it did."""
    if runner in done and isinstance(runner.exception(), discord.LoginFailure):
        return CheckResult(
            "discord token",
            False,
            "Discord refused DISCORD_TOKEN",
            "reset the token in the developer portal (Bot > Reset Token)",
        )
    if waiter not in done:
        reason = runner.exception() if runner.done() else "no READY within 30 s"
        return CheckResult(
            "discord token",
            False,
            f"could not connect ({reason})",
            "check the network and discord_api_base/discord_gateway_url",
        )
    return None


def _missing_permissions(client: discord.Client) -> list[CheckResult]:
    """A failed check for every visible text channel where the bot cannot post its results."""
    results = []
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


def _set_on_ready(ready: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    async def on_ready() -> None:
        ready.set()

    return on_ready


def health_server(bot: FlexBot, core: Core) -> HealthServer:
    """/healthz: gateway connected, database answering, engine running. /metrics: Prometheus."""

    async def discord_check() -> str | None:
        return None if bot.gateway_connected else "Discord gateway is not connected"

    async def database_check() -> str | None:
        return None if await core.db.ping() else "database did not answer"

    async def engine_check() -> str | None:
        return None if core.engine.running else "job engine is not running"

    async def snapshot() -> Snapshot:
        month = quota.month_start(core.engine.clock()).timestamp()
        spend = await core.engine.spend_by_guild(month)
        return Snapshot(
            jobs_by_state=await core.engine.jobs_by_state(),
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
    async with contextlib.AsyncExitStack() as stack:
        core = await stack.enter_async_context(open_core(settings))
        bot = FlexBot(core)
        stack.push_async_callback(bot.close)
        if settings.health_port:
            health = health_server(bot, core)
            await health.start()
            stack.push_async_callback(health.stop)
        lag = asyncio.create_task(watch_loop_lag(core.engine.metrics))
        stack.callback(lag.cancel)
        return await _until_signal(bot, settings)
    raise AssertionError("unreachable")  # mypy: the block always returns


async def _until_signal(bot: FlexBot, settings: Settings) -> int:
    """Run the gateway until it ends or SIGINT/SIGTERM arrives; the exit code."""
    assert settings.discord_token is not None
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
