"""What the Discord side asks of the gallery: links, the public switch, opt-outs, deletions.

Every change an admin or member makes is written with an ``audit`` row in the same transaction,
as the admin core does. Names are remembered as Discord shows them (the core knows only ids) and
written only when they change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

from bot.errors import UserError
from bot.gallery.signing import LinkSigner
from bot.settings import Settings
from bot.store import audit as audit_repo
from bot.store import gallery as gallery_repo
from bot.store import prefs as prefs_repo
from bot.store.db import Database

log = logging.getLogger(__name__)

DAY = 86400.0
#: ``gallery_names.user_id`` of a server's own name.
SERVER_NAME_ID = 0


@dataclass(frozen=True, slots=True)
class GalleryLink:
    """A link to one server's gallery: ``expires`` None for a public gallery's link."""

    url: str
    expires: int | None


class Gallery:
    """The gallery's facts and switches, for the front ends."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float]) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        secret = settings.gallery_secret
        self.signer = LinkSigner(secret) if secret else None
        self._names: dict[tuple[int, int], str] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.gallery_port != 0

    @property
    def base_url(self) -> str:
        s = self.settings
        return (s.public_url or f"http://{s.gallery_host}:{s.gallery_port}").rstrip("/")

    async def link_for(self, guild_id: int | None, user_id: int) -> GalleryLink:
        """The link a member gets from /gallery: the public one, or a private signed one."""
        if not self.enabled:
            raise UserError("The web gallery is not switched on for this bot.")
        if guild_id is None:
            raise UserError("Galleries belong to servers: use /gallery in a server.")
        if await gallery_repo.is_public(self.db, guild_id):
            return GalleryLink(f"{self.base_url}/s/{guild_id}/public/", None)
        assert self.signer is not None  # open_core refuses a gallery port without the secret
        expires = math.ceil(self.clock() + self.settings.gallery_link_days * DAY)
        token = self.signer.token(guild_id, user_id, expires)
        return GalleryLink(f"{self.base_url}/s/{guild_id}/{token}/", expires)

    async def set_public(self, guild_id: int, actor_id: int, public: bool) -> str:
        async with self.db.transaction() as tx:
            await gallery_repo.set_public(tx, guild_id, public, actor_id, self.clock())
            await audit_repo.record(tx, guild_id, actor_id, "gallery_public", {"public": public})
        if public:
            return (
                "This server's gallery is now public: anyone with its address can see it "
                f"({self.base_url}/s/{guild_id}/public/)."
            )
        return "This server's gallery is private again: members open it with their /gallery link."

    async def set_opt_out(self, user_id: int, opt_out: bool) -> str:
        async with self.db.transaction() as tx:
            await prefs_repo.set_gallery_opt_out(tx, user_id, opt_out)
            await audit_repo.record(tx, None, user_id, "gallery_opt_out", {"opt_out": opt_out})
        if opt_out:
            return "Your results no longer appear in any server's web gallery."
        return "Your results appear in the web gallery of the server they were made in again."

    async def forget_result(self, job_id: int, removed_by: int | None) -> None:
        """The result was deleted in Discord: it never appears in the gallery again."""
        async with self.db.transaction() as tx:
            await gallery_repo.remove_result(tx, job_id, removed_by, self.clock())
        log.info("job %d removed from the gallery", job_id)

    async def forget_messages(self, guild_id: int, message_ids: Collection[int]) -> list[int]:
        """Messages of this server were deleted in Discord (by anyone: a moderator, a purge, the
        member): the results among them never appear again. Returns their job ids.

        Most deleted messages were never a result, so only a match takes the write lock.
        """
        jobs = await gallery_repo.results_posted_as(self.db, guild_id, list(message_ids))
        if not jobs:
            return []
        async with self.db.transaction() as tx:
            now = self.clock()
            for job_id in jobs:
                # Discord does not say who deleted a message: removed_by stays unknown.
                await gallery_repo.remove_result(tx, job_id, None, now)
        for job_id in jobs:
            log.info("job %d removed from the gallery: its result was deleted in Discord", job_id)
        return jobs

    async def note_name(self, guild_id: int, user_id: int, name: str) -> None:
        """Remember how Discord names a member (or, with user 0, the server)."""
        key = (guild_id, user_id)
        if self._names.get(key) == name:
            return
        async with self.db.transaction(serial=False) as tx:
            await gallery_repo.set_name(tx, guild_id, user_id, name[:100], self.clock())
        self._names[key] = name
