"""What the fake holds, and the helpers every one of its handlers shares.

``FakeState`` is the base of ``FakeFal``: the queue, fal's routes, the test controls and the
server each add one concern on top of it (``queue.py``, ``routes.py``, ``control.py``,
``server.py``), all working on the one set of attributes set up here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.fal.fake.billing import PRICE_PER_MEGAPIXEL_MICROS, BillingEntry, bill
from bot.fal.fake.faults import Fault, Faults, drop, fault_response
from bot.fal.fake.images import EXTENSIONS
from bot.fal.fake.job import FakeJob

APP_ID = "fal-ai/flux-2-flex/edit"
#: fal keeps a result 1 hour, or 6 minutes when it is "10 KB or larger" (fal.ai/docs queue
#: result); whether fal's KB is 1000 or 1024 bytes is not said, 10 240 is our pick.
RESULT_TTL_SMALL = 3600.0
RESULT_TTL_LARGE = 360.0
RESULT_LARGE_BYTES = 10 * 1024
#: fal's status stream sends a keep-alive comment every 15 s (fal.ai/docs status-stream).
STREAM_KEEPALIVE = 15.0


@dataclass
class RecordedRequest:
    """One request the fake received; the Authorization value is kept apart from the headers."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body_size: int
    auth_scheme: str | None
    auth_key: str | None
    status: int | None = None
    at: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FakeState:
    """The fake's settings, records and queue state (see ``FakeFal`` for how to use it)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        queue_delay: float = 0.0,
        processing_time: float = 0.0,
        concurrency: int = 2,
        key: str | None = None,
        validate_on_submit: bool = False,
        accept_data_uris: bool = True,
        token_ttl: float = 3600.0,
        app_id: str = APP_ID,
        result_ttl_small: float = RESULT_TTL_SMALL,
        result_ttl_large: float = RESULT_TTL_LARGE,
        stream_keepalive: float = STREAM_KEEPALIVE,
        list_unfinished: bool = True,
        price_per_megapixel_micros: int = PRICE_PER_MEGAPIXEL_MICROS,
    ) -> None:
        """``latency``: added to every answer; ``queue_delay``: least time a request stays
        ``IN_QUEUE``; ``processing_time``: seconds ``IN_PROGRESS`` (log lines spread over it);
        ``concurrency``: requests in progress at once, the rest queue; ``key``: the only key
        accepted (None: any ``Key ...``). ``result_ttl_small``/``result_ttl_large``: seconds a
        result under/at or over ``RESULT_LARGE_BYTES`` stays fetchable after it completed, on the
        fake's clock (``now``, moved by ``advance``); ``stream_keepalive``: seconds between the
        status stream's keep-alive comments; ``list_unfinished``: whether the request list shows
        requests not finished yet (fal's docs do not say); ``price_per_megapixel_micros``: the
        billing log's price."""
        self.host = host
        self.port = port
        self.faults = Faults(latency=latency)
        self.queue_delay = queue_delay
        self.processing_time = processing_time
        self.concurrency = concurrency
        self.key = key
        self.validate_on_submit = validate_on_submit
        self.accept_data_uris = accept_data_uris
        self.token_ttl = token_ttl
        self.result_ttl_small = result_ttl_small
        self.result_ttl_large = result_ttl_large
        self.stream_keepalive = stream_keepalive
        self.list_unfinished = list_unfinished
        self.price_per_megapixel_micros = price_per_megapixel_micros
        self.billing: list[BillingEntry] = []
        self._clock_offset = 0.0
        parts = app_id.strip("/").split("/")
        self.app_base = "/".join(parts[:2])
        self.app_id = app_id.strip("/")
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.cancels = 0
        self._tokens: dict[str, float] = {}
        self._waiting: deque[FakeJob] = deque()
        self._running = 0
        self._turn: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def now(self) -> float:
        """The fake's wall clock (Unix seconds): real time plus whatever ``advance`` added."""
        return time.time() + self._clock_offset

    def _bill(self, job: FakeJob, output_size: tuple[int, int]) -> None:
        self.billing.append(
            bill(
                job.request_id,
                job.input_sizes,
                output_size,
                price_per_megapixel_micros=self.price_per_megapixel_micros,
                at=self.now(),
            )
        )

    def _expired(self, job: FakeJob) -> bool:
        """Whether fal would have dropped this job's result by now (fal keeps a result 1 hour,
        6 minutes when it is 10 KB or more: fal.ai/docs queue result)."""
        if job.ended_wall is None:
            return False
        large = job.result_bytes >= RESULT_LARGE_BYTES
        ttl = self.result_ttl_large if large else self.result_ttl_small
        return self.now() >= job.ended_wall + ttl

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        assert self._turn is not None
        async with self._turn:
            self._turn.notify_all()

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    async def _apply_fault(self, route: str, request: web.Request) -> web.Response | Fault | None:
        """The answer of the next fault for ``route``, if any (see ``_answer_fault``)."""
        fault = self.faults.take(route)
        if fault is None:
            return None
        return await self._answer_fault(fault, request)

    async def _answer_fault(self, fault: Fault, request: web.Request) -> web.Response | Fault:
        """An HTTP fault's response; a ``trickle`` fault, or a submit fault with ``after`` (the
        job is created first), is returned for the caller to apply."""
        kind, opts = fault.kind, fault.options
        if kind == "trickle" or opts.get("after"):
            return fault
        if kind == "drop":
            return drop(request)
        if kind == "timeout":
            await self._hang(float(opts.get("seconds", 3600)))
            return self._json(504, {"detail": "hung up"})
        return fault_response(kind, opts)

    async def _fault(self, route: str, request: web.Request) -> web.Response | None:
        answer = await self._apply_fault(route, request)
        return answer if isinstance(answer, web.Response) else None

    async def _hang(self, seconds: float) -> None:
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    def _check_key(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme != "Key" or not value:
            return self._json(401, {"detail": "Missing or malformed Authorization header"})
        if self.key is not None and value != self.key:
            return self._json(401, {"detail": "Invalid API key"})
        return None

    def _job(self, request: web.Request) -> FakeJob | None:
        return self.jobs.get(request.match_info["id"])

    def _urls(self, request_id: str) -> dict[str, str]:
        base = f"{self.url}/{self.app_base}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _store(self, data: bytes, content_type: str) -> str:
        ext = EXTENSIONS.get(content_type, "bin")
        name = f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
        self.files[name] = (data, content_type)
        return name

    def _fetch_input(self, url: str) -> bytes | None:
        """An input's bytes, only from this server or a data URI: never the network."""
        if url.startswith("data:"):
            if not self.accept_data_uris:
                return None
            header, _, payload = url.partition(",")
            if not header.endswith(";base64"):
                return None
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return None
        parts = urlsplit(url)
        ours = {urlsplit(self.url).netloc, f"localhost:{self.port}", f"{self.host}:{self.port}"}
        if parts.scheme != "http" or parts.netloc not in ours:
            return None
        if not parts.path.startswith("/files/"):
            return None
        stored = self.files.get(parts.path.removeprefix("/files/"))
        return stored[0] if stored else None
