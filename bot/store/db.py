"""The SQLite connection: WAL, foreign keys, numbered migrations, write transactions."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from bot.errors import SchemaTooNew, StoreError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every bundled migration, in order."""
    found = []
    for entry in resources.files("bot.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


class Database:
    """One aiosqlite connection, used by every repository in this process.

    SQLite allows one writer at a time; money-moving work runs in ``transaction()`` which takes the
    write lock up front (``BEGIN IMMEDIATE``) so two transactions can never interleave a check and
    an insert.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # The connection is shared by every task; this keeps one task's transaction from
        # swallowing another task's statements.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=10000")
            db = cls(conn, path)
            await db.migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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
            # executescript commits first, so BEGIN/COMMIT inside makes each file atomic.
            try:
                await self.conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                )
            except aiosqlite.Error as exc:
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise StoreError(f"migration {name} failed: {exc}") from exc
            log.info("applied migration %s", name)
            applied.append(version)
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")


async def fetch_all(
    conn: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()
) -> list[aiosqlite.Row]:
    """Run a query and return every row in one hop to the database thread."""
    return list(await conn.execute_fetchall(sql, args))


async def fetch_one(
    conn: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()
) -> aiosqlite.Row | None:
    rows = await fetch_all(conn, sql, args)
    return rows[0] if rows else None
