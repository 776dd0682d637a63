"""Issue 12: every micro-dollar fal bills is explained by a ledger row, and no job is failed while
fal may still be running it. A real Engine (SQLite on disk) against the bundled fake fal over
HTTP; the fake's billing log is what fal would have charged."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.fal.fake import FakeFal
from bot.model import JobState
from tests.support.engine_kit import engine_kit


@pytest.fixture
async def fake() -> AsyncIterator[FakeFal]:
    async with FakeFal(processing_time=0.05) as server:
        yield server


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Check ``predicate()`` every 10 ms until it holds (the fake's state has no event)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within {timeout}s")


def ledger_spend(db_path: Path) -> int:
    """Charges minus refunds in the ledger: what the owner is told fal billed."""
    con = sqlite3.connect(db_path)
    try:
        row = con.execute(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE kind = 'charge'"
        ).fetchone()
        refunds = con.execute(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE kind = 'refund'"
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) - int(refunds[0])


# -- 1. Flexbot picks the seed --------------------------------------------------------------------


async def test_flexbot_picks_the_seed_and_stores_it_before_the_post(
    tmp_path: Path, fake: FakeFal
) -> None:
    # The submit's answer hangs, so the job is caught inside the submit window.
    fake.inject("submit", "timeout", seconds=30)
    async with engine_kit(tmp_path, fake.url, fal_timeout=1.0) as kit:
        ticket = await kit.submit(prompt="no seed given")
        await wait_until(lambda: len(fake.calls("submit")) == 1)
        job = await kit.job(ticket.job_id)
        sent = fake.calls("submit")[0].json
        assert job.state == JobState.SUBMITTING
        assert job.params.seed is not None
        assert sent["seed"] == job.params.seed == job.seed
        assert 0 <= job.params.seed < 2**32


async def test_a_rerun_sends_the_seed_flexbot_picked(tmp_path: Path, fake: FakeFal) -> None:
    async with engine_kit(tmp_path, fake.url) as kit:
        first = await kit.submit(prompt="same picture twice")
        done = await kit.wait_final(first.job_id)
        assert done.state == JobState.DELIVERED
        again = await kit.engine.rerun(first.job_id, done.requester)
        await kit.wait_final(again.job_id)
        seeds = [call.json["seed"] for call in fake.calls("submit")]
        assert seeds == [done.params.seed, done.params.seed]
        assert kit.delivery.delivered[first.job_id] == kit.delivery.delivered[again.job_id]
