"""`flexbot usage` reads the live database: the text report and a CSV that sums to the ledger."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from bot.fal.fake import FakeFal
from tests.support.cli import run_flexbot
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")


async def test_usage_report_and_csv_match_the_ledger(tmp_path: Path, fake_fal: FakeFal) -> None:
    fake_fal.inject("submit", "content_policy")
    async with engine_kit(tmp_path, fake_fal.url) as kit:
        for user, guild in ((1, 10), (2, 10), (3, 11)):
            ticket = await kit.submit(user=user, guild=guild)
            await kit.wait_final(ticket.job_id)  # type: ignore[union-attr]
        async with kit.db.conn.execute(
            "SELECT SUM(CASE kind WHEN 'charge' THEN amount_micros WHEN 'refund' THEN"
            " -amount_micros ELSE 0 END) FROM ledger"
        ) as cur:
            charged = (await cur.fetchone())[0]
    assert charged == 200_000  # two delivered at $0.10, one failed and released

    text = run_flexbot("usage", data_dir=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "jobs 3: 2 delivered, 1 failed, 0 cancelled" in text.stdout
    assert "spent $0.20" in text.stdout

    one = run_flexbot("usage", "--guild", "11", "--csv", data_dir=tmp_path)
    rows = list(csv.DictReader(io.StringIO(one.stdout)))
    assert [r["guild_id"] for r in rows] == ["11"]

    everything = run_flexbot("usage", "--csv", "--since", "2020-01-01", data_dir=tmp_path)
    rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert len(rows) == 3
    assert sum(Decimal(r["amount_usd"]) for r in rows) * 1_000_000 == charged


def test_usage_rejects_a_bad_date(tmp_path: Path) -> None:
    run = run_flexbot("usage", "--since", "last tuesday", data_dir=tmp_path)
    assert run.returncode == 2
    assert "is not a date like 2026-11-01" in run.stderr
