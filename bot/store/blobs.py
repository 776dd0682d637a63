"""Image bytes by sha256: files on one disk (SQLite deployments) or rows in the shared database.

``<root>/<ab>/<abcdef...>`` on disk; the ``blob_data`` table when several processes share a
PostgreSQL database and no disk (issue 13). Both are content-addressed and immutable, so a write
is idempotent and needs no lock; retention deletes through the same interface.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from bot.store.db import Database, execute, fetch_one

_HEX = frozenset("0123456789abcdef")


class Blobs(Protocol):
    """Where the engine keeps image bytes."""

    async def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its sha256."""

    async def get(self, sha256: str) -> bytes | None:
        """The blob's bytes, or None when it was never stored or has been deleted."""

    async def exists(self, sha256: str) -> bool: ...

    async def delete(self, sha256: str) -> bool:
        """Delete the bytes; False when there were none."""


def _check(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class BlobStore:
    """Immutable blobs as files keyed by the sha256 of their bytes; writes are atomic and the
    file work (fsync included) runs off the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / _check(sha256)[:2] / sha256

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put_now, data)

    def put_now(self, data: bytes) -> str:
        """:meth:`put`, blocking (for tools that run no event loop)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    async def get(self, sha256: str) -> bytes | None:
        return await asyncio.to_thread(self.get_now, sha256)

    def get_now(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    async def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    async def delete(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True


class DatabaseBlobs:
    """Blobs as rows of ``blob_data`` in the database every process shares."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        # Content-addressed and immutable: no cap depends on it, so no bot-wide write lock.
        async with self.db.transaction(serial=False) as tx:
            await execute(
                tx,
                "INSERT INTO blob_data (sha256, data) VALUES (?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (digest, data),
            )
        return digest

    async def get(self, sha256: str) -> bytes | None:
        row = await fetch_one(
            self.db, "SELECT data FROM blob_data WHERE sha256 = ?", (_check(sha256),)
        )
        return bytes(row[0]) if row else None

    async def exists(self, sha256: str) -> bool:
        row = await fetch_one(
            self.db, "SELECT 1 FROM blob_data WHERE sha256 = ?", (_check(sha256),)
        )
        return row is not None

    async def delete(self, sha256: str) -> bool:
        async with self.db.transaction(serial=False) as tx:
            gone = await execute(tx, "DELETE FROM blob_data WHERE sha256 = ?", (_check(sha256),))
        return gone > 0
