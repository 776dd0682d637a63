"""Shared end-to-end fixtures: the REAL Flexbot (``python -m bot.cli run``) on the fake Discord,
with a fake fal running in the test's own event loop.

Use from a test module (fixtures: ``fal``, ``fal_options``, ``flexbot``, ``flexbot_env``)::

    pytest_plugins = ["tests.e2e.flexbot_fixtures"]

    async def test_x(discord: FakeDiscord, flexbot: FlexbotRun) -> None:
        it = await discord.slash("edit", user=discord.alice, ...)
        job = flexbot.job(1)            # the jobs row as a dict (sqlite3 on the bot's data dir)

``flexbot_env`` lets a module add settings (e.g. a low budget) by overriding the fixture.
``flexbot`` registers the commands in ``discord.guild`` only (the bot is in ``discord.guild_b`` too,
without commands there); a module that drives both servers overrides ``flexbot`` with
``start_flexbot(..., guilds=[discord.guild, discord.guild_b])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.fal.fake import FakeFal
from tests.e2e.conftest import BotProcess, StartBot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.state import FakeChannel, FakeGuild, FakeInteraction, FakeUser

FLEXBOT_CMD = [sys.executable, "-m", "bot.cli", "run"]


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real PNG (Pillow must be able to open what we upload)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


async def slash_edit(
    discord: FakeDiscord,
    prompt: str = "blue",
    *,
    user: FakeUser | None = None,
    channel: FakeChannel | None = None,
    filename: str = "ok.png",
    **options: Any,
) -> FakeInteraction:
    """A member runs /edit with one small PNG (and any other options)."""
    return await discord.slash(
        "edit",
        user=user or discord.alice,
        channel=channel,
        options={"prompt": prompt, **options},
        attachments=[(filename, png(), "image/png")],
    )


@dataclass
class FlexbotRun:
    """A running Flexbot process, the fake fal it talks to and its data directory."""

    process: BotProcess
    fal: FakeFal
    discord: FakeDiscord

    @property
    def data_dir(self) -> Path:
        return Path(self.process.env["FLEXBOT_DATA_DIR"])

    def db_path(self) -> Path:
        return self.data_dir / "flexbot.db"

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Read the bot's SQLite database (WAL allows a concurrent reader)."""
        conn = sqlite3.connect(f"file:{self.db_path()}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    def jobs(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM jobs ORDER BY id")

    def job(self, job_id: int) -> dict[str, Any]:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert rows, f"no job #{job_id}"
        return rows[0]

    async def wait_for_job_state(self, job_id: int, *states: str, timeout: float = 15) -> None:
        """Wait until the job reaches a state. Woken by the fake Discord's traffic; the bot's last
        write may follow its last Discord call, so re-read the database every 50 ms as well."""

        def reached() -> bool:
            rows = self.query("SELECT state FROM jobs WHERE id = ?", (job_id,))
            return bool(rows) and rows[0]["state"] in states

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not reached():
            if loop.time() > deadline:
                raise TimeoutError(f"job #{job_id} not in {states}: {self.jobs()}")
            with contextlib.suppress(TimeoutError):
                await self.discord.wait_for(reached, timeout=0.05)


def flexbot_settings(fake: FakeFal) -> dict[str, str]:
    """The environment that points the real bot at the test's fake fal, with fast polling."""
    return {
        "FAL_KEY": "test-key",
        "FLEXBOT_FAL_QUEUE_URL": fake.url,
        "FLEXBOT_FAL_REST_URL": fake.url,
        "FLEXBOT_FAL_API_URL": fake.url,  # the request list: never the real api.fal.ai
        "FLEXBOT_POLL_INTERVAL_SECONDS": "0.05",
        "FLEXBOT_POLL_MAX_INTERVAL_SECONDS": "0.2",
        "FLEXBOT_PROGRESS_INTERVAL_SECONDS": "0.2",
        "FLEXBOT_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture
def fal_options() -> dict[str, Any]:
    """Keyword arguments for FakeFal; override in a module for slow or faulty fal."""
    return {}


@pytest.fixture
async def fal(fal_options: dict[str, Any]) -> AsyncIterator[FakeFal]:
    """A fake fal server in the test process."""
    async with FakeFal(**fal_options) as fake:
        yield fake


@pytest.fixture
def flexbot_env() -> dict[str, str]:
    """Extra FLEXBOT_* settings for the bot; override in a module or test."""
    return {}


async def start_flexbot(
    discord: FakeDiscord,
    start_bot: StartBot,
    fal: FakeFal,
    env: dict[str, str],
    *,
    guilds: Sequence[FakeGuild],
) -> FlexbotRun:
    """Start the real Flexbot with its commands registered in each of `guilds`."""
    full_env = {**flexbot_settings(fal), **env}
    process = await start_bot(cmd=FLEXBOT_CMD, env=full_env, sync_guilds=guilds)
    return FlexbotRun(process, fal, discord)


@pytest.fixture
async def flexbot(
    discord: FakeDiscord, start_bot: StartBot, fal: FakeFal, flexbot_env: dict[str, str]
) -> FlexbotRun:
    """The real Flexbot, registered in the fake guild, ready to take commands."""
    return await start_flexbot(discord, start_bot, fal, flexbot_env, guilds=[discord.guild])
