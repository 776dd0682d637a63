"""Fixtures for end-to-end tests: the fake Discord in the test's loop and bot processes against it.

`discord` is a running `FakeDiscord`; `start_bot(cmd=[...], env={...})` starts a real bot process
wired to it and waits until it logged in, registered its commands and got READY.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from tests.fakes.discord import FakeDiscord, FakeGuild

# Test modules import helpers from this plugin module; let pytest rewrite its asserts first.
pytest.register_assert_rewrite("tests.e2e.flexbot_fixtures")

HARNESS_BOT = Path(__file__).with_name("harness_bot.py")
STOP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 20.0


class BotProcess:
    """A bot under test, run as a real subprocess so SIGKILL and restarts are real."""

    def __init__(
        self, fake: FakeDiscord, cmd: Sequence[str], env: dict[str, str], log_path: Path
    ) -> None:
        self.fake = fake
        self.cmd = list(cmd)
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.pids: list[int] = []
        # Set when a test makes the bot fail on purpose; otherwise a traceback fails the test.
        self.expect_errors = False

    @property
    def pid(self) -> int:
        """The current process id."""
        assert self.proc is not None, "bot not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        """Whether the current process has not exited."""
        return self.proc is not None and self.proc.returncode is None

    def tracebacks(self) -> list[str]:
        """Tracebacks the bot logged (discord.py logs handler exceptions with one)."""
        marker = "Traceback (most recent call last)"
        return [marker + chunk for chunk in self.log().split(marker)[1:]]

    def log(self) -> str:
        """Everything the bot printed so far (stdout and stderr, across restarts)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sync_scopes(self) -> set[int | None]:
        """Where the bot registers its commands: the FLEXBOT_DISCORD_SYNC_GUILDS ids, or globally
        (None) when it names none."""
        raw = self.env.get("FLEXBOT_DISCORD_SYNC_GUILDS", "").replace(",", " ").split()
        return {int(g) for g in raw} or {None}

    async def start(self, *, wait_commands: bool = True, timeout: float = START_TIMEOUT_S) -> None:
        """Start and wait for IDENTIFY -> READY and (by default) its command registrations (one
        per sync guild), so a test may use commands in any of them at once."""
        readies = self.fake.gateway.ready_count
        syncs = len(self.fake.command_syncs)
        scopes = self.sync_scopes()
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd,
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        self.pids.append(self.proc.pid)

        def ready() -> bool:
            if not self.running:
                return True
            ok = self.fake.gateway.ready_count > readies
            synced = {scope for scope, _ in self.fake.command_syncs[syncs:]}
            return ok and (not wait_commands or scopes <= synced)

        waiter = asyncio.ensure_future(self.fake.wait_for(ready, timeout=timeout))
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if waiter not in done:
            waiter.cancel()
        elif waiter.exception() is None and self.running:
            return
        await self.stop()
        raise RuntimeError(f"bot {self.cmd} did not become ready:\n{self.log()[-4000:]}")

    async def kill(self) -> None:
        """SIGKILL, as a crash or OOM kill would, and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP for the block, SIGCONT after: alive, connected, but doing nothing meanwhile."""
        assert self.proc is not None, "bot not started"
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            if self.running:
                self.proc.send_signal(signal.SIGCONT)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                await self.kill()

    async def restart(self, *, kill: bool = False, wait_commands: bool = True) -> None:
        """Stop (or SIGKILL) and start again with the same command and environment."""
        await (self.kill() if kill else self.stop())
        await self.start(wait_commands=wait_commands)


StartBot = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    """A running fake Discord; the test fails if the bot called a route the fake lacks or sent a
    request Discord's OpenAPI description refuses."""
    async with FakeDiscord() as fake:
        yield fake
        unknown = list(fake.unknown_routes)
        broken = list(fake.internal_errors)
        refused = [] if fake.expect_violations else list(fake.openapi_violations)
    if refused:
        shown = "\n  ".join(dict.fromkeys(str(v) for v in refused))
        pytest.fail(
            f"requests Discord would refuse (400 50035), per its OpenAPI description:\n  {shown}"
        )
    if unknown:
        pytest.fail("bot called routes the fake Discord does not implement: " + ", ".join(unknown))
    if broken:
        pytest.fail("fake Discord failed handling requests: " + "; ".join(broken))


@pytest.fixture
async def start_bot(discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[StartBot]:
    """Factory: `await start_bot(cmd=[...], env={...})` starts a bot on the fake, waits for READY.

    The default command is the harness bot. `sync_guild=True` registers its commands in
    `discord.guild`, `sync_guilds=[...]` in each guild named (else: globally). Every process is
    stopped at teardown (SIGTERM, then SIGKILL after a timeout) and the test fails if any pid is
    still alive.
    """
    bots: list[BotProcess] = []

    async def start(
        cmd: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        *,
        wait_commands: bool = True,
        sync_guild: bool = False,
        sync_guilds: Sequence[FakeGuild] = (),
    ) -> BotProcess:
        n = len(bots)
        guilds = list(sync_guilds) or ([discord.guild] if sync_guild else [])
        data_dir = tmp_path / f"bot{n}-data"
        data_dir.mkdir()
        full_env = {
            **os.environ,
            **discord.env(),
            "FLEXBOT_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            **(
                {"FLEXBOT_DISCORD_SYNC_GUILDS": ",".join(str(g.id) for g in guilds)}
                if guilds
                else {}
            ),
            **(env or {}),
        }
        bot = BotProcess(
            discord, cmd or [sys.executable, str(HARNESS_BOT)], full_env, tmp_path / f"bot{n}.log"
        )
        bots.append(bot)
        await bot.start(wait_commands=wait_commands)
        return bot

    yield start

    for bot in bots:
        await bot.stop()
    alive = [pid for bot in bots for pid in bot.pids if _alive(pid)]
    assert not alive, f"bot processes still running after teardown: {alive}"
    for bot in bots:
        if not bot.expect_errors and bot.tracebacks():
            pytest.fail(f"bot {bot.cmd} logged a traceback:\n{bot.tracebacks()[0][-3000:]}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
async def bot(start_bot: StartBot) -> BotProcess:
    """The harness bot, running and ready."""
    return await start_bot()
