"""`flexbot reconcile` and `flexbot doctor` against the fake fal over HTTP, on a real database."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from bot.fal.client import FalClient
from bot.fal.fake import FakeFal
from bot.model import JobState, usd
from tests.integration.conftest import FAKE_FAL_KEY, wait_for_status
from tests.support.cli import run_flexbot
from tests.support.engine_kit import engine_kit, png

pytestmark = pytest.mark.usefixtures("instant_retries")


async def flexbot(data_dir: Path, fake: FakeFal, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (a thread keeps this loop serving the fake meanwhile)."""
    env = {
        "FAL_KEY": FAKE_FAL_KEY,
        "FLEXBOT_FAL_API_URL": fake.url,
        "FLEXBOT_FAL_REST_URL": fake.url,
        "FLEXBOT_FAL_QUEUE_URL": fake.url,
    }
    return await asyncio.to_thread(run_flexbot, *args, data_dir=data_dir, env=env)


async def delivered_job(data_dir: Path, fake: FakeFal) -> int:
    """One edit run through the engine: delivered and charged."""
    async with engine_kit(data_dir, fake.url) as kit:
        ticket = await kit.submit()
        job = await kit.wait_final(ticket.job_id)  # type: ignore[union-attr]
    assert job.state == JobState.DELIVERED
    assert job.charged_micros > 0
    return job.id


async def submit_without_a_job(client: FalClient) -> str:
    """What an ambiguous submit leaves behind: a request fal ran and billed, no job records it."""
    url = await client.upload(png(64, 48), "image/png", "stray.png")
    request_id = await client.submit({"prompt": "a stray edit", "image_urls": [url]})
    await wait_for_status(client, request_id)
    return request_id


async def test_nothing_differs_when_every_request_fal_ran_is_a_charged_job(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    await delivered_job(tmp_path, fake_fal)
    run = await flexbot(tmp_path, fake_fal, "reconcile")
    assert run.returncode == 0, run.stderr
    assert "1 matched, 0 orphan(s) at fal" in run.stdout
    assert f"Ledger charged {usd(fake_fal.billed_micros)}; fal's price" in run.stdout
    assert run.stdout.rstrip().endswith("Nothing differs.")


async def test_a_request_fal_ran_without_a_job_is_listed_with_what_fal_billed(
    tmp_path: Path, fake_fal: FakeFal, fal_client: FalClient
) -> None:
    await delivered_job(tmp_path, fake_fal)
    stray = await submit_without_a_job(fal_client)
    [billed] = [e for e in fake_fal.billing if e.request_id == stray]

    run = await flexbot(tmp_path, fake_fal, "reconcile", "--since", "2020-01-01")
    assert run.returncode == 1, run.stderr
    [row] = [line for line in run.stdout.splitlines() if stray in line]
    assert re.match(rf"orphan\s+{stray}\s+-\s+-\s+{re.escape(usd(billed.micros))}\s", row)
    assert "input 1 at most 1 MP" in row  # not our upload: its size is an assumption
    assert "1 matched, 1 orphan(s) at fal" in run.stdout


async def test_a_key_that_cannot_read_the_list_gets_one_line_naming_the_fix(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    await delivered_job(tmp_path, fake_fal)
    fake_fal.inject("requests", "403")
    run = await flexbot(tmp_path, fake_fal, "reconcile")
    assert run.returncode == 3
    assert run.stdout == ""
    [line] = [text for text in run.stderr.splitlines() if text.startswith("flexbot:")]
    assert "fal refused this key its request list (HTTP 403)" in line
    assert "ADMIN" in line
    assert "https://fal.ai/dashboard/keys" in line
    assert FAKE_FAL_KEY not in run.stderr


async def test_reconcile_refuses_a_period_that_ends_before_it_starts(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    await delivered_job(tmp_path, fake_fal)
    run = await flexbot(
        tmp_path, fake_fal, "reconcile", "--since", "2026-11-05", "--until", "2026-11-01"
    )
    assert run.returncode == 2
    assert "--since must be before --until" in run.stderr


async def test_doctor_says_whether_the_key_can_read_the_request_list(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    ok = await flexbot(tmp_path, fake_fal, "doctor")
    assert "[ok  ] fal request list: readable with this key" in ok.stdout, ok.stdout

    fake_fal.inject("requests", "403")
    refused = await flexbot(tmp_path, fake_fal, "doctor")
    assert refused.returncode == 1
    assert (
        "[FAIL] fal request list: this key cannot read fal's request list (HTTP 403): "
        "ambiguous submits cannot be reconciled, and `flexbot reconcile` cannot run"
    ) in refused.stdout
    assert "fix: create a key at https://fal.ai/dashboard/keys" in refused.stdout
