"""Backups of a database under write load restore to an intact copy with every committed row."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.fal.fake import FakeFal
from tests.support.cli import run_flexbot
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")


def ledger_rows(db: Path) -> set[tuple[int, int, str, int]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT id, job_id, kind, amount_micros FROM ledger"))


async def test_backup_under_write_load_restores_every_committed_row(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    live = tmp_path / "live"
    async with engine_kit(
        live,
        fake_fal.url,
        user_daily_cap=None,
        user_monthly_cap=None,
        guild_monthly_cap=None,
        global_monthly_cap=None,
        user_max_queued=10_000,
        fal_concurrency=4,
    ) as kit:
        stop = asyncio.Event()
        loaded = asyncio.Event()

        async def write_load() -> int:
            n = 0
            while not stop.is_set():
                await kit.submit(user=n % 7)
                n += 1
                if n == 20:
                    loaded.set()
            return n

        writer = asyncio.create_task(write_load())
        await asyncio.wait_for(loaded.wait(), 30)  # the load is running before the snapshot
        committed_before = ledger_rows(kit.settings.database_path)
        backup = await asyncio.to_thread(
            run_flexbot, "backup", str(tmp_path / "bak"), data_dir=live
        )
        stop.set()
        written = await writer
    assert backup.returncode == 0, backup.stderr
    assert written > 20

    restored = tmp_path / "restored"
    result = run_flexbot("restore", str(tmp_path / "bak"), data_dir=restored)
    assert result.returncode == 0, result.stderr
    db = restored / "flexbot.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = ledger_rows(db)
    assert committed_before <= rows
    assert rows <= ledger_rows(live / "flexbot.db")  # nothing invented, nothing torn
    # Every image the restored jobs refer to came along.
    with sqlite3.connect(db) as conn:
        hashes = {r[0] for r in conn.execute("SELECT sha256 FROM blobs")}
    for sha in hashes:
        assert (restored / "blobs" / sha[:2] / sha).exists()


def test_restore_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "flexbot.db").close()
    assert run_flexbot("backup", str(tmp_path / "b1"), data_dir=tmp_path / "none").returncode == 2
    run = run_flexbot("restore", str(tmp_path / "nothing"), data_dir=data)
    assert run.returncode == 2
    assert "is it a Flexbot backup?" in run.stderr
