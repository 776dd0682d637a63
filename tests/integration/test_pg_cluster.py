"""The throwaway PostgreSQL the tests run against: loopback only, a fresh database per test."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.support.pg_cluster import PgCluster, PgClusterError

_USER_RELATIONS = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""


async def test_fresh_database_is_empty_and_listens_on_loopback_only(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval(_USER_RELATIONS) == 0
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert str(await conn.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
        assert await conn.fetchval("SELECT current_database()") == pg_url.rsplit("/", 1)[1]
    finally:
        await conn.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_its_own_database(pg_url: str, run: int) -> None:
    # Both runs create the same table: the second would hit DuplicateTable in a shared database.
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE marker (run int)")
        await conn.execute("INSERT INTO marker VALUES ($1)", run)
        assert await conn.fetchval("SELECT count(*) FROM marker") == 1
    finally:
        await conn.close()


async def test_databases_of_one_cluster_do_not_share_tables(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    first = await asyncpg.connect(pg_url)
    try:
        await first.execute("CREATE TABLE jobs (id int)")
        other_url = await pg_cluster.create_database("other_than_pg_url")
        try:
            assert other_url != pg_url
            other = await asyncpg.connect(other_url)
            try:
                assert await other.fetchval(_USER_RELATIONS) == 0
            finally:
                await other.close()
        finally:
            await pg_cluster.drop_database("other_than_pg_url")
    finally:
        await first.close()


async def test_drop_database_ends_connections_left_open(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_database("left_open")
    leaked = await asyncpg.connect(url)
    await pg_cluster.drop_database("left_open")
    assert leaked.is_closed() or not await _still_answers(leaked)
    admin = await asyncpg.connect(pg_cluster.url("postgres"))
    try:
        names = await admin.fetch("SELECT datname FROM pg_database")
    finally:
        await admin.close()
    assert "left_open" not in {row["datname"] for row in names}


async def _still_answers(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


async def test_server_refuses_connections_once_the_cluster_stops(tmp_path: Path) -> None:
    with PgCluster.running(tmp_path) as cluster:
        url = cluster.url("postgres")
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(url, timeout=5)


def test_missing_binaries_name_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(PgClusterError, match="apt-get install postgresql"):
        PgCluster(bindir=tmp_path).start(tmp_path / "base")


def test_failed_start_shows_the_end_of_the_log(tmp_path: Path) -> None:
    cluster = PgCluster(settings={"shared_buffers": "plenty"})
    with pytest.raises(PgClusterError, match="pg_ctl start failed") as failure:
        cluster.start(tmp_path)
    assert 'invalid value for parameter "shared_buffers"' in str(failure.value)
