"""The composition root: settings in, a running core out. No Discord here.

``open_core(settings)`` builds everything once, inside ``async with`` blocks, and closes it in
reverse order: the database, the blob store, the fal client (the real fal, or the bundled fake for
a dry run), the image pool, the engine, the admin policy and the periodic reconciliation with
fal's request list (:class:`~bot.reconcile.PeriodicCheck`; off for one-shot commands) and the web
gallery (:mod:`bot.gallery`, when ``gallery_port`` is set). Front ends
(the Discord bot, the ``flexbot edit`` terminal) take the :class:`Core` and start the engine with
their own :class:`~bot.engine.delivery.Delivery`; nothing else builds a core part a second time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from bot.admin import Admin
from bot.engine.engine import Engine
from bot.errors import ConfigError
from bot.fal.client import FalClient
from bot.gallery.server import GalleryServer
from bot.gallery.service import Gallery
from bot.images import ImageLimits, ImageProcessor
from bot.params import ParamLimits
from bot.reconcile import PeriodicCheck
from bot.secret import Secret
from bot.settings import Settings
from bot.store.blobs import Blobs, BlobStore, DatabaseBlobs
from bot.store.connect import open_database
from bot.store.db import Database

log = logging.getLogger(__name__)

DRY_RUN_WARNING = (
    "FAL_KEY is not set: DRY RUN on the bundled fake fal. Edits produce placeholder images and "
    "NOTHING IS BILLED. Set FAL_KEY to edit with the real FLUX.2 [flex]."
)


class FalBackend(StrEnum):
    """Which fal the core talks to."""

    REAL = "real"  # fal.ai with FAL_KEY
    FAKE = "fake"  # the bundled fake, started in this process: nothing is billed
    AUTO = "auto"  # real when FAL_KEY is set, else a loud dry run on the fake


@dataclass(frozen=True)
class Core:
    """Everything the front ends use, built once by :func:`open_core`."""

    settings: Settings
    db: Database
    fal: FalClient
    images: ImageProcessor
    engine: Engine
    admin: Admin
    param_limits: ParamLimits
    dry_run: bool
    reconciler: PeriodicCheck
    gallery: Gallery


@contextlib.asynccontextmanager
async def open_fal(
    settings: Settings, backend: FalBackend, *, fake_processing_time: float = 2.0
) -> AsyncIterator[tuple[FalClient, bool]]:
    """The fal client for ``backend``, and whether it is a dry run (the bundled fake)."""
    if backend == FalBackend.AUTO:
        backend = FalBackend.REAL if settings.fal_key else FalBackend.FAKE
        if backend == FalBackend.FAKE:
            log.warning(DRY_RUN_WARNING)
    if backend == FalBackend.REAL:
        async with FalClient.from_settings(settings, settings.fal_key) as client:
            yield client, False
        return
    from bot.fal.fake import FakeFal  # a dry run only: the real bot never loads the fake

    async with (
        FakeFal(processing_time=fake_processing_time) as server,
        FalClient.from_settings(settings, Secret("dry-run"), fake_url=server.url) as client,
    ):
        yield client, True


@contextlib.asynccontextmanager
async def open_core(
    settings: Settings,
    *,
    fal: FalBackend = FalBackend.AUTO,
    fake_processing_time: float = 2.0,
    reconcile: bool = True,
    serve_gallery: bool = True,
) -> AsyncIterator[Core]:
    """Build the core for ``settings``; everything is closed when the block ends.

    ``reconcile``: run the periodic check against fal's request list (the bot does; a one-shot
    command such as ``flexbot edit`` has no use for it). ``serve_gallery``: serve the web gallery
    when ``gallery_port`` is set (the bot does; one-shot commands do not)."""
    if serve_gallery and settings.gallery_port and not settings.gallery_secret:
        raise ConfigError(
            "gallery_port",
            settings.sources.get("gallery_port", "default"),
            settings.gallery_port,
            "0 (off) unless GALLERY_SECRET (environment or secrets_file) signs the gallery links",
        )
    async with contextlib.AsyncExitStack() as stack:
        db = await open_database(settings)
        stack.push_async_callback(db.close)
        log.info("database ready at %s (schema %d)", db.describe(), await db.schema_version())
        client, dry_run = await stack.enter_async_context(
            open_fal(settings, fal, fake_processing_time=fake_processing_time)
        )
        images = stack.enter_context(
            ImageProcessor(ImageLimits.from_settings(settings), settings.image_workers)
        )
        # Processes sharing a database share no disk: their images live in it too.
        blobs: Blobs = DatabaseBlobs(db) if db.shared else BlobStore(settings.blob_dir)
        engine = Engine(db=db, blobs=blobs, fal=client, settings=settings)
        stack.push_async_callback(engine.stop)
        reconciler = PeriodicCheck(db, client, settings, engine.metrics, engine.clock)
        if reconcile:
            reconciler.start()
            stack.push_async_callback(reconciler.stop)  # before the engine and fal client close
        gallery = Gallery(db, settings, engine.clock)
        if serve_gallery and settings.gallery_port:
            server = GalleryServer(db, blobs, gallery, settings.gallery_host, settings.gallery_port)
            await server.start()
            stack.push_async_callback(server.stop)
        yield Core(
            settings=settings,
            db=db,
            fal=client,
            images=images,
            engine=engine,
            admin=Admin(db, settings, clock=engine.clock),
            param_limits=ParamLimits.from_settings(settings),
            dry_run=dry_run,
            reconciler=reconciler,
            gallery=gallery,
        )
