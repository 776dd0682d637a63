import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from bot.errors import SchemaTooNew
from bot.store.blobs import BlobStore
from bot.store.db import Database, execute, migrations


async def test_fresh_database_is_migrated_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "f.db") as db:
        assert await db.schema_version() == len(migrations())
        async with db.conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with db.conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
        tables = {
            r[0]
            async for r in await db.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            )
        }
        assert {"jobs", "blobs", "ledger"} <= tables


async def test_second_start_applies_nothing_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    async with await Database.open(path) as db:
        await db.conn.execute(
            "INSERT INTO blobs (sha256, size, content_type, created_at) VALUES ('a', 1, 'x', 0)"
        )
    async with await Database.open(path) as db:
        assert await db.migrate() == []
        async with db.conn.execute("SELECT count(*) FROM blobs") as cur:
            assert (await cur.fetchone())[0] == 1


async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    async with await Database.open(path):
        pass
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {len(migrations()) + 1}")
    with pytest.raises(SchemaTooNew, match="upgrade Flexbot"):
        await Database.open(path)


async def test_ledger_rows_must_reference_a_job(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "f.db") as db:
        with pytest.raises(sqlite3.IntegrityError):
            await db.conn.execute(
                "INSERT INTO ledger (job_id, kind, amount_micros, user_id, created_at)"
                " VALUES (999, 'reserve', 1, 1, 0)"
            )


async def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "f.db") as db:
        with pytest.raises(RuntimeError):  # noqa: PT012 - the raise must happen mid-transaction
            async with db.transaction() as tx:
                await execute(
                    tx,
                    "INSERT INTO blobs (sha256, size, content_type, created_at)"
                    " VALUES ('b', 1, 'x', 0)",
                )
                raise RuntimeError("boom")
        async with db.conn.execute("SELECT count(*) FROM blobs") as cur:
            assert (await cur.fetchone())[0] == 0


async def test_blob_store_is_content_addressed_and_atomic(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    sha = await store.put(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest()
    assert await store.put(b"hello") == sha
    assert await store.get(sha) == b"hello"
    assert store.path(sha).parent.name == sha[:2]
    assert not list(store.path(sha).parent.glob(".tmp-*"))
    assert await store.delete(sha)
    assert await store.get(sha) is None


def test_blob_store_refuses_paths_that_are_not_hashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        BlobStore(tmp_path).path("../../etc/passwd")


async def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old = os.umask(0)  # the most permissive umask: every file would come out world-readable
    try:
        async with await Database.open(data_dir / "flexbot.db") as db:
            async with db.transaction() as tx:
                await execute(
                    tx,
                    "INSERT INTO blobs (sha256, size, content_type, created_at)"
                    " VALUES ('c', 1, 'x', 0)",
                )
            assert await db.ping()
            modes = {
                p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir() if p.is_file()
            }
    finally:
        os.umask(old)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert modes == {"flexbot.db": 0o600, "flexbot.db-wal": 0o600, "flexbot.db-shm": 0o600}
