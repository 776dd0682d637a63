"""The database connection: SQLite here (WAL, foreign keys, numbered migrations, write
transactions); PostgreSQL in :mod:`bot.store.postgres`, behind the same functions.

Code outside ``bot/store/`` never touches the connection. It passes a ``Database`` to the store's
read functions and a ``Tx`` (from ``async with db.transaction() as tx``) to its write functions,
so a write outside a transaction does not type-check. The database and its -wal/-shm files are
private to the bot's user (0600 in a 0700 directory) whatever the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from bot.errors import SchemaTooNew, StoreError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
#: First line of a migration that rebuilds a referenced table: applied with foreign keys off.
REBUILD_MARKER = "-- flexbot: foreign-keys-off"


def migrations(folder: str = "migrations") -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every bundled migration of one backend, in order."""
    found = []
    for entry in resources.files("bot.store").joinpath(folder).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


DIR_MODE = 0o700
FILE_MODE = 0o600


def _private_files(path: Path) -> None:
    """Create the database's directory 0700 and its file 0600, whatever the umask.

    SQLite gives the -wal and -shm files the database file's own mode, so they follow.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(path.parent, DIR_MODE)  # mkdir's mode is filtered through the umask
    fd = os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    os.close(fd)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            os.chmod(name, FILE_MODE)


#: What a row from either backend offers: ``row["column"]``, ``row[0]`` and iteration.
Row = Any

#: The two SQL dialects the store speaks; the SQL is written once, in SQLite's ``?`` style.
SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Tx:
    """An open write transaction; pass it to the store's write functions."""

    dialect = SQLITE

    __slots__ = ()

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        raise NotImplementedError

    async def insert(self, sql: str, args: Sequence[Any]) -> int:
        raise NotImplementedError


class SqliteTx(Tx):
    """A SQLite write transaction on the process's one connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return list(await self.conn.execute_fetchall(sql, args))

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        cur = await self.conn.execute(sql, args)
        return cur.rowcount

    async def insert(self, sql: str, args: Sequence[Any]) -> int:
        cur = await self.conn.execute(sql, args)
        assert cur.lastrowid is not None
        return cur.lastrowid


class Database:
    """The store's connection to its database: SQLite here, PostgreSQL in :mod:`.postgres`.

    SQLite (this class) is one aiosqlite connection used by every repository in this process.
    SQLite allows one writer at a time; money-moving work runs in ``transaction()`` which takes
    the write lock up front (``BEGIN IMMEDIATE``) so two transactions can never interleave a check
    and an insert. The PostgreSQL backend keeps that same guarantee across processes.
    """

    dialect = SQLITE
    #: Whether several processes may share this database (and its queue).
    shared = False

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # The connection is shared by every task; this keeps one task's transaction from
        # swallowing another task's statements.
        self._write_lock = asyncio.Lock()

    def describe(self) -> str:
        """Where the data is, for logs (never a password)."""
        return str(self.path)

    @classmethod
    async def open(cls, path: Path) -> Database:
        _private_files(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=10000")
            db = cls(conn, path)
            await db.migrate()
            _private_files(path)  # the -wal and -shm files exist now
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return list(await self.conn.execute_fetchall(sql, args))

    async def ping(self) -> bool:
        """True when the database answers a trivial query (the health check)."""
        async with self.conn.execute("SELECT 1") as cur:
            return await cur.fetchone() is not None

    async def schema_version(self) -> int:
        async with self.conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; return the versions applied."""
        known = migrations()
        current = await self.schema_version()
        if current > len(known):
            raise SchemaTooNew(current, len(known))
        applied = []
        for version, name, sql in known[current:]:
            rebuild = sql.startswith(REBUILD_MARKER)
            try:
                if rebuild:
                    await self._apply_rebuild(version, sql)
                else:
                    # executescript commits first, so BEGIN/COMMIT inside makes each file atomic.
                    await self.conn.executescript(
                        f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                    )
            except aiosqlite.Error as exc:
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise StoreError(f"migration {name} failed: {exc}") from exc
            finally:
                if rebuild:
                    await self.conn.execute("PRAGMA foreign_keys=ON")
            log.info("applied migration %s", name)
            applied.append(version)
        return applied

    async def _apply_rebuild(self, version: int, sql: str) -> None:
        """A migration that rebuilds a table other tables reference (sqlite.org/lang_altertable
        "other kinds of table schema changes"): foreign keys off around it (the pragma is a no-op
        inside a transaction), and a foreign key check before the commit."""
        await self.conn.execute("PRAGMA foreign_keys=OFF")
        await self.conn.executescript(f"BEGIN IMMEDIATE;\n{sql}")
        broken = list(await self.conn.execute_fetchall("PRAGMA foreign_key_check"))
        if broken:
            raise aiosqlite.IntegrityError(f"foreign keys broken by the rebuild: {broken[:5]}")
        await self.conn.execute(f"PRAGMA user_version = {version}")
        await self.conn.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self, *, serial: bool = True) -> AsyncIterator[Tx]:
        """A write transaction: committed on success, rolled back on any exception.

        ``serial=False`` is for writes no check depends on (content-addressed blobs): PostgreSQL
        runs them beside the serial ones. SQLite has one writer anyway."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(self.conn)
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Periodic work only one process may do at a time (retention, reconciliation): yields
        whether this process holds it. One process owns a SQLite database, so always True."""
        yield True

    async def listen(self, channel: str, callback: Callable[[str], object]) -> None:
        """Call ``callback(payload)`` when any process sharing this database calls
        :meth:`notify` on ``channel``. One process owns a SQLite database: nobody to hear."""

    async def notify(self, channel: str, payload: str = "") -> None:
        """Tell the other processes listening on ``channel``."""


#: What a read goes through: the database, or the transaction it must see the writes of.
Reader = Database | Tx


async def fetch_all(src: Reader, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    """Run a query and return every row in one hop to the database."""
    return await src.fetch(sql, args)


async def fetch_one(src: Reader, sql: str, args: Sequence[Any] = ()) -> Row | None:
    rows = await src.fetch(sql, args)
    return rows[0] if rows else None


async def execute(tx: Tx, sql: str, args: Sequence[Any] = ()) -> int:
    """Run one write statement inside a transaction; the number of rows it changed."""
    return await tx.execute(sql, args)


async def insert(tx: Tx, sql: str, args: Sequence[Any] = ()) -> int:
    """Run one INSERT into a table with an ``id`` column inside a transaction; the new id."""
    return await tx.insert(sql, args)


def inspect_file(path: Path) -> tuple[int, str]:
    """(schema version, quick_check verdict) of a database file, opened read-only.

    For ``flexbot doctor``: it must not create, migrate or lock a database it only looks at.
    Raises sqlite3.Error when the file cannot be read as a database.
    """
    with contextlib.closing(
        sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    ) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
    return version, verdict
