"""The PostgreSQL backend: the same store functions, shared by several Flexbot processes.

asyncpg (not psycopg 3) because it is asyncio-native with its own connection pool, the fastest
Python driver for PostgreSQL, and typed (asyncpg-stubs); the store needs nothing psycopg adds.

The store's SQL is written once, in SQLite's ``?`` style, and translated here to ``$1, $2, ...``.

**Caps under concurrency.** Every write transaction first takes one transaction-scoped advisory
lock (``pg_advisory_xact_lock``), so writes from every process run one after another exactly as
SQLite's ``BEGIN IMMEDIATE`` makes them run in one process. Each check-then-write the store makes
(a member's daily cap, the bot's budget, the fal concurrency of a claim) therefore keeps the
guarantee it has on SQLite, and no caller has to be audited for a second kind of isolation.
Serialisable transactions would give the same guarantee but fail with serialisation errors under
load, which every caller would have to retry; a write here is a few statements, so waiting for
the lock is cheaper than retrying. Reads do not take the lock. The cost, a ceiling on write
transactions per second for the whole bot, is measured in ``bench/shared_queue.py``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

from bot.errors import SchemaTooNew, StoreError
from bot.store.db import POSTGRESQL, Database, Row, Tx, migrations

log = logging.getLogger(__name__)

PG_MIGRATIONS = "migrations_pg"
#: The advisory lock every write transaction takes (an arbitrary constant, "flexbot" in ASCII).
WRITE_LOCK = 0x666C6578626F74
#: The advisory lock a migration takes, so that processes starting together migrate once.
MIGRATE_LOCK = WRITE_LOCK + 1


#: No transaction of Flexbot's waits on anything but the database, so one idle this long belongs
#: to a process that froze while holding it (and maybe the write lock): the server ends that
#: session, and the other processes go on.
SESSION_SETTINGS = {"idle_in_transaction_session_timeout": "30000"}


@functools.lru_cache(maxsize=1024)
def to_dollar(sql: str) -> str:
    """SQLite's ``?`` placeholders as PostgreSQL's ``$n``, leaving quoted text alone."""
    out: list[str] = []
    n = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a named piece of periodic work."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def _count(status: str) -> int:
    """Rows an asyncpg command status reports ("UPDATE 3", "INSERT 0 1", "DELETE 0")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTx(Tx):
    """An open PostgreSQL write transaction holding the write lock."""

    dialect = POSTGRESQL

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return list(await self.conn.fetch(to_dollar(sql), *args))

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        return _count(await self.conn.execute(to_dollar(sql), *args))

    async def insert(self, sql: str, args: Sequence[Any]) -> int:
        return int(await self.conn.fetchval(to_dollar(sql) + " RETURNING id", *args))


class PostgresDatabase(Database):
    """A pool of asyncpg connections to one PostgreSQL database that several processes share."""

    dialect = POSTGRESQL
    shared = True

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        # Not SQLite's connection: nothing outside this module uses ``conn`` (architecture test).
        self.pool = pool
        self.url = url
        self._listener: asyncpg.Connection | None = None

    def describe(self) -> str:
        parts = self.url.split("@", 1)
        return "postgresql://" + parts[-1] if len(parts) == 2 else self.url

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 10) -> PostgresDatabase:
        """Connect and migrate; the password, if any, comes from the URL, PGPASSWORD or .pgpass."""
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, server_settings=SESSION_SETTINGS
            )
        except (OSError, asyncpg.PostgresError) as exc:
            reason = _without_secrets(exc, url)
            raise StoreError(f"cannot connect to PostgreSQL: {reason}") from None
        db = cls(pool, url)
        try:
            await db.migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        await self.pool.close()

    async def listen(self, channel: str, callback: Callable[[str], object]) -> None:
        """LISTEN on a connection of its own, outside the pool (it stays subscribed)."""
        if self._listener is None:
            self._listener = await asyncpg.connect(self.url)

        def heard(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            callback(str(payload))

        await self._listener.add_listener(channel, heard)

    async def notify(self, channel: str, payload: str = "") -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return list(await self.pool.fetch(to_dollar(sql), *args))

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1") == 1)

    async def schema_version(self) -> int:
        exists = await self.pool.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists:
            return 0
        return int(await self.pool.fetchval("SELECT version FROM schema_version") or 0)

    async def migrate(self) -> list[int]:
        """Apply the missing migrations in one transaction, once however many processes start."""
        known = migrations(PG_MIGRATIONS)
        applied: list[int] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT)")
            current = int(await conn.fetchval("SELECT version FROM schema_version") or 0)
            if current > len(known):
                raise SchemaTooNew(current, len(known))
            for version, name, sql in known[current:]:
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as exc:
                    raise StoreError(f"migration {name} failed: {exc}") from exc
                log.info("applied migration %s", name)
                applied.append(version)
            if applied:
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version VALUES ($1)", applied[-1])
        return applied

    @asynccontextmanager
    async def transaction(self, *, serial: bool = True) -> AsyncIterator[Tx]:
        """A write transaction holding the bot-wide write lock (see the module's docstring);
        ``serial=False`` skips the lock for writes no check depends on."""
        async with self.pool.acquire() as conn, conn.transaction():
            if serial:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            yield PgTx(conn)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Yields True in the one process that holds ``name`` now, False in the others: a
        session advisory lock, released when the work ends or the process's connection dies."""
        key = lock_key(name)
        async with self.pool.acquire() as conn:
            got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield got
            finally:
                if got:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)


def _without_secrets(exc: BaseException, url: str) -> str:
    text = str(exc)
    parts = url.split("@", 1)
    return text.replace(parts[0], "postgresql://***") if len(parts) == 2 else text


async def inspect_server(url: str) -> int:
    """The schema version of a PostgreSQL database (0: none yet), read without migrating or
    locking anything (``flexbot doctor``). Raises StoreError, without the password, when the
    server cannot be reached."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreError(f"cannot connect: {_without_secrets(exc, url)}") from None
    try:
        if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            return 0
        return int(await conn.fetchval("SELECT version FROM schema_version") or 0)
    finally:
        await conn.close()
