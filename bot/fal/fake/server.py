"""The fake fal as a server: its routes, the request log every call passes through, its life."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.fal.fake.control import Control
from bot.fal.fake.platform import LIST_PATH, PlatformRoutes
from bot.fal.fake.routes import FalRoutes
from bot.fal.fake.state import RecordedRequest

log = logging.getLogger(__name__)


class FakeFal(FalRoutes, PlatformRoutes, Control):
    """The fake fal server; use as ``async with FakeFal() as fake:`` and read ``fake.url``."""

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the port and start serving; ``url`` is valid afterwards."""
        self._turn = asyncio.Condition()
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=100 * 2**20)
        base, submit = self.app_base, self.app_id
        app.router.add_post("/storage/auth/token", self._token)
        app.router.add_post("/files/upload", self._upload)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_post(f"/{submit}", self._submit)
        app.router.add_get(f"/{base}/requests/{{id}}/status", self._status)
        app.router.add_get(f"/{base}/requests/{{id}}/status/stream", self._stream)
        app.router.add_get(f"/{base}/requests/{{id}}", self._result)
        app.router.add_put(f"/{base}/requests/{{id}}/cancel", self._cancel)
        app.router.add_get(LIST_PATH, self._list_requests)
        app.router.add_route("*", "/_fake/faults", self._control_faults)
        app.router.add_route("*", "/_fake/requests", self._control_requests)
        app.router.add_get("/_fake/jobs", self._control_jobs)
        app.router.add_post("/_fake/config", self._control_config)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/clock", self._control_clock)
        app.router.add_get("/_fake/billing", self._control_billing)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        self.url = f"http://{shown}:{self.port}"
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("fake fal listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; hanging handlers and running jobs end at once."""
        if self._closing is not None:
            self._closing.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- every call -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        body = await request.read()
        parsed: Any = None
        if body and request.content_type == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        auth = request.headers.get("Authorization")
        scheme, _, value = (auth or "").partition(" ")
        record = RecordedRequest(
            route=self._route_name(request),
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            json=parsed,
            body_size=len(body),
            auth_scheme=scheme or None,
            auth_key=value if scheme == "Key" else None,
        )
        self.requests.append(record)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        dropped = request.transport is None or request.transport.is_closing()
        record.status = None if dropped else response.status  # None: no answer was sent
        return response

    def _route_name(self, request: web.Request) -> str:
        info = request.match_info.route
        handler = getattr(info, "handler", None)
        names = {
            self._token: "token",
            self._upload: "upload",
            self._file: "files",
            self._submit: "submit",
            self._status: "status",
            self._stream: "stream",
            self._result: "result",
            self._cancel: "cancel",
            self._list_requests: "requests",
        }
        for method, name in names.items():
            if handler == method:
                return name
        return "unknown"


async def serve(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Run a ``FakeFal`` until cancelled, printing its URL (for ``flexbot fake-fal``)."""
    async with FakeFal(host=host, port=port, **options) as fake:
        print(f"fake fal listening on {fake.url}", flush=True)
        await asyncio.Event().wait()
