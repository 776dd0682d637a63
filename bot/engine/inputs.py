"""Input and output images: blob store writes with their rows, the fal storage URL cache, the
inputs of an earlier job (for reruns and remixes) and retention (purging old images)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bot.errors import UserError
from bot.fal.client import FalClient
from bot.model import InputImage, JobState
from bot.settings import Settings
from bot.store import images as image_rows
from bot.store import jobs as jobs_repo
from bot.store.blobs import Blobs
from bot.store.db import Database

log = logging.getLogger(__name__)

FAL_URL_TTL = 6 * 3600.0  # reuse a fal storage URL for reruns within this window


class Inputs:
    """The images jobs read and write, on disk and in the blobs table."""

    def __init__(
        self,
        db: Database,
        blobs: Blobs,
        fal: FalClient,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.fal = fal
        self.settings = settings
        self.clock = clock

    async def store(self, data: bytes, width: int, height: int, content_type: str) -> str:
        """Put bytes in the blob store and record them (a re-store refreshes retention)."""
        sha = await self.blobs.put(data)
        async with self.db.transaction(serial=False) as tx:
            await image_rows.record_blob(
                tx, sha, len(data), width, height, content_type, self.clock()
            )
        return sha

    async def fal_url_for(self, sha: str) -> str:
        """Upload an input to fal storage once and reuse the URL for a while."""
        row = await image_rows.get_blob(self.db, sha)
        now = self.clock()
        if row and row.fal_url and now - (row.fal_url_at or 0) < FAL_URL_TTL:
            return row.fal_url
        data = await self.blobs.get(sha)
        if data is None:
            raise UserError("An input image of this job has been deleted.")
        content_type = row.content_type if row else "image/png"
        ext = "png" if content_type == "image/png" else "jpg"
        url = await self.fal.upload(data, content_type, f"{sha[:16]}.{ext}")
        async with self.db.transaction(serial=False) as tx:
            await image_rows.set_fal_url(tx, sha, url, now)
        return url

    async def rows(self, hashes: Sequence[str], job_id: int) -> list[image_rows.BlobRow]:
        """What the blobs table knows of these images (sizes stay after the files are purged)."""
        rows = []
        for sha in hashes:
            row = await image_rows.get_blob(self.db, sha)
            if row is None:
                raise UserError.of("Job #{job} refers to an unknown image.", job=job_id)
            rows.append(row)
        return rows

    async def inputs_of(self, hashes: Sequence[str], job_id: int) -> tuple[InputImage, ...]:
        """The images as inputs for a new job; refused when any of them was purged."""
        rows = await self.rows(hashes, job_id)
        if any([r.deleted or not await self.blobs.exists(r.sha256) for r in rows]):
            raise UserError.of(
                "The images of job #{job} have been deleted (images are kept {days} days); "
                "start a new /edit instead.",
                job=job_id,
                days=f"{self.settings.blob_retention_days:g}",
            )
        return tuple(InputImage(r.sha256, r.width, r.height) for r in rows)

    async def purge(self, now: float | None = None) -> int:
        """Delete image files older than the retention period, unless an active job needs them."""
        now = self.clock() if now is None else now
        cutoff = now - self.settings.blob_retention_days * 86400
        active: set[str] = set()
        for job in await jobs_repo.jobs_in_states(self.db, [*JobState.ACTIVE, JobState.FETCHED]):
            active.update(job.input_hashes)
            if job.output_hash:
                active.add(job.output_hash)
        old = [s for s in await image_rows.blobs_older_than(self.db, cutoff) if s not in active]
        for sha in old:
            await self.blobs.delete(sha)
            async with self.db.transaction(serial=False) as tx:
                await image_rows.mark_deleted(tx, sha, now)
        if old:
            log.info(
                "purged %d image(s) older than %g days", len(old), self.settings.blob_retention_days
            )
        return len(old)
