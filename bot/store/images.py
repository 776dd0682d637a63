"""The blobs table: what is known about each stored image, beyond its bytes on disk."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from bot.store.db import fetch_all, fetch_one


@dataclass(frozen=True, slots=True)
class BlobRow:
    sha256: str
    width: int
    height: int
    content_type: str
    deleted: bool
    fal_url: str | None
    fal_url_at: float | None


async def record_blob(
    conn: aiosqlite.Connection,
    sha256: str,
    size: int,
    width: int,
    height: int,
    content_type: str,
    now: float,
) -> None:
    """Record a stored image; storing it again refreshes its retention and undeletes it."""
    await conn.execute(
        "INSERT INTO blobs (sha256, size, width, height, content_type, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET"
        " created_at = excluded.created_at, deleted_at = NULL",
        (sha256, size, width, height, content_type, now),
    )


async def get_blob(conn: aiosqlite.Connection, sha256: str) -> BlobRow | None:
    row = await fetch_one(
        conn,
        "SELECT width, height, content_type, deleted_at, fal_url, fal_url_at FROM blobs"
        " WHERE sha256 = ?",
        (sha256,),
    )
    if row is None:
        return None
    return BlobRow(
        sha256,
        int(row["width"]),
        int(row["height"]),
        str(row["content_type"]),
        row["deleted_at"] is not None,
        row["fal_url"],
        row["fal_url_at"],
    )


async def set_fal_url(conn: aiosqlite.Connection, sha256: str, url: str, now: float) -> None:
    await conn.execute(
        "UPDATE blobs SET fal_url = ?, fal_url_at = ? WHERE sha256 = ?", (url, now, sha256)
    )


async def blobs_older_than(conn: aiosqlite.Connection, cutoff: float) -> list[str]:
    """Hashes of images not yet deleted whose last store is older than ``cutoff``."""
    rows = await fetch_all(
        conn, "SELECT sha256 FROM blobs WHERE deleted_at IS NULL AND created_at < ?", (cutoff,)
    )
    return [str(r[0]) for r in rows]


async def mark_deleted(conn: aiosqlite.Connection, sha256: str, now: float) -> None:
    await conn.execute("UPDATE blobs SET deleted_at = ? WHERE sha256 = ?", (now, sha256))
