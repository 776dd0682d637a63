"""The blobs table: what is known about each stored image, beyond its bytes on disk
(``bot.store.blobs`` holds the bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.db import Reader, Tx, execute, fetch_all, fetch_one


@dataclass(frozen=True, slots=True)
class BlobRow:
    """One image's size, type, deletion and cached fal storage URL."""

    sha256: str
    width: int
    height: int
    content_type: str
    deleted: bool
    fal_url: str | None
    fal_url_at: float | None


async def record_blob(
    tx: Tx,
    sha256: str,
    size: int,
    width: int,
    height: int,
    content_type: str,
    now: float,
) -> None:
    """Record a stored image; storing it again refreshes its retention and undeletes it."""
    await execute(
        tx,
        "INSERT INTO blobs (sha256, size, width, height, content_type, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET"
        " created_at = excluded.created_at, deleted_at = NULL",
        (sha256, size, width, height, content_type, now),
    )


async def get_blob(src: Reader, sha256: str) -> BlobRow | None:
    row = await fetch_one(
        src,
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


async def set_fal_url(tx: Tx, sha256: str, url: str, now: float) -> None:
    await execute(
        tx, "UPDATE blobs SET fal_url = ?, fal_url_at = ? WHERE sha256 = ?", (url, now, sha256)
    )


async def blobs_older_than(src: Reader, cutoff: float) -> list[str]:
    """Hashes of images not yet deleted whose last store is older than ``cutoff``."""
    rows = await fetch_all(
        src, "SELECT sha256 FROM blobs WHERE deleted_at IS NULL AND created_at < ?", (cutoff,)
    )
    return [str(r[0]) for r in rows]


async def mark_deleted(tx: Tx, sha256: str, now: float) -> None:
    await execute(tx, "UPDATE blobs SET deleted_at = ? WHERE sha256 = ?", (now, sha256))
