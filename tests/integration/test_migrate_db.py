"""`flexbot migrate-db --to postgresql://...`: a SQLite deployment built by the real engine and
admin core, copied into a real PostgreSQL, verified, and read back by the real code."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import pytest

from bot.admin import Admin
from bot.fal.fake import FakeFal
from bot.model import Requester
from bot.store import audit as audit_repo
from bot.store.copy import TABLES
from bot.store.db import migrations
from bot.store.postgres import PostgresDatabase
from tests.support.cli import run_flexbot
from tests.support.engine_kit import engine_kit, make_settings

pytestmark = pytest.mark.usefixtures("instant_retries")

PASSWORD = "s3cret-Pw-71"
ADMIN = 555


def with_password(url: str) -> str:
    """The test server trusts loopback, so it takes any password; the point is to carry one."""
    return url.replace("flexbot@", f"flexbot:{PASSWORD}@", 1)


async def build_deployment(data_dir: Path, fake_fal: FakeFal) -> None:
    """Jobs delivered, failed and rerun through the engine, plus every kind of admin row."""
    fake_fal.inject("submit", "content_policy")  # the first submit is refused: a failed job
    async with engine_kit(data_dir, fake_fal.url) as kit:
        jobs = []
        for user, guild in ((3, 11), (1, 10), (2, 10), (1, None)):
            ticket = await kit.submit(user=user, guild=guild)
            assert ticket.job_id is not None
            jobs.append(await kit.wait_final(ticket.job_id))
        rerun = await kit.engine.rerun(jobs[1].id, Requester(1, 10, 100, ()))
        assert rerun.job_id is not None
        await kit.wait_final(rerun.job_id)
        admin = Admin(kit.db, kit.settings)
        await admin.set_limit(ADMIN, 10, "user_daily_cap", 500_000)
        await admin.set_limit(ADMIN, 10, "user_max_queued", 3, role_id=77)
        await admin.grant_credit(ADMIN, 10, 2, 1_500_000, "contest")
        await admin.block(ADMIN, 10, 9, "spam")
        await admin.pause(ADMIN, 11)
        await admin.set_allowed_channels(ADMIN, 10, [100, 101])
        await admin.set_required_role(ADMIN, 10, 7)
        await admin.set_safety(ADMIN, 10, None, "3")
        await admin.set_remix_opt_out(2, True)
    assert [j.state for j in jobs] == ["failed", "delivered", "delivered", "delivered"]


def sqlite_facts(db_path: Path) -> dict[str, object]:
    with closing(sqlite3.connect(db_path)) as conn:
        return {
            **{t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES},
            "ledger": conn.execute(
                "SELECT kind, COUNT(*), SUM(amount_micros) FROM ledger GROUP BY kind ORDER BY kind"
            ).fetchall(),
            "per_job": conn.execute(
                "SELECT id, held_micros, charged_micros FROM jobs ORDER BY id"
            ).fetchall(),
        }


async def pg_facts(db: PostgresDatabase) -> dict[str, object]:
    counts = {t: await db.pool.fetchval(f"SELECT COUNT(*) FROM {t}") for t in TABLES}
    ledger = await db.pool.fetch(
        "SELECT kind, COUNT(*), SUM(amount_micros) FROM ledger GROUP BY kind ORDER BY kind"
    )
    per_job = await db.pool.fetch("SELECT id, held_micros, charged_micros FROM jobs ORDER BY id")
    return {
        **counts,
        "ledger": [(r[0], r[1], int(r[2])) for r in ledger],
        "per_job": [tuple(r) for r in per_job],
    }


@asynccontextmanager
async def postgres(url: str) -> AsyncIterator[PostgresDatabase]:
    async with await PostgresDatabase.connect(url) as db:
        yield db


async def user_tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


def blob_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def usage_totals(text: str) -> list[str]:
    """The report without its first line (which names the database's period only)."""
    return text.splitlines()[1:]


async def test_a_deployment_is_copied_verified_and_reads_the_same_on_postgresql(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    source = sqlite_facts(tmp_path / "flexbot.db")
    files = blob_files(tmp_path)
    assert source["jobs"] == 5
    assert source["audit"] == 9
    assert len(files) >= 2

    run = run_flexbot("migrate-db", "--to", with_password(pg_url), data_dir=tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert "flexbot:***@" in run.stdout
    assert "DIFFERS" not in run.stdout
    assert "Copied and verified" in run.stdout
    for table in ("jobs", "ledger", "limits", "credits", "audit", "safety_policy", "user_prefs"):
        assert f"{table} " in run.stdout  # every table has its line in the printed table
    async with postgres(pg_url) as db:
        assert await pg_facts(db) == {
            **source,
            "blob_data": len(files),  # SQLite keeps images as files, PostgreSQL as rows
        }
        stored = {r[0]: bytes(r[1]) for r in await db.pool.fetch("SELECT * FROM blob_data")}
        assert stored == files
        # New rows continue after the copied ids instead of colliding with them.
        await Admin(db, make_settings(tmp_path)).block(ADMIN, 10, 8)
        newest = (await audit_repo.audit_rows(db, 10, limit=1))[0]
        assert newest.action == "block"
        assert newest.id == source["audit"] + 1

    on_sqlite = run_flexbot("usage", "--since", "2020-01-01", data_dir=tmp_path)
    on_postgres = run_flexbot(
        "usage",
        "--since",
        "2020-01-01",
        data_dir=tmp_path / "elsewhere",
        env={"FLEXBOT_DATABASE_URL": pg_url},
    )
    assert on_sqlite.returncode == 0, on_sqlite.stderr
    assert on_postgres.returncode == 0, on_postgres.stderr
    assert "jobs 5: 4 delivered, 1 failed, 0 cancelled" in on_sqlite.stdout
    assert usage_totals(on_postgres.stdout) == usage_totals(on_sqlite.stdout)


async def test_a_target_with_rows_is_refused_and_left_unchanged(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    async with postgres(pg_url) as db:
        await Admin(db, make_settings(tmp_path)).block(ADMIN, 42, 8, "already here")
        before = await pg_facts(db)

    run = run_flexbot("migrate-db", "--to", with_password(pg_url), data_dir=tmp_path)

    assert run.returncode == 2
    assert "not empty (rows in audit, blocks)" in run.stderr
    assert "no row was written" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    async with postgres(pg_url) as db:
        assert await pg_facts(db) == before
        assert before["jobs"] == 0
        assert before["blocks"] == 1


async def test_a_second_run_into_the_copied_database_is_refused(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    first = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    async with postgres(pg_url) as db:
        copied = await pg_facts(db)

    again = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert again.returncode == 2
    assert "not empty" in again.stderr
    async with postgres(pg_url) as db:
        assert await pg_facts(db) == copied


async def test_a_corrupt_image_file_is_reported_and_not_copied(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    files = sorted((tmp_path / "blobs").rglob("*"))
    corrupt = next(p for p in files if p.is_file())
    corrupt.write_bytes(corrupt.read_bytes()[:-10] + b"bitrot!!!!")

    run = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert run.returncode == 1
    assert f"{corrupt}: its bytes hash to" in run.stdout
    assert "EXCEPT the image file(s) listed above" in run.stdout
    async with postgres(pg_url) as db:
        names = {r[0] for r in await db.pool.fetch("SELECT sha256 FROM blob_data")}
        assert names == set(blob_files(tmp_path)) - {corrupt.name}
        assert await db.pool.fetchval("SELECT COUNT(*) FROM jobs") == 5  # the rest is there


async def test_a_bad_image_row_fails_verification_and_nothing_is_written(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    with closing(sqlite3.connect(tmp_path / "flexbot.db")) as conn, conn:
        conn.execute("INSERT INTO blob_data VALUES (?, ?)", ("ab" * 32, b"not those bytes"))

    run = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert run.returncode == 1
    assert "images whose bytes hash to their name" in run.stdout
    assert "DIFFERS" in run.stdout
    assert "Verification FAILED: rolled back, nothing was written." in run.stdout
    async with postgres(pg_url) as db:
        assert all(v in (0, []) for v in (await pg_facts(db)).values())


async def test_a_source_at_another_schema_version_is_refused_untouched(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    with closing(sqlite3.connect(tmp_path / "flexbot.db")) as conn:
        conn.execute("PRAGMA user_version = 6")

    run = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert run.returncode == 2
    assert f"schema version 6, this Flexbot's is {len(migrations())}" in run.stderr
    assert "run this Flexbot once on it" in run.stderr
    with closing(sqlite3.connect(tmp_path / "flexbot.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 6  # not migrated by us
    assert await user_tables(pg_url) == []  # the target was not even touched


async def test_a_file_that_is_not_a_database_is_refused_before_the_target_is_touched(
    tmp_path: Path, pg_url: str
) -> None:
    (tmp_path / "flexbot.db").write_bytes(b"these are not the bytes of a SQLite database" * 20)

    run = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert run.returncode == 2
    assert "file is not a database" in run.stderr
    assert await user_tables(pg_url) == []


async def test_a_table_it_does_not_know_stops_the_copy(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    with closing(sqlite3.connect(tmp_path / "flexbot.db")) as conn, conn:
        conn.execute("CREATE TABLE mystery (x INTEGER)")

    run = run_flexbot("migrate-db", "--to", pg_url, data_dir=tmp_path)

    assert run.returncode == 2
    assert "does not know how to copy: mystery" in run.stderr
    async with postgres(pg_url) as db:
        assert await db.pool.fetchval("SELECT COUNT(*) FROM jobs") == 0


async def test_a_connection_failure_never_shows_the_password(
    tmp_path: Path, fake_fal: FakeFal, pg_url: str
) -> None:
    await build_deployment(tmp_path, fake_fal)
    missing = with_password(pg_url).rsplit("/", 1)[0] + "/no_such_database"

    run = run_flexbot("migrate-db", "--to", missing, data_dir=tmp_path)

    assert run.returncode == 1
    assert "no_such_database" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr


def test_a_target_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    run = run_flexbot("migrate-db", "--to", "sqlite:///elsewhere.db", data_dir=tmp_path)
    assert run.returncode == 2
    assert "--to must be a postgresql://" in run.stderr


def test_without_a_sqlite_deployment_there_is_nothing_to_copy(tmp_path: Path) -> None:
    run = run_flexbot("migrate-db", "--to", "postgresql://u:pw@127.0.0.1:1/x", data_dir=tmp_path)
    assert run.returncode == 2
    assert "no SQLite database at" in run.stderr
    assert ":pw@" not in run.stdout + run.stderr
