"""The gallery's web server (aiohttp): read-only pages and images under ``/s/<guild>/<key>/``.

``<key>`` is a private link's signed token (:mod:`.signing`) or ``public`` for a server whose
admins made its gallery public. Anything else, a forged, expired or other server's token, or
``public`` for a private gallery, gets the same bare 403 with nothing of the server in it.

Pages are built per request from the database; images are content-addressed (the URL names the
original's sha256), so they carry a year-long immutable cache header. There is no access log:
its lines would hold the private tokens. Every answer says how long the server took
(``Server-Timing: app;dur=<ms>``), which the benchmark reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.gallery import pages
from bot.gallery.pages import GridQuery, Urls
from bot.gallery.service import SERVER_NAME_ID, Gallery
from bot.gallery.thumbs import Thumbnails
from bot.gallery.tree import count, family_tree
from bot.store import gallery as gallery_repo
from bot.store.blobs import Blobs
from bot.store.db import Database

log = logging.getLogger(__name__)

PUBLIC_KEY = "public"
YEAR = 365 * 86400
_SECURITY_HEADERS = {
    # Tokens live in the path: never send them to discord.com (or anywhere) as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}
PLACEHOLDER_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="480" height="480" viewBox="0 0 480 480">'
    b'<rect width="480" height="480" fill="#8a8a94"/><text x="240" y="250" font-size="28" '
    b'text-anchor="middle" fill="#fff" font-family="sans-serif">image no longer kept</text></svg>'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Access:
    """Whose eyes a request is for: one server, through a private link or its public gallery."""

    guild_id: int
    key: str
    public: bool


class Forbidden(Exception):
    """The request's link opens nothing."""


def forbidden() -> web.Response:
    return web.Response(
        status=403, text="Forbidden", headers={"Cache-Control": "no-store", **_SECURITY_HEADERS}
    )


class GalleryServer:
    """The running gallery: an aiohttp application on ``host:port``."""

    def __init__(self, db: Database, blobs: Blobs, gallery: Gallery, host: str, port: int) -> None:
        self.db = db
        self.blobs = blobs
        self.gallery = gallery
        self.host = host
        self.port = port
        self.thumbs = Thumbnails(db, blobs, gallery.clock)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._timing])
        app.router.add_get("/s/{guild:\\d{1,20}}/{key}/", self.grid)
        app.router.add_get("/s/{guild:\\d{1,20}}/{key}/job/{job:\\d{1,20}}", self.job)
        app.router.add_get(
            "/s/{guild:\\d{1,20}}/{key}/thumb/{job:\\d{1,20}}/{sha:[0-9a-f]{64}}.webp", self.thumb
        )
        app.router.add_get(
            "/s/{guild:\\d{1,20}}/{key}/image/{job:\\d{1,20}}/{sha:[0-9a-f]{64}}", self.image
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests and the benchmark ask for any free port
            self.port = int(self._runner.addresses[0][1])
        log.info("gallery listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _timing(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Forbidden:
            response = forbidden()
        except web.HTTPException as exc:
            exc.headers.update(_SECURITY_HEADERS)
            raise
        response.headers.update(_SECURITY_HEADERS)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response

    async def _access(self, request: web.Request) -> Access:
        guild_id = int(request.match_info["guild"])
        key = request.match_info["key"]
        if key == PUBLIC_KEY:
            if await gallery_repo.is_public(self.db, guild_id):
                return Access(guild_id, key, public=True)
            raise Forbidden
        signer = self.gallery.signer
        if signer is None or signer.check(guild_id, key, self.gallery.clock()) is None:
            raise Forbidden
        return Access(guild_id, key, public=False)

    def _page_headers(self, access: Access) -> dict[str, str]:
        # A private page is nobody's to keep; a public one may be cached briefly by proxies.
        return {"Cache-Control": "public, max-age=60" if access.public else "private, no-store"}

    def _image_headers(self, access: Access, content_type: str) -> dict[str, str]:
        scope = "public" if access.public else "private"
        return {
            "Content-Type": content_type,
            "Cache-Control": f"{scope}, max-age={YEAR}, immutable",
        }

    async def _server_name(self, guild_id: int) -> str:
        found = await gallery_repo.names(self.db, guild_id, [SERVER_NAME_ID])
        return found.get(SERVER_NAME_ID, "This server")

    async def grid(self, request: web.Request) -> web.Response:
        access = await self._access(request)
        query = _grid_query(request)
        rows = await gallery_repo.grid(
            self.db,
            access.guild_id,
            search=query.search,
            member=query.member,
            most_remixed=query.most_remixed,
            limit=pages.PAGE_SIZE + 1,
            offset=(query.page - 1) * pages.PAGE_SIZE,
        )
        members = await gallery_repo.members(self.db, access.guild_id)
        ids = [SERVER_NAME_ID, *(uid for uid, _ in members), *(r.user_id for r in rows)]
        names = await gallery_repo.names(self.db, access.guild_id, ids)
        html = pages.render_grid(
            Urls(access.guild_id, access.key),
            names.get(SERVER_NAME_ID, "This server"),
            query,
            rows[: pages.PAGE_SIZE],
            members,
            names,
            has_next=len(rows) > pages.PAGE_SIZE,
        )
        return web.Response(
            text=html, content_type="text/html", charset="utf-8", headers=self._page_headers(access)
        )

    async def job(self, request: web.Request) -> web.Response:
        access = await self._access(request)
        job_id = int(request.match_info["job"])
        row = await gallery_repo.shown_job(self.db, access.guild_id, job_id)
        if row is None:
            raise web.HTTPNotFound(text="No such result in this gallery.")
        up = await gallery_repo.ancestors(self.db, access.guild_id, job_id)
        down = await gallery_repo.descendants(self.db, access.guild_id, job_id)
        tree = family_tree(row, up, down)
        ids = [SERVER_NAME_ID, row.user_id, *(r.user_id for r in up), *(r.user_id for r in down)]
        names = await gallery_repo.names(self.db, access.guild_id, ids)
        html = pages.render_job(
            Urls(access.guild_id, access.key),
            names.get(SERVER_NAME_ID, "This server"),
            row,
            tree,
            count(tree),
            names,
        )
        return web.Response(
            text=html, content_type="text/html", charset="utf-8", headers=self._page_headers(access)
        )

    async def _shown_image(self, request: web.Request) -> tuple[Access, str, str | None] | None:
        """(access, sha256, content type) of an image request's result; None: not shown."""
        access = await self._access(request)
        row = await gallery_repo.shown_job(self.db, access.guild_id, int(request.match_info["job"]))
        sha = request.match_info["sha"]
        if row is None or row.output_hash != sha:
            return None
        return access, (sha if not row.purged else ""), row.content_type

    def _placeholder(self) -> web.Response:
        # Short-lived: the URL names an image that may simply not be thumbnailed yet elsewhere.
        return web.Response(
            body=PLACEHOLDER_SVG,
            headers={"Content-Type": "image/svg+xml", "Cache-Control": "no-cache"},
        )

    async def thumb(self, request: web.Request) -> web.Response:
        found = await self._shown_image(request)
        if found is None:
            raise web.HTTPNotFound
        access, sha, _ = found
        data = await self.thumbs.get(sha) if sha else None
        if data is None:
            return self._placeholder()
        return web.Response(body=data, headers=self._image_headers(access, "image/webp"))

    async def image(self, request: web.Request) -> web.Response:
        found = await self._shown_image(request)
        if found is None:
            raise web.HTTPNotFound
        access, sha, content_type = found
        data = await self.blobs.get(sha) if sha else None
        if data is None:
            return self._placeholder()
        return web.Response(
            body=data, headers=self._image_headers(access, content_type or "image/jpeg")
        )


def _grid_query(request: web.Request) -> GridQuery:
    q = request.query
    member = q.get("member", "")
    page = q.get("page", "1")
    return GridQuery(
        search=q.get("q", "").strip()[:200],
        member=int(member) if member.isdigit() and len(member) <= 20 else None,
        most_remixed=q.get("sort") == "remixed",
        page=max(1, min(int(page), 10_000)) if page.isdigit() and len(page) <= 6 else 1,
    )
