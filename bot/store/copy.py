"""Copy a SQLite deployment into an empty PostgreSQL database (``flexbot migrate-db``).

The copy is all or nothing: every row and every image goes in inside ONE PostgreSQL transaction
that holds the bot-wide write lock, the copy is verified inside that same transaction against the
same SQLite snapshot (one read transaction on a read-only connection), and it commits only when
every count and sum matches. A failed check rolls back, leaving the target as empty as it was.

Tables are listed from the SQLite schema, never from a list of our own: a table this module has no
entry for in :data:`TABLES` stops the copy before anything is written, so a table added by a later
migration cannot be skipped silently. Each table is copied column for column (both backends carry
the same columns, ``migrations_pg``), ids included, then every identity sequence is moved past the
highest id so new rows do not collide. Image files become ``blob_data`` rows, each one read and
hashed first: a file whose bytes do not hash to its name is reported and never copied.

Memory stays bounded whatever the size of the deployment: rows are streamed in batches, images one
at a time, and the per-job comparison walks both databases in id order.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
import asyncpg

from bot.errors import StoreError
from bot.store.db import migrations
from bot.store.postgres import PgTx, PostgresDatabase, to_dollar

if TYPE_CHECKING:
    from bot.store.postgres import Connection

#: Rows per batch for ordinary tables; a batch is one COPY into PostgreSQL.
BATCH_ROWS = 1000

#: Every table a deployment may hold, in copy order (a table before the tables that reference
#: it), with the rows each batch carries. Rows of ``blob_data`` are whole images: one at a time.
#: A new table needs an entry here, or ``migrate-db`` refuses to start.
TABLES: dict[str, int] = {
    "jobs": BATCH_ROWS,
    "blobs": BATCH_ROWS,
    "ledger": BATCH_ROWS,
    "limits": BATCH_ROWS,
    "credits": BATCH_ROWS,
    "blocks": BATCH_ROWS,
    "pauses": BATCH_ROWS,
    "user_prefs": BATCH_ROWS,
    "audit": BATCH_ROWS,
    "allowed_channels": BATCH_ROWS,
    "guild_policy": BATCH_ROWS,
    "safety_policy": BATCH_ROWS,
    "turns": BATCH_ROWS,
    "prompt_filters": BATCH_ROWS,
    "channel_settings": BATCH_ROWS,
    "gallery_removed": BATCH_ROWS,
    "gallery_public": BATCH_ROWS,
    "gallery_thumbs": 100,  # small WebP images
    "gallery_names": BATCH_ROWS,
    "guild_language": BATCH_ROWS,
    "blob_data": 1,
}

#: Schema bookkeeping, never copied: SQLite keeps its version in ``PRAGMA user_version`` (and
#: its own ``sqlite_*`` tables), PostgreSQL in this table.
PG_BOOKKEEPING = frozenset({"schema_version"})

#: What a PostgreSQL column accepts from SQLite. asyncpg would truncate a float sent to a BIGINT
#: column without a word, so every value is checked against its column's type before it is sent.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "bigint": (int,),
    "integer": (int,),
    "smallint": (int,),
    "double precision": (int, float),
    "real": (int, float),
    "text": (str,),
    "bytea": (bytes,),
}

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PER_JOB_BATCH = 5000


class MigrationRefused(StoreError):
    """The copy did not start: the source or the target is not fit for it; nothing was written."""


class SourceSchemaMismatch(MigrationRefused):
    """The SQLite database is not at this Flexbot's schema version."""

    def __init__(self, found: int, expected: int) -> None:
        self.found = found
        self.expected = expected
        advice = (
            "run this Flexbot once on it (`flexbot run`, or `flexbot usage`, migrates it) first"
            if found < expected
            else "upgrade Flexbot to the version that wrote it first"
        )
        super().__init__(
            f"the SQLite database is at schema version {found}, this Flexbot's is {expected}; "
            f"{advice}"
        )


class TargetNotEmpty(MigrationRefused):
    """The PostgreSQL database already holds rows; ``tables`` names the tables that do."""

    def __init__(self, tables: Sequence[str]) -> None:
        self.tables = tuple(tables)
        super().__init__(
            "the PostgreSQL database is not empty (rows in "
            f"{', '.join(self.tables)}); migrate-db copies into an empty database only, so it "
            "never mixes two deployments. Create a new database and name that one."
        )


@dataclass(frozen=True, slots=True)
class TableCopy:
    """Rows of one table in the SQLite snapshot and in PostgreSQL after the copy."""

    name: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True, slots=True)
class Check:
    """One verification: the value read from SQLite (or expected from it) against PostgreSQL's."""

    what: str
    source: int
    target: int
    money: bool = False

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True, slots=True)
class BadBlob:
    """An image file that was not copied, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class CopyReport:
    """What ``copy_deployment`` copied and what the verification found."""

    schema_version: int
    tables: list[TableCopy]
    checks: list[Check]
    blob_files: int  # image files that hashed to their name (copied)
    bad_blobs: list[BadBlob] = field(default_factory=list)
    #: ``blobs`` rows not deleted by retention whose image is neither a file nor a row: the
    #: source lacked them too (a note for the operator, not a failed copy).
    missing_images: int = 0
    committed: bool = False

    @property
    def verified(self) -> bool:
        return all(t.ok for t in self.tables) and all(c.ok for c in self.checks)


class _Rollback(Exception):
    """Raised inside the copy transaction to roll it back, carrying the failed report."""

    def __init__(self, report: CopyReport) -> None:
        self.report = report


# -- the source ----------------------------------------------------------------------------------


class SqliteSource:
    """A read-only connection to the SQLite database, inside one read transaction (a snapshot)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path) -> AsyncIterator[SqliteSource]:
        """Open ``path`` read-only (never created, never migrated) and start the snapshot."""
        try:
            conn = await aiosqlite.connect(_read_only_uri(path), uri=True)
        except aiosqlite.Error as exc:
            raise MigrationRefused(f"cannot open the SQLite database {path}: {exc}") from None
        try:
            try:
                await conn.execute("BEGIN")
                await conn.execute_fetchall("PRAGMA user_version")  # starts the snapshot
            except aiosqlite.Error as exc:
                raise MigrationRefused(f"cannot read the SQLite database {path}: {exc}") from None
            yield cls(conn)
        finally:
            await conn.close()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.execute_fetchall(sql, args)]

    async def schema_version(self) -> int:
        return int((await self.fetch("PRAGMA user_version"))[0][0])

    async def tables(self) -> list[str]:
        rows = await self.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
        return [str(r[0]) for r in rows]

    async def count(self, table: str) -> int:
        return int((await self.fetch(f"SELECT COUNT(*) FROM {_ident(table)}"))[0][0])

    async def columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in await self.fetch(f"PRAGMA table_info({_ident(table)})")]

    async def batches(
        self, table: str, columns: Sequence[str], size: int
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The table's rows in rowid order (a job before the jobs made from it), ``size`` at a
        time."""
        cols = ", ".join(_ident(c) for c in columns)
        async with self.conn.execute(f"SELECT {cols} FROM {_ident(table)} ORDER BY rowid") as cur:
            while rows := await cur.fetchmany(size):
                yield [tuple(r) for r in rows]


def _read_only_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


# -- the copy ------------------------------------------------------------------------------------


async def copy_deployment(
    source_path: Path,
    blob_dir: Path,
    target_url: str,
    *,
    progress: Callable[[str], None] = lambda _line: None,
) -> CopyReport:
    """Copy the SQLite database at ``source_path`` and the image files under ``blob_dir`` into
    the PostgreSQL database at ``target_url``, verify, and commit only when every check matches.

    The source is checked before the target is touched; connecting migrates the target's schema
    (an empty schema is what the copy expects). Raises :class:`MigrationRefused` before any row is
    written when the source's schema version is not this Flexbot's, a table is unknown or differs
    between the two schemas, or the target holds rows. Returns the report; ``committed`` is False
    when a check failed and the copy was rolled back.
    """
    expected = len(migrations())
    async with SqliteSource.open(source_path) as src:
        version = await src.schema_version()
        if version != expected:
            raise SourceSchemaMismatch(version, expected)
        async with await PostgresDatabase.connect(target_url, pool_size=2) as target:
            pg_version = await target.schema_version()
            if pg_version != expected:
                raise MigrationRefused(
                    f"the PostgreSQL schema is at version {pg_version}, this Flexbot's is "
                    f"{expected}"
                )
            try:
                async with target.transaction() as tx:
                    assert isinstance(tx, PgTx)
                    report = await _copy_all(src, tx.conn, blob_dir, version, progress)
                    if not report.verified:
                        raise _Rollback(report)
            except _Rollback as failed:
                return failed.report
            return replace(report, committed=True)


async def _copy_all(
    src: SqliteSource,
    conn: Connection,
    blob_dir: Path,
    version: int,
    progress: Callable[[str], None],
) -> CopyReport:
    plan = await _plan(src, conn)
    full = [name for name in await _pg_tables(conn) if await _has_rows(conn, name)]
    if full:
        raise TargetNotEmpty(full)
    copied: dict[str, int] = {}
    for table, columns, types in plan:
        copied[table] = await _copy_table(src, conn, table, columns, types)
        progress(f"copied {table}: {copied[table]} rows")
    # Counted before the image files add their blob_data rows; the image checks cover those.
    tables = [
        TableCopy(table, await src.count(table), await _count(conn, table)) for table in copied
    ]
    good, expected_blobs, bad = await _copy_blob_files(src, conn, blob_dir)
    progress(f"copied image files: {good} ({len(bad)} skipped)")
    await _reset_identities(conn, [table for table, _, _ in plan])
    checks = await _verify(src, conn, expected_blobs)
    missing = await _pg_value(
        conn,
        "SELECT COUNT(*) FROM blobs b WHERE b.deleted_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM blob_data d WHERE d.sha256 = b.sha256)",
    )
    return CopyReport(version, tables, checks, good, bad, missing)


async def _plan(src: SqliteSource, conn: Connection) -> list[tuple[str, list[str], list[str]]]:
    """(table, columns, PostgreSQL types) for every table to copy, in copy order; refuses a table
    it does not know, or one whose columns differ between the two schemas."""
    source_tables = await src.tables()
    unknown = [t for t in source_tables if t not in TABLES]
    if unknown:
        raise MigrationRefused(
            f"the SQLite database has table(s) migrate-db does not know how to copy: "
            f"{', '.join(unknown)} (add them to bot/store/copy.py TABLES)"
        )
    pg_tables = set(await _pg_tables(conn))
    plan = []
    for table in TABLES:
        if table not in source_tables and table not in pg_tables:
            continue
        if table not in source_tables or table not in pg_tables:
            side = "SQLite" if table not in source_tables else "PostgreSQL"
            raise MigrationRefused(f"table {table} is missing from the {side} schema")
        pg_cols = await _pg_columns(conn, table)
        sqlite_cols = await src.columns(table)
        if sorted(sqlite_cols) != sorted(pg_cols):
            raise MigrationRefused(
                f"table {table} has different columns in the two schemas: SQLite "
                f"{sorted(sqlite_cols)}, PostgreSQL {sorted(pg_cols)}"
            )
        odd = sorted({t for t in pg_cols.values() if t not in _ACCEPTS})
        if odd:
            raise MigrationRefused(
                f"table {table} has column types migrate-db does not know how to copy: {odd}"
            )
        plan.append((table, list(pg_cols), list(pg_cols.values())))
    extra = pg_tables - set(TABLES) - PG_BOOKKEEPING
    if extra:
        raise MigrationRefused(
            f"the PostgreSQL schema has table(s) migrate-db does not know: {sorted(extra)}"
        )
    return plan


async def _copy_table(
    src: SqliteSource, conn: Connection, table: str, columns: list[str], types: list[str]
) -> int:
    accepts = [_ACCEPTS[t] for t in types]
    done = 0
    async for batch in src.batches(table, columns, TABLES[table]):
        for row in batch:
            _check_row(table, columns, types, accepts, row)
        try:
            await conn.copy_records_to_table(table, records=batch, columns=columns)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TypeError) as exc:
            raise StoreError(f"copying table {table} failed near row {done + 1}: {exc}") from None
        done += len(batch)
    return done


def _check_row(
    table: str,
    columns: list[str],
    types: list[str],
    accepts: list[tuple[type, ...]],
    row: tuple[Any, ...],
) -> None:
    for value, column, pg_type, ok in zip(row, columns, types, accepts, strict=True):
        if value is not None and type(value) not in ok:
            raise StoreError(
                f"table {table}, column {column}: a {type(value).__name__} value does not fit "
                f"PostgreSQL's {pg_type} (row {dict(zip(columns, row, strict=True)).get('id')})"
            )


def _blob_files(root: Path) -> Iterator[Path]:
    """Every file under the blob directory, one subdirectory listing in memory at a time."""
    if not root.is_dir():
        return
    for top in sorted(os.scandir(root), key=lambda e: e.name):
        if top.is_dir(follow_symlinks=False):
            for entry in sorted(os.scandir(top.path), key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False):
                    yield from sorted(p for p in Path(entry.path).rglob("*") if p.is_file())
                else:
                    yield Path(entry.path)
        else:
            yield Path(top.path)


def _read_hashed(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


async def _copy_blob_files(
    src: SqliteSource, conn: Connection, root: Path
) -> tuple[int, int, list[BadBlob]]:
    """(files copied, blob_data rows expected in PostgreSQL, files skipped)."""
    good = 0
    expected = int((await src.fetch("SELECT COUNT(*) FROM blob_data"))[0][0])
    bad: list[BadBlob] = []
    for path in _blob_files(root):
        name = path.name
        if not _HEX64.match(name) or path.parent != root / name[:2]:
            reason = "a left-over temporary file" if name.startswith(".tmp-") else "not a blob"
            bad.append(BadBlob(path, reason))
            continue
        data, digest = await asyncio.to_thread(_read_hashed, path)
        if digest != name:
            bad.append(BadBlob(path, f"its bytes hash to {digest[:12]}..., not to its name"))
            continue
        await conn.execute(
            to_dollar(
                "INSERT INTO blob_data (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING"
            ),
            name,
            data,
        )
        good += 1
        if not await src.fetch("SELECT 1 FROM blob_data WHERE sha256 = ?", (name,)):
            expected += 1
    return good, expected, bad


async def _reset_identities(conn: Connection, tables: list[str]) -> None:
    """Move each identity sequence past the highest copied id (or back to 1 when none)."""
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for row in rows:
        table, column = str(row[0]), str(row[1])
        if table not in tables:
            continue
        col = _ident(column)
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({col}), 1),"
            f" MAX({col}) IS NOT NULL) FROM {_ident(table)}",
            table,
            column,
        )


# -- verification --------------------------------------------------------------------------------

_LEDGER = (
    "SELECT kind, COUNT(*), COALESCE(SUM(amount_micros), 0) FROM ledger GROUP BY kind ORDER BY kind"
)
_JOB_SUMS = "SELECT COALESCE(SUM(held_micros), 0), COALESCE(SUM(charged_micros), 0) FROM jobs"
_JOB_PAGE = "SELECT id, held_micros, charged_micros FROM jobs WHERE id > ? ORDER BY id LIMIT ?"
_JOB_RANGE = "SELECT id, held_micros, charged_micros FROM jobs WHERE id > $1 AND id <= $2"


async def _verify(src: SqliteSource, conn: Connection, expected_blobs: int) -> list[Check]:
    checks = []
    before = {str(r[0]): (int(r[1]), int(r[2])) for r in await src.fetch(_LEDGER)}
    after = {str(r[0]): (int(r[1]), int(r[2])) for r in await conn.fetch(to_dollar(_LEDGER))}
    for kind in sorted(before.keys() | after.keys()):
        was, now = before.get(kind, (0, 0)), after.get(kind, (0, 0))
        checks.append(Check(f"ledger {kind} rows", was[0], now[0]))
        checks.append(Check(f"ledger {kind} total", was[1], now[1], money=True))
    held, charged = (int(v) for v in (await src.fetch(_JOB_SUMS))[0])
    row = (await conn.fetch(_JOB_SUMS))[0]
    checks.append(Check("jobs held, summed", held, int(row[0]), money=True))
    checks.append(Check("jobs charged, summed", charged, int(row[1]), money=True))
    jobs, same = await _same_per_job(src, conn)
    checks.append(Check("jobs with the same held and charged", jobs, same))
    checks.append(Check("images (blob_data rows)", expected_blobs, await _count(conn, "blob_data")))
    stored = await _pg_value(conn, "SELECT COUNT(*) FROM blob_data")
    intact = await _pg_value(
        conn, "SELECT COUNT(*) FROM blob_data WHERE encode(sha256(data), 'hex') = sha256"
    )
    checks.append(Check("images whose bytes hash to their name", stored, intact))
    return checks


async def _same_per_job(src: SqliteSource, conn: Connection) -> tuple[int, int]:
    """(jobs in SQLite, of them the ones PostgreSQL holds with the same held and charged), read
    in id order a page at a time from both."""
    jobs = same = 0
    last = -1
    while True:
        left = await src.fetch(_JOB_PAGE, (last, _PER_JOB_BATCH))
        if not left:
            return jobs, same
        right = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in await conn.fetch(_JOB_RANGE, last, int(left[-1][0]))
        }
        jobs += len(left)
        same += sum(1 for r in left if right.get(int(r[0])) == (int(r[1]), int(r[2])))
        last = int(left[-1][0])


# -- PostgreSQL helpers --------------------------------------------------------------------------


def _ident(name: str) -> str:
    """A table or column name from a schema, quoted; anything unexpected is refused."""
    if not _NAME.match(name):
        raise MigrationRefused(f"unexpected table or column name {name!r}")
    return f'"{name}"'


async def _pg_value(conn: Connection, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args) or 0)


async def _count(conn: Connection, table: str) -> int:
    return await _pg_value(conn, f"SELECT COUNT(*) FROM {_ident(table)}")


async def _has_rows(conn: Connection, table: str) -> bool:
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_ident(table)})"))


async def _pg_tables(conn: Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name"
    )
    return [str(r[0]) for r in rows if str(r[0]) not in PG_BOOKKEEPING]


async def _pg_columns(conn: Connection, table: str) -> dict[str, str]:
    """Column name -> data type, in the table's order."""
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return {str(r[0]): str(r[1]) for r in rows}
