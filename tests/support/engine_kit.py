"""Build a real Engine (SQLite on disk, real HTTP to the fake fal) with a recording Delivery."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from bot.engine.delivery import Undeliverable, Words
from bot.engine.engine import Engine
from bot.errors import english
from bot.fal.client import FalClient
from bot.images import ImageLimits, normalize_image
from bot.intake import new_input
from bot.model import EditParams, EditRequest, InputImage, Job, JobTicket, Progress, Requester
from bot.secret import Secret
from bot.settings import Settings, load_settings
from bot.store.blobs import BlobStore, DatabaseBlobs
from bot.store.connect import open_database
from bot.store.db import Database, fetch_all


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Defaults as shipped, except fast polling, plus the test's overrides."""
    base = load_settings(config_path=None, environ={})
    fast = {
        "data_dir": data_dir,
        "poll_interval_seconds": 0.01,
        "poll_max_interval_seconds": 0.05,
        "fal_unsure_grace_seconds": 0.3,
        "fal_unsure_interval_seconds": 0.02,
        "progress_interval_seconds": 0.0,
        "shutdown_timeout_seconds": 5.0,
    }
    return replace(base, **{**fast, **overrides})


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class RecordingDelivery:
    """A Delivery that remembers what members would have seen."""

    delivered: dict[int, list[bytes]] = field(default_factory=dict)
    failures: dict[int, list[str]] = field(default_factory=dict)  # in English
    notices: dict[int, list[Words]] = field(default_factory=dict)  # as the engine told them
    updates: dict[int, list[Progress]] = field(default_factory=dict)
    undeliverable: set[int] = field(default_factory=set)
    flaky: int = 0  # next N deliveries raise a transient error
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    next_message_id: int = 1000

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def progress(self, job: Job, progress: Progress) -> None:
        self.updates.setdefault(job.id, []).append(progress)

    async def deliver(self, job: Job, image: bytes) -> int | None:
        if job.id in self.undeliverable:
            raise Undeliverable("Missing Access: the channel is gone")
        if self.flaky:
            self.flaky -= 1
            raise ConnectionError("discord hiccup")
        self.delivered.setdefault(job.id, []).append(image)
        self.next_message_id += 1
        await self._notify()
        return self.next_message_id

    async def failed(self, job: Job, reason: Words) -> None:
        self.failures.setdefault(job.id, []).append(english(reason))
        self.notices.setdefault(job.id, []).append(reason)
        await self._notify()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)


@dataclass
class Kit:
    engine: Engine
    delivery: RecordingDelivery
    db: Database
    settings: Settings

    async def image(self, width: int = 64, height: int = 48, seed: int = 0) -> InputImage:
        data = png(width, height, ((seed * 47) % 256, (seed * 91) % 256, 120))
        sha = await self.engine.store_blob(data, width, height, "image/png")
        return InputImage(sha, width, height)

    def upload(self, width: int = 64, height: int = 48, seed: int = 0) -> InputImage:
        """A normalised upload not yet in the blob store (submit stores it once admitted)."""
        data = png(width, height, ((seed * 47) % 256, (seed * 91) % 256, 120))
        return new_input(normalize_image(data, f"upload-{seed}.png", ImageLimits()))

    async def stored_blobs(self) -> list[str]:
        """The sha256 of every image in the blob store (files on SQLite, rows on PostgreSQL)."""
        if self.db.shared:
            rows = await fetch_all(self.db, "SELECT sha256 FROM blob_data ORDER BY sha256")
            return [str(r[0]) for r in rows]
        return sorted(p.name for p in self.settings.blob_dir.rglob("*") if p.is_file())

    async def submit(
        self,
        user: int = 1,
        guild: int | None = 10,
        prompt: str = "make it night",
        inputs: tuple[InputImage, ...] | None = None,
        roles: tuple[int, ...] = (),
        *,
        channel: int = 100,
        channel_nsfw: bool = False,
        source_author_id: int | None = None,
        **params: Any,
    ) -> JobTicket:
        inputs = inputs or (await self.image(),)
        return await self.engine.submit(
            EditRequest(
                EditParams(prompt=prompt, **params),
                inputs,
                Requester(user, guild, channel, roles, channel_nsfw=channel_nsfw),
                source_author_id=source_author_id,
            )
        )

    async def job(self, job_id: int) -> Job:
        job = await self.engine.get_job(job_id)
        assert job is not None
        return job

    async def wait_final(self, job_id: int, timeout: float = 10.0) -> Job:
        return await self.engine.wait_for_state(job_id, timeout=timeout)


@asynccontextmanager
async def engine_kit(
    data_dir: Path,
    fal_url: str,
    *,
    start: bool = True,
    clock: Callable[[], float] = time.time,
    delivery: RecordingDelivery | None = None,
    fal_timeout: float = 5.0,
    **overrides: Any,
) -> AsyncIterator[Kit]:
    """An engine on ``data_dir`` talking to the fake fal at ``fal_url`` (queue, storage and
    request list). ``clock``: the engine's clock (``FakeFal.now`` to follow the fake's test
    clock); ``delivery``: reuse one across restarts."""
    settings = make_settings(data_dir, **overrides)
    db = await open_database(settings)
    delivery = delivery or RecordingDelivery()
    fal = FalClient(
        Secret("test-key"),
        queue_url=fal_url,
        rest_url=fal_url,
        api_url=fal_url,
        timeout=fal_timeout,
        max_attempts=3,
        insecure_local_origin=fal_url,
    )
    engine = Engine(
        db=db,
        blobs=DatabaseBlobs(db) if db.shared else BlobStore(settings.blob_dir),
        fal=fal,
        delivery=delivery,
        settings=settings,
        clock=clock,
    )
    try:
        if start:
            await engine.start()
        yield Kit(engine, delivery, db, settings)
    finally:
        await engine.stop(timeout=5)
        await fal.aclose()
        await db.close()
