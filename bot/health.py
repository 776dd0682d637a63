"""``/healthz`` and ``/metrics`` on a local port, for Docker's HEALTHCHECK and Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics, Snapshot

log = logging.getLogger(__name__)

#: A check returns None when healthy, else the reason it is not.
Check = Callable[[], Awaitable[str | None]]


class HealthServer:
    """A small aiohttp server; 200 only when every check passes, else 503 with the reasons."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        checks: Mapping[str, Check],
        metrics: Metrics,
        snapshot: Callable[[], Awaitable[Snapshot]],
    ) -> None:
        self.host = host
        self.port = port
        self.checks = checks
        self.metrics = metrics
        self.snapshot = snapshot
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an OS-chosen port: read it back
            self.port = int(self._runner.addresses[0][1])
        log.info("health and metrics on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                reason = await asyncio.wait_for(check(), timeout=3)
            except Exception as exc:  # a failing check is a health answer, not a crash
                reason = f"check failed: {type(exc).__name__}"
            results[name] = reason or "ok"
        healthy = all(value == "ok" for value in results.values())
        return web.json_response(
            {"status": "ok" if healthy else "unhealthy", "checks": results},
            status=200 if healthy else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.update(await self.snapshot())
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


async def watch_loop_lag(metrics: Metrics, interval: float = 0.5) -> None:
    """Record how late the event loop wakes a sleeping task (a blocked loop shows here)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            metrics.loop_lag.set(max(0.0, loop.time() - started - interval))
