"""A fake fal.ai: a real HTTP server with the queue, storage and CDN contract of the real one.

One server answers everything ``FalClient`` talks to (point both ``queue_url`` and ``rest_url``
at ``FakeFal.url``):

    POST /storage/auth/token?storage_type=fal-cdn-v3   Key auth -> {token, token_type, base_url,
                                                        expires_at}
    POST /files/upload                                  Bearer token, raw bytes -> {access_url}
    GET  /files/{name}                                  uploads and outputs, no auth
    POST /fal-ai/flux-2-flex/edit                       Key auth -> submit response
    GET  /fal-ai/flux-2-flex/requests/{id}/status       ?logs=1; 202 while queued/running, 200 done
    GET  /fal-ai/flux-2-flex/requests/{id}/status/stream   the same as server-sent events
    GET  /fal-ai/flux-2-flex/requests/{id}              the output, or the request's error
    PUT  /fal-ai/flux-2-flex/requests/{id}/cancel       202 CANCELLATION_REQUESTED, 400
                                                        ALREADY_COMPLETED, 404 NOT_FOUND

Status, result and cancel live under ``owner/alias`` without the ``/edit`` sub-path, as on the
real queue; ``/fal-ai/flux-2-flex/edit/requests/...`` is a 404, so a client that builds the
URLs wrong fails against the fake too.

Choices where fal's behaviour is not documented (see shared/reference/fal-queue-api.md):

- Invalid input is reported the way fal's queue does it: the submit succeeds, the request ends
  ``COMPLETED`` with no ``error`` in its status, and ``GET`` on the result answers 422 with a
  ``detail`` list. ``validate_on_submit=True`` makes the submit itself answer 422 instead.
- At most ``MAX_IMAGES`` (8) input images; custom sizes from 1 to 14142 pixels per side.
- Inputs must be URLs this server handed out (``/files/...``) or, unless
  ``accept_data_uris=False``, base64 ``data:`` URIs. Anything else is a ``file_download_error``:
  the fake never touches the network.
- A cancelled request ends ``COMPLETED`` with ``error_type`` ``client_cancelled``; its result is
  499 ``{"detail": ..., "error_type": "client_cancelled"}``.
- A prompt containing ``BLOCKED_WORD`` fails the content checker (with the safety checker on),
  so end-to-end tests can trigger it without the control API.

Test control, in process (``fake.inject(...)``) or over HTTP for a fake in another process:

    POST   /_fake/faults     {"route": "status", "fault": "503", "times": 2, ...options}
    GET    /_fake/faults     the faults still pending
    DELETE /_fake/faults     drop them all
    GET    /_fake/requests   the request log (``RecordedRequest.to_dict``)
    DELETE /_fake/requests   clear the log
    GET    /_fake/jobs       every request id with its state, seed and counters
    POST   /_fake/config     {"latency", "queue_delay", "processing_time", "concurrency",
                              "validate_on_submit"}: change them while running
    POST   /_fake/reset      faults, log, jobs and stored files all cleared

Fault routes: ``submit``, ``status``, ``stream``, ``result``, ``cancel``, ``token``, ``upload``,
``files`` or ``*`` (any). HTTP faults answer the next matching call(s) instead of the handler:
``"401"``, ``"403"``, ``"422"``, ``"429"`` (option ``retry_after``), ``"500"``, ``"502"``,
``"503"``, ``"504"`` (option ``error_type`` makes it look like the request's own outcome rather
than the gateway's), ``"timeout"`` (hang for ``seconds``, default an hour; on ``submit`` with
``after=True`` the job is created first, i.e. the response is lost), ``"redirect"`` (answer
``status``, default 302, with ``Location: <location>``: e.g. a redirect to a private address)
and, on ``files`` only, ``"trickle"`` (a 200 that sends one byte every ``interval`` seconds,
default 0.05, for ``seconds``, default an hour: a download that never finishes but never goes
quiet long enough for a read timeout). Outcome faults apply to the
next submitted job(s), whatever route is named: ``"content_policy"``, ``"validation"`` (options
``loc``, ``msg``, ``type``, ``ctx``) and ``"completed_with_error"`` (options ``error_type``,
default ``request_timeout``, and ``detail``): the status reports ``COMPLETED`` with ``error``
and the result answers the matching HTTP error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import math
import random
import secrets
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web
from PIL import Image, ImageDraw, PngImagePlugin, UnidentifiedImageError

from bot.fal.errors import ERROR_TYPE_STATUS
from bot.model import MAX_IMAGES, PRESET_SIZES

log = logging.getLogger(__name__)

APP_ID = "fal-ai/flux-2-flex/edit"
MAX_SIDE = 14142
AUTO_MAX_PIXELS = 4 * 1024 * 1024
BLOCKED_WORD = "FAKE_NSFW"
ERRORS_URL = "https://docs.fal.ai/errors"

ROUTES = frozenset(
    {"submit", "status", "stream", "result", "cancel", "token", "upload", "files", "*"}
)
HTTP_FAULTS = frozenset(
    {"401", "403", "422", "429", "500", "502", "503", "504", "timeout", "redirect", "trickle"}
)
JOB_FAULTS = frozenset({"content_policy", "validation", "completed_with_error"})
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
_CONFIG_FIELDS = ("latency", "queue_delay", "processing_time", "concurrency", "validate_on_submit")


@dataclass
class Fault:
    """One queued misbehaviour: ``kind`` for the next ``times`` matching calls (-1: forever)."""

    route: str
    kind: str
    times: int = 1
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Faults:
    """Latency for every call plus per-route queues of faults, consumed first in, first out."""

    latency: float = 0.0
    pending: list[Fault] = field(default_factory=list)

    def add(self, route: str, kind: str, times: int = 1, **options: Any) -> None:
        if kind in JOB_FAULTS:
            route = "job"
        elif kind not in HTTP_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(HTTP_FAULTS | JOB_FAULTS)}")
        elif route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: {sorted(ROUTES)}")
        elif kind == "trickle" and route != "files":
            raise ValueError("the trickle fault only applies to the files route")
        if kind == "redirect" and not isinstance(options.get("location"), str):
            raise ValueError("the redirect fault needs a location")
        if times == 0 or times < -1:
            raise ValueError("times must be positive, or -1 for forever")
        self.pending.append(Fault(route, kind, times, dict(options)))

    def take(self, route: str) -> Fault | None:
        """The next fault for ``route`` (or ``*``), counted as used."""
        for fault in self.pending:
            if fault.route == route or (fault.route == "*" and route != "job"):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()


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


@dataclass
class FakeJob:
    """One queued request and everything the fake knows about it."""

    request_id: str
    arguments: dict[str, Any]
    fault: Fault | None = None
    state: str = "IN_QUEUE"
    logs: list[dict[str, str]] = field(default_factory=list)
    cancel_requested: bool = False
    seed: int | None = None
    error: str | None = None
    error_type: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    output_urls: list[str] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "state": self.state,
            "seed": self.seed,
            "error_type": self.error_type,
            "result_status": self.result_status,
            "cancel_requested": self.cancel_requested,
            "output_urls": self.output_urls,
        }


def _field_error(
    loc: list[str | int], msg: str, type_: str, value: object = None, **ctx: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "loc": ["body", *loc],
        "msg": msg,
        "type": type_,
        "url": f"{ERRORS_URL}#{type_}",
    }
    if ctx:
        error["ctx"] = ctx
    if value is not None:
        error["input"] = value
    return error


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_arguments(args: object) -> list[dict[str, Any]]:
    """The 422 ``detail`` entries the endpoint would return for ``args`` (empty: valid)."""
    if not isinstance(args, dict):
        return [_field_error([], "value is not a valid dict", "type_error.dict")]
    errors: list[dict[str, Any]] = []

    def missing(name: str) -> None:
        errors.append(_field_error([name], "field required", "value_error.missing"))

    prompt = args.get("prompt")
    if "prompt" not in args:
        missing("prompt")
    elif not isinstance(prompt, str):
        errors.append(_field_error(["prompt"], "str type expected", "type_error.str", prompt))

    urls = args.get("image_urls")
    if "image_urls" not in args:
        missing("image_urls")
    elif not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        errors.append(_field_error(["image_urls"], "value is not a valid list", "type_error.list"))
    elif not urls:
        errors.append(
            _field_error(
                ["image_urls"],
                "ensure this value has at least 1 items",
                "value_error.list.min_items",
                limit_value=1,
            )
        )
    elif len(urls) > MAX_IMAGES:
        errors.append(
            _field_error(
                ["image_urls"],
                f"ensure this value has at most {MAX_IMAGES} items",
                "value_error.list.max_items",
                limit_value=MAX_IMAGES,
            )
        )

    def number_range(name: str, low: float, high: float, *, integer: bool) -> None:
        if name not in args:
            return
        value = args[name]
        ok_type = _is_int(value) if integer else _is_number(value)
        if not ok_type:
            kind = "integer" if integer else "float"
            errors.append(
                _field_error([name], f"value is not a valid {kind}", f"type_error.{kind}", value)
            )
        elif value < low:
            errors.append(
                _field_error(
                    [name],
                    f"ensure this value is greater than or equal to {low}",
                    "value_error.number.not_ge",
                    value,
                    limit_value=low,
                )
            )
        elif value > high:
            errors.append(
                _field_error(
                    [name],
                    f"ensure this value is less than or equal to {high}",
                    "value_error.number.not_le",
                    value,
                    limit_value=high,
                )
            )

    number_range("guidance_scale", 1.5, 10, integer=False)
    number_range("num_inference_steps", 2, 50, integer=True)

    def enum(name: str, allowed: list[str]) -> None:
        if name in args and args[name] not in allowed:
            errors.append(
                _field_error(
                    [name],
                    "value is not a valid enumeration member; permitted: "
                    + ", ".join(repr(a) for a in allowed),
                    "type_error.enum",
                    args[name],
                    enum_values=allowed,
                )
            )

    enum("safety_tolerance", ["1", "2", "3", "4", "5"])
    enum("output_format", ["jpeg", "png"])

    for name in ("enable_safety_checker", "sync_mode"):
        if name in args and not isinstance(args[name], bool):
            errors.append(
                _field_error([name], "value could not be parsed to a boolean", "type_error.bool")
            )
    if "seed" in args and args["seed"] is not None and not _is_int(args["seed"]):
        errors.append(_field_error(["seed"], "value is not a valid integer", "type_error.integer"))

    size = args.get("image_size", "auto")
    if isinstance(size, str):
        if size != "auto" and size not in PRESET_SIZES:
            allowed = ["auto", *PRESET_SIZES]
            errors.append(
                _field_error(
                    ["image_size"],
                    "value is not a valid enumeration member; permitted: "
                    + ", ".join(repr(a) for a in allowed),
                    "type_error.enum",
                    size,
                    enum_values=allowed,
                )
            )
    elif isinstance(size, dict):
        for side in ("width", "height"):
            value = size.get(side)
            if side not in size:
                errors.append(
                    _field_error(["image_size", side], "field required", "value_error.missing")
                )
            elif not isinstance(value, int) or isinstance(value, bool):
                errors.append(
                    _field_error(
                        ["image_size", side], "value is not a valid integer", "type_error.integer"
                    )
                )
            elif value <= 0:
                errors.append(
                    _field_error(
                        ["image_size", side],
                        "ensure this value is greater than 0",
                        "value_error.number.not_gt",
                        value,
                        limit_value=0,
                    )
                )
            elif value > MAX_SIDE:
                errors.append(
                    _field_error(
                        ["image_size", side],
                        f"ensure this value is less than or equal to {MAX_SIDE}",
                        "value_error.number.not_le",
                        value,
                        limit_value=MAX_SIDE,
                    )
                )
    else:
        errors.append(_field_error(["image_size"], "value is not a valid size", "type_error", size))
    return errors


def output_size(size: object, first_input: tuple[int, int]) -> tuple[int, int]:
    """The pixels a valid ``image_size`` gives: preset, custom, or ``auto`` (input, <= 4 MP)."""
    if isinstance(size, dict):
        return int(size["width"]), int(size["height"])
    if isinstance(size, str) and size in PRESET_SIZES:
        return PRESET_SIZES[size]
    width, height = first_input
    if width * height > AUTO_MAX_PIXELS:
        scale = math.sqrt(AUTO_MAX_PIXELS / (width * height))
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return width, height


def render(
    inputs: list[bytes],
    *,
    prompt: str,
    seed: int,
    size: tuple[int, int],
    output_format: str,
) -> bytes:
    """A deterministic "edit": the first input resized, tinted and overlaid with shapes.

    Colours and positions come from sha256(prompt, seed, input hashes); the other inputs appear
    as thumbnails along the bottom. The file carries the same facts as JSON metadata (a PNG text
    chunk ``fake-fal`` or the JPEG comment) so tests can read back what was used.
    """
    width, height = size
    input_hashes = [hashlib.sha256(data).hexdigest() for data in inputs]
    facts = {
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
        "seed": seed,
        "inputs": input_hashes,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).digest()
    with Image.open(io.BytesIO(inputs[0])) as first:
        canvas = first.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    tint = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    canvas = Image.blend(canvas, tint, 0.35)
    draw = ImageDraw.Draw(canvas)
    for i in range(4):
        b = digest[3 + i * 7 : 10 + i * 7]
        x0, y0 = b[0] * width // 256, b[1] * height // 256
        x1 = min(width, x0 + max(1, (b[2] + 32) * width // 512))
        y1 = min(height, y0 + max(1, (b[3] + 32) * height // 512))
        colour = (b[4], b[5], b[6])
        if i % 2:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    thumb_w, thumb_h = max(1, width // 8), max(1, height // 8)
    for index, data in enumerate(inputs[1:]):
        with Image.open(io.BytesIO(data)) as other:
            thumb = other.convert("RGB").resize((thumb_w, thumb_h), Image.Resampling.BILINEAR)
        canvas.paste(thumb, (index * thumb_w, height - thumb_h))
    meta = json.dumps(facts, sort_keys=True)
    out = io.BytesIO()
    if output_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("fake-fal", meta)
        canvas.save(out, format="PNG", pnginfo=info)
    else:
        canvas.save(out, format="JPEG", quality=90, comment=meta.encode())
    return out.getvalue()


class FakeFal:
    """The fake fal server; use as ``async with FakeFal() as fake:`` and read ``fake.url``."""

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
    ) -> None:
        """``latency``: added to every answer; ``queue_delay``: least time a request stays
        ``IN_QUEUE``; ``processing_time``: seconds ``IN_PROGRESS`` (log lines spread over it);
        ``concurrency``: requests in progress at once, the rest queue; ``key``: the only key
        accepted (None: any ``Key ...``)."""
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
        app.router.add_route("*", "/_fake/faults", self._control_faults)
        app.router.add_route("*", "/_fake/requests", self._control_requests)
        app.router.add_get("/_fake/jobs", self._control_jobs)
        app.router.add_post("/_fake/config", self._control_config)
        app.router.add_post("/_fake/reset", self._control_reset)
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

    # -- test helpers ---------------------------------------------------------------------------

    def inject(self, route: str, fault: str, times: int = 1, **options: Any) -> None:
        """Queue a fault; see the module docstring for routes, kinds and options."""
        self.faults.add(route, fault, times, **options)

    @property
    def submits(self) -> int:
        """How many jobs were created (accepted submits)."""
        return len(self.jobs)

    def calls(self, route: str) -> list[RecordedRequest]:
        """The recorded requests for one route name (``submit``, ``status``, ...)."""
        return [r for r in self.requests if r.route == route]

    def configure(self, **settings: Any) -> None:
        """Change latency, queue_delay, processing_time, concurrency or validate_on_submit."""
        for name, value in settings.items():
            if name not in _CONFIG_FIELDS:
                raise ValueError(f"unknown setting {name!r}; known: {list(_CONFIG_FIELDS)}")
            if name == "latency":
                self.faults.latency = float(value)
            elif name == "validate_on_submit":
                self.validate_on_submit = bool(value)
            elif name == "concurrency":
                self.concurrency = int(value)
            else:
                setattr(self, name, float(value))
        if "concurrency" in settings and self._turn is not None:
            self._spawn(self._notify())

    def reset(self) -> None:
        """Forget faults, the request log, finished jobs and stored files."""
        self.faults.clear()
        self.requests.clear()
        self.files.clear()
        self.cancels = 0
        for request_id, job in list(self.jobs.items()):
            if job.state == "COMPLETED":
                del self.jobs[request_id]

    # -- plumbing -------------------------------------------------------------------------------

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
        record.status = response.status
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
        }
        for method, name in names.items():
            if handler == method:
                return name
        return "unknown"

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

    async def _apply_fault(self, route: str) -> web.Response | Fault | None:
        """An HTTP fault's response; a ``timeout`` fault is returned for the caller to apply."""
        fault = self.faults.take(route)
        if fault is None:
            return None
        kind, opts = fault.kind, fault.options
        if kind == "trickle":
            return fault
        if kind == "redirect":
            return web.Response(
                status=int(opts.get("status", 302)), headers={"Location": str(opts["location"])}
            )
        if kind == "timeout":
            if route == "submit" and opts.get("after"):
                return fault
            await self._hang(float(opts.get("seconds", 3600)))
            return self._json(504, {"detail": "hung up"})
        if kind == "429":
            return self._json(
                429,
                {"detail": "Too many requests"},
                {"Retry-After": str(opts.get("retry_after", 0))},
            )
        if kind == "422":
            detail = [
                _field_error(
                    list(opts.get("loc", ["prompt"])),
                    str(opts.get("msg", "invalid input")),
                    str(opts.get("type", "value_error")),
                )
            ]
            return self._json(422, {"detail": detail})
        status = int(kind)
        body: dict[str, Any] = {}
        body["detail"] = (
            opts.get("detail")
            or {
                401: "Invalid API key",
                403: "Forbidden",
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }[status]
        )
        headers: dict[str, str] = {}
        if opts.get("error_type"):
            body["error_type"] = opts["error_type"]
            headers["X-Fal-Error-Type"] = str(opts["error_type"])
        return self._json(status, body, headers)

    async def _fault(self, route: str) -> web.Response | None:
        answer = await self._apply_fault(route)
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

    # -- storage and files ----------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("token")) is not None:
            return answer
        if (denied := self._check_key(request)) is not None:
            return denied
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.token_ttl
        expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl)
        return self._json(
            200,
            {
                "token": token,
                "token_type": "Bearer",
                "base_url": self.url,
                "expires_at": _iso(expires),
            },
        )

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("upload")) is not None:
            return answer
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self._tokens.get(token, 0.0) < time.monotonic():
            return self._json(401, {"detail": "Invalid or expired upload token"})
        data = await request.read()
        if not data:
            return self._json(400, {"detail": "Empty upload"})
        name = self._store(data, request.content_type)
        return self._json(200, {"access_url": f"{self.url}/files/{name}"})

    def _store(self, data: bytes, content_type: str) -> str:
        ext = _EXTENSIONS.get(content_type, "bin")
        name = f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
        self.files[name] = (data, content_type)
        return name

    async def _file(self, request: web.Request) -> web.StreamResponse:
        answer = await self._apply_fault("files")
        if isinstance(answer, Fault):
            return await self._trickle(request, answer)
        if answer is not None:
            return answer
        stored = self.files.get(request.match_info["name"])
        if stored is None:
            return self._json(404, {"detail": "File not found"})
        data, content_type = stored
        return web.Response(body=data, content_type=content_type)

    async def _trickle(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        """One byte every ``interval`` seconds until ``seconds`` pass or the client leaves."""
        assert self._closing is not None
        interval = float(fault.options.get("interval", 0.05))
        until = time.monotonic() + float(fault.options.get("seconds", 3600))
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            while not self._closing.is_set() and time.monotonic() < until:
                await response.write(b"\xff")
                await self._hang(interval)
            await response.write_eof()
        return response

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

    # -- queue ----------------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        answer = await self._apply_fault("submit")
        if isinstance(answer, web.Response):
            return answer
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            arguments = json.loads(await request.read())
        except ValueError:
            return self._json(
                422, {"detail": [_field_error([], "invalid JSON", "value_error.jsondecode")]}
            )
        if self.validate_on_submit and (errors := validate_arguments(arguments)):
            return self._json(422, {"detail": errors})
        request_id = str(uuid.uuid4())
        job = FakeJob(request_id, arguments if isinstance(arguments, dict) else {})
        job.fault = self.faults.take("job")
        self.jobs[request_id] = job
        self._waiting.append(job)
        self._spawn(self._run(job))
        log.debug("fake fal accepted request_id=%s", request_id)
        if isinstance(
            answer, Fault
        ):  # "timeout" with after=True: the job exists, the reply is lost
            await self._hang(float(answer.options.get("seconds", 3600)))
        return self._json(
            200,
            {
                "request_id": request_id,
                "gateway_request_id": request_id,
                "status": "IN_QUEUE",
                "queue_position": self._waiting.index(job) if job in self._waiting else 0,
                **self._urls(request_id),
            },
        )

    def _status_body(self, job: FakeJob, *, logs: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"status": job.state, "request_id": job.request_id}
        body |= self._urls(job.request_id)
        if job.state == "IN_QUEUE":
            body["queue_position"] = self._waiting.index(job) if job in self._waiting else 0
        else:
            body["logs"] = list(job.logs) if logs else None
        if job.state == "COMPLETED":
            body["metrics"] = dict(job.metrics)
            if job.error is not None:
                body["error"] = job.error
                body["error_type"] = job.error_type
        return body

    async def _known_job(self, route: str, request: web.Request) -> FakeJob | web.Response:
        """The request's job, or the answer to give instead: a fault, 401 or 404."""
        if (answer := await self._fault(route)) is not None:
            return answer
        if (denied := self._check_key(request)) is not None:
            return denied
        job = self._job(request)
        return job if job is not None else self._json(404, {"detail": "Request not found"})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        job = await self._known_job("status", request)
        if not isinstance(job, FakeJob):
            return job
        logs = request.query.get("logs", "0").lower() in {"1", "true"}
        code = 200 if job.state == "COMPLETED" else 202
        return self._json(
            code, self._status_body(job, logs=logs), {"x-fal-request-id": job.request_id}
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        job = await self._known_job("stream", request)
        if not isinstance(job, FakeJob):
            return job
        assert self._closing is not None
        logs = request.query.get("logs", "0").lower() in {"1", "true"}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        last: str | None = None
        while not self._closing.is_set():
            body = json.dumps(self._status_body(job, logs=logs))
            if body != last:
                await response.write(f"data: {body}\n\n".encode())
                last = body
            if job.state == "COMPLETED":
                break
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    async def _result(self, request: web.Request) -> web.StreamResponse:
        job = await self._known_job("result", request)
        if not isinstance(job, FakeJob):
            return job
        if job.state != "COMPLETED":
            return self._json(400, {"detail": "Request is still in progress"})
        headers = {"x-fal-request-id": job.request_id, **job.result_headers}
        return self._json(job.result_status, job.result_body, headers)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("cancel")) is not None:
            return answer
        if (denied := self._check_key(request)) is not None:
            return denied
        self.cancels += 1
        job = self._job(request)
        if job is None:
            return self._json(404, {"status": "NOT_FOUND"})
        if job.state == "COMPLETED":
            return self._json(400, {"status": "ALREADY_COMPLETED"})
        job.cancel_requested = True
        if job.state == "IN_QUEUE":
            if job in self._waiting:
                self._waiting.remove(job)
            self._finish_cancelled(job)
            await self._notify()
        return self._json(202, {"status": "CANCELLATION_REQUESTED"})

    # -- the "model" ----------------------------------------------------------------------------

    def _log(self, job: FakeJob, message: str) -> None:
        job.logs.append(
            {
                "message": message,
                "level": "INFO",
                "source": "USER",
                "timestamp": _iso(datetime.now(UTC)),
            }
        )

    def _finish(
        self,
        job: FakeJob,
        status: int,
        body: Any,
        *,
        error: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        job.result_status = status
        job.result_body = body
        job.result_headers = headers or {}
        job.error = error
        job.error_type = error_type
        started = job.started_at or time.monotonic()
        job.metrics = {"inference_time": round(time.monotonic() - started, 4)}
        job.state = "COMPLETED"

    def _finish_flat(self, job: FakeJob, error_type: str, detail: str, status: int) -> None:
        self._finish(
            job,
            status,
            {"detail": detail, "error_type": error_type},
            error=detail,
            error_type=error_type,
            headers={"X-Fal-Error-Type": error_type},
        )

    def _finish_cancelled(self, job: FakeJob) -> None:
        self._finish_flat(job, "client_cancelled", "Request cancelled by the client", 499)

    async def _acquire(self, job: FakeJob) -> bool:
        """Wait for this job's turn (FIFO, ``concurrency`` at once); False if cancelled."""
        assert self._turn is not None
        async with self._turn:
            await self._turn.wait_for(
                lambda: (
                    job.state == "COMPLETED"
                    or (
                        self._running < self.concurrency
                        and bool(self._waiting)
                        and self._waiting[0] is job
                    )
                )
            )
            if job.state == "COMPLETED":
                return False
            self._waiting.popleft()
            self._running += 1
            job.state = "IN_PROGRESS"
            job.started_at = time.monotonic()
            return True

    async def _release(self) -> None:
        assert self._turn is not None
        async with self._turn:
            self._running -= 1
            self._turn.notify_all()

    async def _run(self, job: FakeJob) -> None:
        if self.queue_delay:
            await asyncio.sleep(self.queue_delay)
        if not await self._acquire(job):
            return
        try:
            await self._process(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fake fal failed on request_id=%s", job.request_id)
            self._finish_flat(job, "internal_error", "Internal error in the fake", 500)
        finally:
            await self._release()

    async def _process(self, job: FakeJob) -> None:
        args = job.arguments
        if errors := validate_arguments(args):
            self._finish(job, 422, {"detail": errors})
            return
        inputs: list[bytes] = []
        for index, url in enumerate(args["image_urls"]):
            data = self._fetch_input(url)
            if data is None:
                self._finish(
                    job,
                    422,
                    {
                        "detail": [
                            _field_error(
                                ["image_urls", index],
                                f"Failed to download the file from {url[:100]}",
                                "file_download_error",
                                url[:100],
                            )
                        ]
                    },
                )
                return
            try:
                with Image.open(io.BytesIO(data)) as probe:
                    probe.verify()
            except (UnidentifiedImageError, OSError, ValueError):
                self._finish(
                    job,
                    422,
                    {
                        "detail": [
                            _field_error(
                                ["image_urls", index],
                                "Failed to load the image",
                                "image_load_error",
                                url[:100],
                            )
                        ]
                    },
                )
                return
            inputs.append(data)

        steps = int(args.get("num_inference_steps", 28))
        per_step = self.processing_time / steps
        for step in range(1, steps + 1):
            if per_step:
                await asyncio.sleep(per_step)
            if job.cancel_requested:
                self._finish_cancelled(job)
                return
            self._log(job, f"step {step}/{steps}")

        given = args.get("seed")
        seed: int = given if isinstance(given, int) else random.randrange(2**32)
        job.seed = seed
        prompt = str(args["prompt"])
        fault = job.fault
        if fault is not None and fault.kind == "completed_with_error":
            error_type = str(fault.options.get("error_type", "request_timeout"))
            detail = str(fault.options.get("detail", "Request timed out"))
            status = int(fault.options.get("status", ERROR_TYPE_STATUS.get(error_type, 500)))
            self._finish_flat(job, error_type, detail, status)
            return
        if fault is not None and fault.kind == "validation":
            opts = fault.options
            detail_entry = _field_error(
                list(opts.get("loc", ["image_urls", 0])),
                str(opts.get("msg", "Image too large")),
                str(opts.get("type", "image_too_large")),
                **dict(opts.get("ctx", {"max_width": 4096, "max_height": 4096})),
            )
            self._finish(job, 422, {"detail": [detail_entry]})
            return
        flagged = args.get("enable_safety_checker", True) and BLOCKED_WORD.lower() in prompt.lower()
        if flagged or (fault is not None and fault.kind == "content_policy"):
            entry = _field_error(
                ["prompt"],
                "The content was flagged by a content checker.",
                "content_policy_violation",
                prompt,
            )
            self._finish(job, 422, {"detail": [entry]})
            return

        with Image.open(io.BytesIO(inputs[0])) as first:
            first_size = first.size
        width, height = output_size(args.get("image_size", "auto"), first_size)
        fmt = str(args.get("output_format", "jpeg"))
        output = await asyncio.to_thread(
            render, inputs, prompt=prompt, seed=seed, size=(width, height), output_format=fmt
        )
        content_type = "image/png" if fmt == "png" else "image/jpeg"
        if args.get("sync_mode"):
            url = f"data:{content_type};base64,{base64.b64encode(output).decode()}"
            name = f"{hashlib.sha256(output).hexdigest()[:32]}.{_EXTENSIONS[content_type]}"
        else:
            name = self._store(output, content_type)
            url = f"{self.url}/files/{name}"
        job.output_urls = [url] if not args.get("sync_mode") else []
        image = {
            "url": url,
            "content_type": content_type,
            "file_name": name,
            "file_size": len(output),
            "width": width,
            "height": height,
        }
        self._finish(job, 200, {"images": [image], "seed": seed})

    # -- HTTP control ---------------------------------------------------------------------------

    async def _control_faults(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            try:
                spec = await request.json()
                options = {k: v for k, v in spec.items() if k not in {"route", "fault", "times"}}
                self.inject(
                    str(spec.get("route", "*")),
                    str(spec["fault"]),
                    int(spec.get("times", 1)),
                    **options,
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                return self._json(400, {"detail": str(exc)})
        elif request.method == "DELETE":
            self.faults.clear()
        elif request.method != "GET":
            return self._json(405, {"detail": "GET, POST or DELETE"})
        return self._json(200, {"pending": [asdict(f) for f in self.faults.pending]})

    async def _control_requests(self, request: web.Request) -> web.StreamResponse:
        if request.method == "DELETE":
            self.requests.clear()
        elif request.method != "GET":
            return self._json(405, {"detail": "GET or DELETE"})
        return self._json(200, {"requests": [r.to_dict() for r in self.requests]})

    async def _control_jobs(self, request: web.Request) -> web.StreamResponse:
        return self._json(
            200,
            {
                "submits": self.submits,
                "cancels": self.cancels,
                "jobs": [job.summary() for job in self.jobs.values()],
            },
        )

    async def _control_config(self, request: web.Request) -> web.StreamResponse:
        try:
            settings = await request.json()
            self.configure(**settings)
        except (ValueError, TypeError) as exc:
            return self._json(400, {"detail": str(exc)})
        return self._json(
            200,
            {
                "latency": self.faults.latency,
                "queue_delay": self.queue_delay,
                "processing_time": self.processing_time,
                "concurrency": self.concurrency,
                "validate_on_submit": self.validate_on_submit,
            },
        )

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return self._json(200, {"ok": True})


async def serve(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Run a ``FakeFal`` until cancelled, printing its URL (for ``flexbot fake-fal``)."""
    async with FakeFal(host=host, port=port, **options) as fake:
        print(f"fake fal listening on {fake.url}", flush=True)
        await asyncio.Event().wait()
