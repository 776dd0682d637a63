"""Operating Flexbot: /healthz follows the gateway, and `flexbot doctor` names each problem."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from bot.fal.fake import FakeFal
from tests.e2e.conftest import StartBot
from tests.e2e.flexbot_fixtures import FLEXBOT_CMD, FlexbotRun, slash_edit
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.state import Perm

pytest_plugins = ["tests.e2e.flexbot_fixtures"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


HEALTH_PORT = free_port()


@pytest.fixture
def flexbot_env() -> dict[str, str]:
    return {"FLEXBOT_HEALTH_PORT": str(HEALTH_PORT)}


async def healthz() -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{HEALTH_PORT}/healthz")


async def test_healthz_is_503_while_gateway_is_down_and_200_after_resume(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    # A command answered proves the bot is connected and has processed its events so far.
    await (await discord.slash("queue", user=discord.alice)).wait_for_original()
    assert (await healthz()).status_code == 200

    gate = discord.gateway.hold_resumes()
    await discord.drop_gateway()
    await discord.wait_for(lambda: discord.gateway.ops(6), timeout=10)  # RESUME sent, unanswered
    down = await healthz()
    assert down.status_code == 503
    assert down.json()["checks"]["discord"] == "Discord gateway is not connected"
    assert down.json()["checks"]["database"] == "ok"

    gate.set()
    await (await discord.slash("queue", user=discord.alice)).wait_for_original()
    up = await healthz()
    assert up.status_code == 200, up.text
    assert discord.gateway.resumed_count == 1


async def doctor(discord: FakeDiscord, fal: FakeFal, data_dir: Path, key: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLEXBOT_")},
        **discord.env(),
        "FAL_KEY": key,
        "FLEXBOT_FAL_QUEUE_URL": fal.url,
        "FLEXBOT_FAL_REST_URL": fal.url,
        "FLEXBOT_FAL_API_URL": fal.url,
        "FLEXBOT_DATA_DIR": str(data_dir),
        "FLEXBOT_FAL_MAX_ATTEMPTS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "doctor",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_doctor_is_all_green_against_healthy_fakes(
    discord: FakeDiscord, tmp_path: Path
) -> None:
    discord.locked_channel.overwrites.clear()  # the bot may post everywhere it can see
    async with FakeFal(key="right-key") as fal:
        code, out = await doctor(discord, fal, tmp_path / "data", "right-key")
    assert code == 0, out
    assert "[FAIL]" not in out
    assert "[ok  ] fal key: accepted by fal" in out
    assert "[ok  ] discord token: logged in as" in out


async def test_doctor_names_each_failure_with_its_fix(discord: FakeDiscord, tmp_path: Path) -> None:
    discord.locked_channel.overwrites.clear()
    discord.general.overwrites.append(
        {"id": str(discord.bot_user.id), "type": 1, "allow": "0", "deny": str(Perm.ATTACH_FILES)}
    )
    async with FakeFal(key="right-key") as fal:
        code, out = await doctor(discord, fal, tmp_path / "data", "wrong-key")
    assert code == 1
    assert "[FAIL] fal key: fal rejected FAL_KEY" in out
    assert "fix: copy the key again from https://fal.ai/dashboard/keys" in out
    assert "[FAIL] permissions in #general" in out
    assert "missing Attach Files" in out
    assert "fix: grant the bot's role Attach Files in #general" in out
    assert "[FAIL] fal request list" in out  # the same rejected key cannot read it either
    assert "wrong-key" not in out
    assert "3 failed" in out


async def test_without_fal_key_the_bot_runs_a_loud_dry_run_and_logs_no_secret(
    discord: FakeDiscord, start_bot: StartBot
) -> None:
    bot = await start_bot(
        cmd=FLEXBOT_CMD,
        env={"FAL_KEY": "", "FLEXBOT_POLL_INTERVAL_SECONDS": "0.05", "FLEXBOT_LOG_LEVEL": "DEBUG"},
        sync_guild=True,
    )
    await slash_edit(discord, "make it night", filename="a.png")
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=30)
    assert result.embeds
    log = bot.log()
    assert "DRY RUN" in log
    assert "NOTHING IS BILLED" in log
    assert discord.token not in log  # the bot token, even at DEBUG with discord.py's logging
    assert "?ex=" not in log
    assert "&hm=" not in log
