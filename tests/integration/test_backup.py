"""Backups of a database under write load restore to an intact copy with every committed row."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.fal.fake import FakeFal
from bot.store import backup
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


# -- what a backup is allowed to contain ----------------------------------------------------------


def make_live(data: Path, images: list[bytes]) -> list[str]:
    """A small live data directory: a database with jobs and ledger rows, and blobs."""
    data.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data / "flexbot.db")) as conn, conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, prompt TEXT)")
        conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount_micros INTEGER)")
        conn.execute("INSERT INTO jobs (prompt) VALUES ('from the backup')")
    hashes = []
    for image in images:
        sha = hashlib.sha256(image).hexdigest()
        path = data / "blobs" / sha[:2] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
        path.chmod(0o644)
        hashes.append(sha)
    return hashes


def prompts(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT prompt FROM jobs ORDER BY id")]


def test_backup_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    make_live(tmp_path / "live", [b"one", b"two"])
    old = os.umask(0o022)
    try:
        backup.backup(tmp_path / "live", tmp_path / "bak")
    finally:
        os.umask(old)

    seen = {"dirs": 0, "files": 0}
    for path in [tmp_path / "bak", *(tmp_path / "bak").rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            seen["dirs"] += 1
            assert mode == 0o700, path
        else:
            seen["files"] += 1
            assert mode == 0o600, path
    assert seen == {"dirs": 4, "files": 4}  # bak, blobs, 2 prefixes; db, manifest, 2 blobs


def test_symlinks_in_a_backup_are_skipped_not_followed(tmp_path: Path) -> None:
    make_live(tmp_path / "live", [b"image"])
    backup.backup(tmp_path / "live", tmp_path / "bak")
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_bytes(b"PRIVATE KEY")
    sha = hashlib.sha256(b"PRIVATE KEY").hexdigest()  # the link's name matches its target
    (tmp_path / "bak" / "blobs" / sha[:2]).mkdir()
    (tmp_path / "bak" / "blobs" / sha[:2] / sha).symlink_to(secret)
    (tmp_path / "bak" / "blobs" / "zz").symlink_to(secret.parent, target_is_directory=True)
    os.mkfifo(tmp_path / "bak" / "blobs" / sha[:2] / ("f" * 64))

    report = backup.restore(tmp_path / "bak", tmp_path / "restored")

    restored = tmp_path / "restored" / "blobs"
    assert not (restored / sha[:2] / sha).exists()
    assert not (restored / "zz").exists()
    assert b"PRIVATE KEY" not in b"".join(
        p.read_bytes() for p in restored.rglob("*") if p.is_file()
    )
    assert report.blobs_copied == 1
    assert sorted(report.skipped) == sorted(
        [
            f"{sha[:2]}/{sha} (symbolic link)",
            f"{sha[:2]}/{'f' * 64} (not a regular file)",
            "zz (symbolic link)",
        ]
    )


def test_tampered_blob_refuses_the_restore_and_leaves_live_data_alone(tmp_path: Path) -> None:
    [good, bad] = make_live(tmp_path / "old", [b"good image", b"bad image"])
    backup.backup(tmp_path / "old", tmp_path / "bak")
    (tmp_path / "bak" / "blobs" / bad[:2] / bad).write_bytes(b"something else")
    live = tmp_path / "live"
    make_live(live, [])
    with contextlib.closing(sqlite3.connect(live / "flexbot.db")) as conn, conn:
        conn.execute("UPDATE jobs SET prompt = 'live only'")
    before = {p: p.read_bytes() for p in live.rglob("*") if p.is_file()}

    with pytest.raises(StoreError, match="do not match their names") as caught:
        backup.restore(tmp_path / "bak", live, force=True)

    assert bad[:8] in str(caught.value)
    assert {p: p.read_bytes() for p in live.rglob("*") if p.is_file()} == before
    assert prompts(live / "flexbot.db") == ["live only"]
    assert not (live / "blobs" / good[:2] / good).exists()


def test_rows_in_the_live_wal_survive_in_the_safety_copy(tmp_path: Path) -> None:
    make_live(tmp_path / "old", [])
    backup.backup(tmp_path / "old", tmp_path / "bak")
    # A bot killed mid-run: committed rows still only in flexbot.db-wal.
    running, live = tmp_path / "running", tmp_path / "live"
    make_live(running, [])
    conn = sqlite3.connect(running / "flexbot.db")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    with conn:
        conn.executemany("INSERT INTO jobs (prompt) VALUES (?)", [("wal 1",), ("wal 2",)])
    live.mkdir()
    for name in ("flexbot.db", "flexbot.db-wal"):
        shutil.copyfile(running / name, live / name)
    conn.close()
    assert (live / "flexbot.db-wal").stat().st_size > 0

    backup.restore(tmp_path / "bak", live, force=True)

    kept = live / "flexbot.db.before-restore"
    assert prompts(kept) == ["from the backup", "wal 1", "wal 2"]
    assert prompts(live / "flexbot.db") == ["from the backup"]  # the old WAL was not replayed
