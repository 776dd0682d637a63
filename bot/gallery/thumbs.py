"""WebP thumbnails of results: made once, off the event loop, and cached in the database.

Each original is thumbnailed at most once per process at a time (concurrent requests for the same
image wait for the same task) and at most :data:`WORKERS` at once, in threads, so a page of 48
new results never stalls the bot's event loop. The bytes go to ``gallery_thumbs`` keyed by the
original's sha256, which every process sharing a PostgreSQL database then serves as well.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

from PIL import Image

from bot.store import gallery as gallery_repo
from bot.store.blobs import Blobs
from bot.store.db import Database

log = logging.getLogger(__name__)

#: Longest side of a thumbnail, in pixels (grid cells are at most 320 CSS pixels wide).
THUMB_SIDE = 480
WEBP_QUALITY = 78
WORKERS = 2


def make_thumbnail(data: bytes, side: int = THUMB_SIDE) -> tuple[bytes, int, int]:
    """(WebP bytes, width, height) of ``data`` shrunk to fit ``side`` x ``side`` (blocking)."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (side, side))  # JPEG decodes at a reduced scale: much faster
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        rgb = img.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue(), rgb.width, rgb.height


class Thumbnails:
    """Thumbnails by original sha256: from the cache, or made now and cached."""

    def __init__(self, db: Database, blobs: Blobs, clock: Callable[[], float]) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self._slots = asyncio.Semaphore(WORKERS)
        self._making: dict[str, asyncio.Task[bytes | None]] = {}

    async def get(self, sha256: str) -> bytes | None:
        """The thumbnail's WebP bytes; None when the original's bytes are gone (purged)."""
        cached = await gallery_repo.thumbnail(self.db, sha256)
        if cached is not None:
            return cached
        task = self._making.get(sha256)
        if task is None:
            task = asyncio.create_task(self._make(sha256))
            self._making[sha256] = task
            task.add_done_callback(lambda _: self._making.pop(sha256, None))
        return await asyncio.shield(task)

    async def _make(self, sha256: str) -> bytes | None:
        original = await self.blobs.get(sha256)
        if original is None:
            return None
        async with self._slots:
            data, width, height = await asyncio.to_thread(make_thumbnail, original)
        async with self.db.transaction(serial=False) as tx:
            await gallery_repo.put_thumbnail(tx, sha256, data, width, height, self.clock())
        log.info("gallery thumbnail made for %s (%d bytes)", sha256[:12], len(data))
        return data
