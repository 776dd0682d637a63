"""The store on a real PostgreSQL server: the same schema as SQLite, the same guarantees across
processes (each ``PostgresDatabase`` here is a pool of its own, as a process would have)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from bot.errors import SchemaTooNew, UserError
from bot.fal.fake import FakeFal
from bot.model import JobState, Requester
from bot.store import usage
from bot.store.blobs import DatabaseBlobs
from bot.store.db import Database, execute, fetch_one, migrations
from bot.store.postgres import PG_MIGRATIONS, PostgresDatabase, to_dollar
from tests.support.engine_kit import Kit, engine_kit


async def test_fresh_database_is_migrated_to_the_sqlite_schema_version(pg_url: str) -> None:
    async with await PostgresDatabase.connect(pg_url) as db:
        assert await db.schema_version() == len(migrations()) == len(migrations(PG_MIGRATIONS))
        assert await db.migrate() == []  # a second process starting finds nothing to do


async def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    async with await Database.open(tmp_path / "f.db"):
        pass
    with sqlite3.connect(tmp_path / "f.db") as lite:
        tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        sqlite_columns = {
            t: [r[1] for r in lite.execute(f"PRAGMA table_info({t})")] for t in tables
        }
    async with await PostgresDatabase.connect(pg_url) as db:
        rows = await db.pool.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'schema_version'"
            " ORDER BY table_name, ordinal_position"
        )
    pg_columns: dict[str, list[str]] = {}
    for row in rows:
        pg_columns.setdefault(row["table_name"], []).append(row["column_name"])
    assert pg_columns == sqlite_columns


async def test_a_database_from_a_newer_flexbot_is_refused(pg_url: str) -> None:
    async with await PostgresDatabase.connect(pg_url) as db:
        await db.pool.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaTooNew, match="upgrade Flexbot"):
        await PostgresDatabase.connect(pg_url)


async def test_ledger_rows_must_reference_a_job_and_a_failed_transaction_leaves_nothing(
    pg_url: str,
) -> None:
    async with await PostgresDatabase.connect(pg_url) as db:
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # noqa: PT012 - mid-transaction
            async with db.transaction() as tx:
                await execute(
                    tx,
                    "INSERT INTO blobs (sha256, size, content_type, created_at)"
                    " VALUES ('b', 1, 'x', 0)",
                )
                await execute(
                    tx,
                    "INSERT INTO ledger (job_id, kind, amount_micros, user_id, created_at)"
                    " VALUES (999, 'reserve', 1, 1, 0)",
                )
        row = await fetch_one(db, "SELECT count(*) FROM blobs")
        assert row is not None
        assert row[0] == 0


async def test_discord_ids_and_micro_dollars_keep_all_64_bits(pg_url: str) -> None:
    snowflake = 1_311_768_467_463_790_320  # a 2026 Discord id, far past 2^31
    async with await PostgresDatabase.connect(pg_url) as db:
        async with db.transaction() as tx:
            await execute(
                tx,
                "INSERT INTO credits (guild_id, user_id, amount_micros, created_at)"
                " VALUES (?, ?, ?, ?)",
                (snowflake, snowflake + 1, 9_000_000_000_000, 1.5),
            )
        row = await fetch_one(db, "SELECT guild_id, user_id, amount_micros FROM credits")
        assert tuple(row) == (snowflake, snowflake + 1, 9_000_000_000_000)


def test_placeholders_become_numbered_outside_quoted_text() -> None:
    sql = "SELECT 'why?' AS q, a FROM t WHERE a = ? AND b IN (?, ?)"
    assert to_dollar(sql) == "SELECT 'why?' AS q, a FROM t WHERE a = $1 AND b IN ($2, $3)"


async def test_images_live_in_the_database_and_are_deleted_by_retention(pg_url: str) -> None:
    async with (
        await PostgresDatabase.connect(pg_url) as one,
        await PostgresDatabase.connect(pg_url) as other,
    ):
        sha = await DatabaseBlobs(one).put(b"\x89PNG pixels")
        assert sha == hashlib.sha256(b"\x89PNG pixels").hexdigest()
        assert await DatabaseBlobs(one).put(b"\x89PNG pixels") == sha  # stored once
        assert await DatabaseBlobs(other).get(sha) == b"\x89PNG pixels"  # another process
        assert await DatabaseBlobs(other).delete(sha)
        assert await DatabaseBlobs(one).get(sha) is None
        assert not await DatabaseBlobs(one).exists(sha)


async def test_periodic_work_runs_in_one_process_at_a_time(pg_url: str) -> None:
    async with (
        await PostgresDatabase.connect(pg_url) as one,
        await PostgresDatabase.connect(pg_url) as other,
    ):
        async with one.exclusive("retention") as first:
            async with other.exclusive("retention") as second:
                assert (first, second) == (True, False)
            async with other.exclusive("reconcile") as unrelated:
                assert unrelated
        async with other.exclusive("retention") as after:
            assert after  # released when the first process's work ended


async def test_a_daily_cap_holds_when_two_processes_admit_at_once(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    # Two engines with pools of their own on one database, as two bot processes: 2 x 8 edits
    # at once for a member whose cap fits three. The write lock serialises each admission's
    # check and insert, so no interleaving lets a fourth in.
    cap = 300_000
    kits = {
        "database_url": pg_url,
        "start": False,
        "user_daily_cap": cap,
        "user_cooldown_seconds": 0.0,
    }
    async with (
        engine_kit(tmp_path / "a", fake_fal.url, **kits) as a,
        engine_kit(tmp_path / "b", fake_fal.url, **kits) as b,
    ):
        image = await a.image()

        async def attempt(kit: Kit) -> str:
            try:
                await kit.submit(user=5, inputs=(image,))
            except UserError as refused:
                return str(refused.limit)
            return "admitted"

        admitted = await asyncio.gather(*(attempt(k) for k in (a, b) * 8))
        spent = await usage.spend_by_day(a.db, 0, 2e10, user_id=5)
    assert sorted(admitted) == ["admitted"] * 3 + ["user_daily_cap"] * 13
    assert sum(spent.values()) == cap


async def test_a_cancel_asked_in_another_process_reaches_the_run_at_once(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    # The job runs in process A; the member's Cancel button is answered by process B (another
    # shard). A's heartbeat would learn of it within a third of the 30 s lease; the notification
    # makes it reach fal now.
    fake_fal.configure(processing_time=30)
    async with (
        engine_kit(tmp_path / "a", fake_fal.url, database_url=pg_url, worker_name="a") as a,
        engine_kit(
            tmp_path / "b", fake_fal.url, database_url=pg_url, worker_name="b", start=False
        ) as b,
    ):
        ticket = await a.submit(user=1)
        await a.engine.wait_for_state(ticket.job_id, [JobState.RUNNING])
        answer = await b.engine.cancel(ticket.job_id, Requester(1, 10, 100))
        assert answer.outcome == "cancelling"
        job = await a.engine.wait_for_state(ticket.job_id, timeout=3)
    assert job.state == JobState.CANCELLED
    assert (job.charged_micros, job.held_micros) == (0, 0)
    assert len(fake_fal.calls("cancel")) == 1
