"""An async client for fal's queue API, storage uploads and output downloads.

Every URL is built from our own ``queue_url``/``rest_url`` plus the app's ``owner/alias``; the
absolute ``status_url``/``response_url`` fal returns are never followed, so a fake server or a
proxy works by changing the base URLs. Status, result and cancel drop the app's sub-path
(``fal-ai/flux-2-flex/edit`` submits to ``.../fal-ai/flux-2-flex/edit`` and polls
``.../fal-ai/flux-2-flex/requests/{id}/status``), as fal's own clients do.

Retries (stamina, exponential backoff with jitter, at most ``max_attempts`` tries) cover 408, 429,
5xx and transport errors on idempotent calls: status, result, cancel, the storage token, uploads
and downloads. A 5xx whose body names an ``error_type`` is the request's outcome, not a hiccup,
and is not retried; neither is anything fal marks ``X-Fal-Retryable: false``.

``submit`` is not idempotent: a retry after a lost response would create a second fal job and
charge twice. It is retried only when the request surely never reached fal's queue: connection
refused or connect/pool timeouts, 429, and a 503 from the gateway. A read timeout or a dropped
connection after sending raises ``FalTimeoutError``/``FalUnavailableError`` at once; whether a
job exists is then unknown, and the engine's "submitting" state handles that window.

The key is sent only as ``Authorization: Key ...`` to the queue and rest hosts, never to the
storage or CDN hosts, and never appears in ``repr``, logs or error messages.

Output downloads fetch a URL fal hands us, so they are fenced: https only, the host must be one
of ``result_hosts`` (or a subdomain of one), every address it resolves to must be public, and
redirects are followed by hand (at most ``MAX_REDIRECTS``) with each hop checked the same way.
The address actually connected to is checked again before the body is read (unless an https
proxy from the environment stands in between). The whole download, retries and redirects
included, has one deadline, so a server trickling bytes cannot hold a worker past it.

The single exception is ``insecure_local_origin``: the ``http://127.0.0.1:PORT`` origin of a
fake fal on this machine, whose outputs skip those checks. It must be a loopback IP literal, and
no setting names it: ``from_settings`` passes the queue's own origin only when that origin is
one (a dry run's fake, or the fake the end-to-end tests point ``fal_queue_url`` at), so a
production configuration with ``https://queue.fal.run`` can never enable it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import logging
import random
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, cast
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import httpx
import stamina

from bot.fal.errors import (
    FalAuthError,
    FalDownloadError,
    FalDownloadRefusedError,
    FalDownloadTimeoutError,
    FalError,
    FalTimeoutError,
    FalUnavailableError,
    error_from_response,
    error_from_status,
)
from bot.secret import Secret

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

USER_AGENT = "flexbot/0.1"
#: fal's app namespaces that prefix ``owner/alias`` (fal_client ``APP_NAMESPACES``).
APP_NAMESPACES = ("workflows", "comfy")
_RETRY_AFTER_CAP = 30.0
_TOKEN_MARGIN = 60.0

#: Where fal serves outputs. fal's own runner toolkit uploads results to ``https://fal.media``
#: and ``https://v3.fal.media`` (fal-ai/fal, projects/fal/src/fal/toolkit/file/providers/fal.py,
#: ``_FAL_CDN``/``_FAL_CDN_V3``); the v3 storage token's ``base_url`` may name another
#: subdomain, and live results are seen on ``v3b.fal.media``. fal's docs show result URLs on
#: ``v3.fal.media`` (shared/reference/fal-queue-api.md §3). Each entry also allows its
#: subdomains, so ``fal.media`` covers all of these.
DEFAULT_RESULT_HOSTS = ("fal.media",)
MAX_REDIRECTS = 3
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_DEADLINE_PER_TIMEOUT = 4  # the whole download may take this many per-call timeouts

QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
CancelOutcome = Literal["CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND", "OK"]
_STATES: tuple[QueueState, ...] = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
_CANCEL_OUTCOMES: tuple[CancelOutcome, ...] = (
    "CANCELLATION_REQUESTED",
    "ALREADY_COMPLETED",
    "NOT_FOUND",
    "OK",
)


@dataclass(frozen=True, slots=True)
class AppId:
    """An endpoint id split like fal_client's ``AppId.from_endpoint_id``."""

    owner: str
    alias: str
    path: str | None = None
    namespace: str | None = None

    @classmethod
    def from_endpoint_id(cls, endpoint_id: str) -> AppId:
        parts = [p for p in endpoint_id.strip("/").split("/") if p]
        namespace = None
        if parts and parts[0] in APP_NAMESPACES:
            namespace, parts = parts[0], parts[1:]
        if len(parts) < 2:
            raise ValueError(f"fal endpoint id needs owner/alias, got {endpoint_id!r}")
        return cls(parts[0], parts[1], "/".join(parts[2:]) or None, namespace)

    @property
    def queue_base(self) -> str:
        """``[namespace/]owner/alias``: the prefix of status, result and cancel URLs."""
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{prefix}{self.owner}/{self.alias}"

    @property
    def submit_path(self) -> str:
        return f"{self.queue_base}/{self.path}" if self.path else self.queue_base


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a running request."""

    message: str
    level: str
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One answer of the status endpoint."""

    status: QueueState
    queue_position: int | None
    logs: list[LogLine]
    error: str | None
    error_type: str | None
    metrics: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status == "COMPLETED"

    def as_error(self, request_id: str | None = None) -> FalError | None:
        """The typed error a ``COMPLETED`` status reports, or None."""
        if self.status != "COMPLETED" or not (self.error or self.error_type):
            return None
        return error_from_status(
            self.error or self.error_type or "failed", self.error_type, request_id=request_id
        )


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One generated image as fal describes it."""

    url: str
    width: int | None
    height: int | None
    content_type: str | None
    file_name: str | None = None
    file_size: int | None = None


@dataclass(frozen=True, slots=True)
class EditResult:
    """The output of a finished edit."""

    images: list[OutputImage]
    seed: int
    request_id: str


@dataclass(slots=True)
class _StorageToken:
    token: Secret
    token_type: str
    base_url: str
    expires: float  # time.monotonic() deadline


class _Transient(Exception):
    """A failure worth another attempt; ``error`` is raised once attempts run out."""

    def __init__(self, error: FalError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def _backoff(exc: Exception) -> bool | float:
    """stamina hook: retry ``_Transient``; honour a ``Retry-After`` when fal sent one."""
    if not isinstance(exc, _Transient):
        return False
    if exc.wait is not None:
        return exc.wait + random.uniform(0, 0.5)
    return True


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _RETRY_AFTER_CAP)
    except ValueError:
        return None  # an HTTP-date; the exponential backoff is good enough


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_status(body: object) -> QueueStatus:
    """A status JSON object as a ``QueueStatus``; unknown states are an error."""
    if not isinstance(body, dict) or body.get("status") not in _STATES:
        shown = body.get("status") if isinstance(body, dict) else type(body).__name__
        raise FalError(f"unexpected queue status {shown!r}")
    logs = []
    for line in body.get("logs") or []:
        if isinstance(line, dict):
            stamp = line.get("timestamp")
            logs.append(
                LogLine(
                    message=str(line.get("message", "")),
                    level=str(line.get("level", "INFO")),
                    timestamp=stamp if isinstance(stamp, str) else None,
                )
            )
    error = body.get("error")
    error_type = body.get("error_type")
    metrics = body.get("metrics")
    return QueueStatus(
        status=cast(QueueState, body["status"]),
        queue_position=_int_or_none(body.get("queue_position")),
        logs=logs,
        error=error if isinstance(error, str) else None,
        error_type=error_type if isinstance(error_type, str) else None,
        metrics=metrics if isinstance(metrics, dict) else {},
    )


def parse_result(body: object, request_id: str) -> EditResult:
    """The output JSON of ``flux-2-flex/edit`` as an ``EditResult``."""
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise FalError("fal returned a result without images", request_id=request_id)
    images = []
    for item in body["images"]:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise FalError("fal returned an image without a URL", request_id=request_id)
        content_type = item.get("content_type")
        file_name = item.get("file_name")
        images.append(
            OutputImage(
                url=item["url"],
                width=_int_or_none(item.get("width")),
                height=_int_or_none(item.get("height")),
                content_type=content_type if isinstance(content_type, str) else None,
                file_name=file_name if isinstance(file_name, str) else None,
                file_size=_int_or_none(item.get("file_size")),
            )
        )
    seed = _int_or_none(body.get("seed"))
    if seed is None:
        raise FalError("fal returned a result without a seed", request_id=request_id)
    return EditResult(images=images, seed=seed, request_id=request_id)


def _host(url: str) -> str:
    """``host[:port]`` of ``url``: never its user info, path or (signed) query."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port is not None else host


def _origin(parts: SplitResult) -> str | None:
    """``scheme://host:port`` with the default port spelled out; None if there is no host."""
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname.lower()
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}"


def loopback_origin(url: str) -> str | None:
    """The origin of ``url`` if its host is a loopback IP literal (a local fake), else None."""
    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    return _origin(parts) if address.is_loopback else None


def _is_public(address: str) -> bool:
    """Whether an IP may be downloaded from: not private, loopback, link-local, reserved, ..."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_result_hosts(hosts: str | Sequence[str]) -> tuple[str, ...]:
    """Host names from a list or a comma/space separated string, lower-cased, validated."""
    items = hosts.replace(",", " ").split() if isinstance(hosts, str) else list(hosts)
    parsed = []
    for item in items:
        host = item.strip().lower().removeprefix("*.").strip(".")
        if not host or any(c in host for c in "/:@?#[] "):
            raise ValueError(f"fal result host {item!r} is not a host name (like fal.media)")
        parsed.append(host)
    if not parsed:
        raise ValueError("no fal result hosts: no output could ever be downloaded")
    return tuple(parsed)


def _path(url: str) -> str:
    """The URL without query or host, safe for logs."""
    return urlsplit(url).path


@dataclass(frozen=True, slots=True)
class _Call:
    """How one HTTP call is sent and retried."""

    idempotent: bool = True
    auth: Literal["key", "none"] = "key"
    request_id: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    accept: frozenset[int] = frozenset()  # non-2xx codes the caller interprets itself


class FalClient:
    """Queue, storage and download calls for one fal app, with retries and typed errors."""

    def __init__(
        self,
        key: Secret | None,
        *,
        queue_url: str = "https://queue.fal.run",
        rest_url: str = "https://rest.fal.ai",
        app_id: str = "fal-ai/flux-2-flex/edit",
        timeout: float = 30.0,
        max_attempts: int = 5,
        http: httpx.AsyncClient | None = None,
        result_hosts: str | Sequence[str] = DEFAULT_RESULT_HOSTS,
        download_deadline: float | None = None,
        insecure_local_origin: str | None = None,
    ) -> None:
        """``result_hosts``: hosts (and their subdomains) outputs may come from, over https.
        ``download_deadline``: seconds for a whole download; default 4 x ``timeout``.
        ``insecure_local_origin``: only for a fake fal on this machine (tests, dry runs): its
        ``http://127.0.0.1:PORT`` origin, whose outputs are fetched without the https, host
        and address checks. Anything but a loopback IP literal is a ValueError."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._result_hosts = parse_result_hosts(result_hosts)
        self._download_deadline = (
            download_deadline if download_deadline is not None else _DEADLINE_PER_TIMEOUT * timeout
        )
        if self._download_deadline <= 0:
            raise ValueError("download_deadline must be positive")
        self._local_origin: str | None = None
        if insecure_local_origin is not None:
            self._local_origin = loopback_origin(insecure_local_origin)
            if self._local_origin is None:
                raise ValueError(
                    "insecure_local_origin must be http(s)://<loopback IP>:port, the address of "
                    "a fake fal on this machine"
                )
        self._key = key
        self._queue_url = queue_url.rstrip("/")
        self._rest_url = rest_url.rstrip("/")
        self._app = AppId.from_endpoint_id(app_id)
        self._app_id = app_id
        self._timeout = httpx.Timeout(timeout)
        self._max_attempts = max_attempts
        self._owns_http = http is None
        # No auth in the client's default headers: it is added per call, so it can never leak
        # to the storage or CDN hosts.
        self._http = http or httpx.AsyncClient(timeout=self._timeout)
        # Behind an https proxy from the environment the connected peer is the proxy, which
        # may well be private; the proxy resolves the host itself, so only our lookup applies.
        self._check_peers = not (
            self._http.trust_env and {"https", "all"} & urllib.request.getproxies().keys()
        )
        self._token: _StorageToken | None = None
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, key: Secret | None, *, fake_url: str | None = None
    ) -> FalClient:
        """The client for these settings; ``fake_url`` points both APIs at a local fake.

        Outputs are trusted from the queue's own origin only when that origin is a loopback
        IP literal: a fake fal (``fake_url``, or ``fal_queue_url`` in the end-to-end tests) or
        a local proxy the operator chose. It already receives the key, so trusting its outputs
        adds nothing; the production ``https://queue.fal.run`` never qualifies."""
        queue_url = fake_url or settings.fal_queue_url
        return cls(
            key,
            queue_url=queue_url,
            rest_url=fake_url or settings.fal_rest_url,
            app_id=settings.fal_app_id,
            timeout=settings.fal_http_timeout_seconds,
            max_attempts=settings.fal_max_attempts,
            result_hosts=settings.fal_result_hosts,
            insecure_local_origin=loopback_origin(queue_url),
        )

    def __repr__(self) -> str:
        key = "set" if self._key else "missing"
        return f"FalClient(app_id={self._app_id!r}, queue_url={self._queue_url!r}, key={key})"

    @property
    def app(self) -> AppId:
        return self._app

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- URLs ---------------------------------------------------------------------------------

    def _request_url(self, request_id: str, suffix: str = "") -> str:
        rid = quote(request_id, safe="")
        return f"{self._queue_url}/{self._app.queue_base}/requests/{rid}{suffix}"

    # -- queue ----------------------------------------------------------------------------------

    async def submit(self, arguments: dict[str, Any]) -> str:
        """Queue one request and return its ``request_id``; see the module doc on retries."""
        url = f"{self._queue_url}/{self._app.submit_path}"
        response = await self._send("POST", url, _Call(idempotent=False), json=arguments)
        body = self._json(response)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise FalError("fal accepted the request but returned no request_id")
        log.info("fal submit accepted request_id=%s", request_id)
        return request_id

    async def status(self, request_id: str, *, logs: bool = True) -> QueueStatus:
        """The request's queue state, position, logs and (when done) metrics and error."""
        url = self._request_url(request_id, "/status")
        params = {"logs": "1" if logs else "0"}
        response = await self._send("GET", url, _Call(request_id=request_id), params=params)
        return parse_status(self._json(response))

    async def result(self, request_id: str) -> EditResult:
        """The output of a finished request, or its typed error."""
        url = self._request_url(request_id)
        response = await self._send("GET", url, _Call(request_id=request_id))
        return parse_result(self._json(response), request_id)

    async def cancel(self, request_id: str) -> CancelOutcome:
        """Ask fal to cancel; returns the status fal reports (``NOT_FOUND`` is not an error)."""
        url = self._request_url(request_id, "/cancel")
        # The HTTP code per outcome is undocumented (202? 400? 404?): trust the body's status.
        call = _Call(request_id=request_id, accept=frozenset({400, 404, 409}))
        response = await self._send("PUT", url, call)
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        status = body.get("status") if isinstance(body, dict) else None
        if status in _CANCEL_OUTCOMES:
            return cast(CancelOutcome, status)
        if not response.is_success:
            raise self._error(response, request_id)
        return "OK"

    async def wait(
        self,
        request_id: str,
        *,
        poll_interval: float = 0.5,
        on_status: Callable[[QueueStatus], Awaitable[None] | None] | None = None,
    ) -> EditResult:
        """Poll until the request completes, then return its result or raise its error."""
        while True:
            state = await self.status(request_id)
            if on_status is not None:
                maybe = on_status(state)
                if maybe is not None:
                    await maybe
            if state.done:
                failure = state.as_error(request_id)
                result = await self.result(request_id)  # raises fal's own error when it has one
                if failure is not None:
                    raise failure
                return result
            await asyncio.sleep(poll_interval)

    async def stream_status(
        self, request_id: str, *, logs: bool = True
    ) -> AsyncIterator[QueueStatus]:
        """Status updates over SSE until ``COMPLETED``; not retried (fall back to polling)."""
        url = self._request_url(request_id, "/status/stream")
        headers = self._headers(_Call(request_id=request_id))
        try:
            async with self._http.stream(
                "GET",
                url,
                params={"logs": "1" if logs else "0"},
                headers=headers,
                timeout=self._timeout,
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise self._error(response, request_id)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        state = parse_status(self._loads("\n".join(data)))
                        data = []
                        yield state
                        if state.done:
                            return
        except httpx.TimeoutException as exc:
            raise FalTimeoutError(
                f"status stream idle for {self._timeout.read}s", request_id=request_id
            ) from exc
        except httpx.TransportError as exc:
            raise FalUnavailableError(
                self._redact(f"status stream broke: {type(exc).__name__}: {exc}"),
                request_id=request_id,
                retryable=True,
            ) from exc

    # -- storage --------------------------------------------------------------------------------

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload bytes to fal storage and return the public ``access_url``."""
        for fresh in (False, True):
            token = await self._storage_token(force=fresh)
            url = f"{token.base_url.rstrip('/')}/files/upload"
            headers = {
                "Content-Type": content_type,
                "Authorization": f"{token.token_type} {token.token.reveal()}",
                "X-Fal-File-Name": file_name,
            }
            try:
                response = await self._send(
                    "POST", url, _Call(auth="none", extra_headers=headers), content=data
                )
            except FalAuthError:
                if fresh:
                    raise
                log.info("fal storage token refused; fetching a new one")
                continue
            body = self._json(response)
            access_url = body.get("access_url") if isinstance(body, dict) else None
            if not isinstance(access_url, str):
                raise FalError("fal storage returned no access_url")
            log.debug("uploaded %d bytes to fal storage host=%s", len(data), _host(access_url))
            return access_url
        raise AssertionError("unreachable")

    async def verify_key(self) -> None:
        """Check the key without spending: fal hands a storage token only to a valid key.

        Raises FalAuthError for a rejected key, FalError subclasses for anything else."""
        await self._storage_token(force=True)

    async def _storage_token(self, *, force: bool) -> _StorageToken:
        async with self._token_lock:
            now = time.monotonic()
            if not force and self._token is not None and self._token.expires - _TOKEN_MARGIN > now:
                return self._token
            url = f"{self._rest_url}/storage/auth/token"
            response = await self._send(
                "POST", url, _Call(), params={"storage_type": "fal-cdn-v3"}, json={}
            )
            body = self._json(response)
            if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in ("token", "token_type", "base_url")
            ):
                raise FalError("fal storage returned an unusable token response")
            self._token = _StorageToken(
                token=Secret(body["token"]),
                token_type=body["token_type"],
                base_url=body["base_url"],
                expires=now + self._token_lifetime(body.get("expires_at")),
            )
            return self._token

    @staticmethod
    def _token_lifetime(expires_at: object) -> float:
        """Seconds until ``expires_at`` (ISO 8601); unknown means use it once and refresh."""
        if not isinstance(expires_at, str):
            return 0.0
        try:
            when = datetime.fromisoformat(expires_at)
        except ValueError:
            return 0.0
        if when.tzinfo is None:
            return 0.0
        return max(0.0, when.timestamp() - time.time())

    # -- downloads ------------------------------------------------------------------------------

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch an output (an https URL on a result host, or a ``data:`` URI).

        Refuses more than ``max_bytes``, any other host or address (``FalDownloadRefusedError``)
        and anything still running at the deadline (``FalDownloadTimeoutError``)."""
        if url.startswith("data:"):
            return self._decode_data_uri(url, max_bytes)
        try:
            async with asyncio.timeout(self._download_deadline) as deadline:
                return await self._retrying(lambda: self._download_once(url, max_bytes))
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            log.warning("fal download from %s passed its deadline", _host(url))
            raise FalDownloadTimeoutError(
                f"download from {_host(url)} did not finish within {self._download_deadline:g}s",
                error_type="download_deadline",
                retryable=True,
            ) from exc

    async def _download_once(self, url: str, max_bytes: int) -> bytes:
        # Outputs live on public CDN hosts: no Authorization header, whoever the host is.
        headers = {"User-Agent": USER_AGENT}
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            local = await self._check_result_url(current)
            try:
                async with self._http.stream(
                    "GET", current, headers=headers, timeout=self._timeout, follow_redirects=False
                ) as response:
                    if not local and self._check_peers:
                        self._check_peer(response, current)
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_CODES and location:
                        current = urljoin(current, location)
                        continue
                    return await self._read_output(response, current, max_bytes)
            except httpx.TimeoutException as exc:
                raise _Transient(
                    FalDownloadError(f"download from {_host(current)} timed out", retryable=True)
                ) from exc
            except httpx.TransportError as exc:
                raise _Transient(
                    FalDownloadError(
                        f"download from {_host(current)} failed: {type(exc).__name__}",
                        retryable=True,
                    )
                ) from exc
        raise FalDownloadRefusedError(
            f"download from {_host(url)} redirected more than {MAX_REDIRECTS} times",
            error_type="too_many_redirects",
        )

    async def _check_result_url(self, url: str) -> bool:
        """Refuse ``url`` unless it is https on a result host resolving only to public
        addresses; True when it is the fake's ``insecure_local_origin`` instead."""
        parts = urlsplit(url)
        origin = _origin(parts)
        if origin is not None and origin == self._local_origin:
            return True
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme != "https" or origin is None:
            raise self._refused(url, "is not an https URL")
        if not any(host == h or host.endswith("." + h) for h in self._result_hosts):
            raise self._refused(url, "is not one of fal_result_hosts")
        port = parts.port or 443
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise _Transient(
                FalDownloadError(f"could not resolve {_host(url)}", retryable=True)
            ) from exc
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(_is_public(a) for a in addresses):
            raise self._refused(url, "resolves to a private, loopback or link-local address")
        return False

    def _check_peer(self, response: httpx.Response, url: str) -> None:
        """Refuse if the address actually connected to is not public (a DNS answer that
        changed between our lookup and the connection); checked before any body is read."""
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if isinstance(peer, tuple) and peer and not _is_public(str(peer[0])):
            raise self._refused(url, "connected to a private, loopback or link-local address")

    @staticmethod
    def _refused(url: str, why: str) -> FalDownloadRefusedError:
        log.warning("refused fal output from %s: %s", _host(url), why)
        return FalDownloadRefusedError(
            f"refused to download from {_host(url)}: it {why}", error_type="download_refused"
        )

    async def _read_output(self, response: httpx.Response, url: str, max_bytes: int) -> bytes:
        if not response.is_success:
            await response.aread()
            error = self._error(response, None)
            # Only the status: a CDN's error body may quote the signed URL it refused.
            download_error = FalDownloadError(
                f"download from {_host(url)} failed: HTTP {response.status_code}",
                status=error.status,
                error_type=error.error_type,
                retryable=error.retryable,
            )
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise _Transient(download_error, _retry_after(response))
            raise download_error
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise self._too_large(url, int(length), max_bytes)
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) > max_bytes:
                raise self._too_large(url, len(buffer), max_bytes)
        return bytes(buffer)

    @staticmethod
    def _too_large(url: str, size: int, max_bytes: int) -> FalDownloadError:
        return FalDownloadError(
            f"output from {_host(url)} is larger than {max_bytes} bytes (got {size} so far)",
            error_type="output_too_large",
        )

    @staticmethod
    def _decode_data_uri(url: str, max_bytes: int) -> bytes:
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise FalDownloadError("data URI output is not base64")
        if len(payload) * 3 // 4 > max_bytes + 3:
            raise FalDownloadError(
                f"data URI output is larger than {max_bytes} bytes", error_type="output_too_large"
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FalDownloadError("data URI output is not valid base64") from exc
        if len(data) > max_bytes:
            raise FalDownloadError(
                f"data URI output is larger than {max_bytes} bytes", error_type="output_too_large"
            )
        return data

    # -- plumbing -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self._key is not None:
            text = self._key.redact(text)
        if self._token is not None:
            text = self._token.token.redact(text)
        return text

    def _headers(self, call: _Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **call.extra_headers}
        if call.auth == "key":
            if not self._key:
                raise FalAuthError("no fal key is configured", request_id=call.request_id)
            headers["Authorization"] = f"Key {self._key.reveal()}"
        return headers

    async def _send(self, method: str, url: str, call: _Call, **kwargs: Any) -> httpx.Response:
        """One call with retries; raises a typed ``FalError`` when it finally fails."""
        headers = self._headers(call)
        return await self._retrying(lambda: self._send_once(method, url, call, headers, **kwargs))

    async def _retrying(self, once: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``once`` until it succeeds, fails for good, or the attempts run out."""
        try:
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=self._max_attempts,
                timeout=None,
                wait_initial=0.2,
                wait_max=10.0,
                wait_jitter=1.0,
            ):
                with attempt:
                    return await once()
        except _Transient as exc:
            # stamina re-raises the last failure; callers see the typed error instead.
            raise exc.error from exc.__cause__
        raise AssertionError("unreachable")

    async def _send_once(
        self, method: str, url: str, call: _Call, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            )
        except httpx.TimeoutException as exc:
            never_sent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            error: FalError = FalTimeoutError(
                f"{method} {_path(url)}: no answer within the timeout ({type(exc).__name__})",
                request_id=call.request_id,
                retryable=True,
            )
            log.warning("fal %s %s timed out (%s)", method, _path(url), type(exc).__name__)
            if call.idempotent or never_sent:
                raise _Transient(error) from exc
            raise error from exc
        except httpx.TransportError as exc:
            never_sent = isinstance(exc, httpx.ConnectError)
            error = FalUnavailableError(
                self._redact(f"{method} {_path(url)}: {type(exc).__name__}: {exc}"),
                request_id=call.request_id,
                retryable=True,
            )
            log.warning("fal %s %s failed: %s", method, _path(url), type(exc).__name__)
            if call.idempotent or never_sent:
                raise _Transient(error) from exc
            raise error from exc
        if response.is_success or response.status_code in call.accept:
            return response
        error = self._error(response, call.request_id)
        log.warning(
            "fal %s %s -> HTTP %d %s",
            method,
            _path(url),
            response.status_code,
            error.error_type or "",
        )
        if self._should_retry(response, error, call):
            raise _Transient(error, _retry_after(response))
        raise error

    @staticmethod
    def _should_retry(response: httpx.Response, error: FalError, call: _Call) -> bool:
        if not error.retryable:
            return False
        code = response.status_code
        if error.error_type is not None and code >= 500:
            # The request's own outcome (e.g. runner_server_error): asking again won't change it.
            return False
        if not call.idempotent:
            return code in (429, 503)
        return code in (408, 429) or code >= 500

    def _error(self, response: httpx.Response, request_id: str | None) -> FalError:
        text = self._redact(response.text)
        body: object
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return error_from_response(
            response.status_code, body, response.headers, request_id=request_id
        )

    def _json(self, response: httpx.Response) -> Any:
        return self._loads(response.text)

    def _loads(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FalError(f"fal sent invalid JSON: {self._redact(text[:200])!r}") from exc
