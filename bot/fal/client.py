"""An async client for fal's queue API; the public face of ``bot.fal``.

Every URL is built from our own ``queue_url``/``rest_url`` plus the app's ``owner/alias``; the
absolute ``status_url``/``response_url`` fal returns are never followed, so a fake server or a
proxy works by changing the base URLs. Status, result and cancel drop the app's sub-path
(``fal-ai/flux-2-flex/edit`` submits to ``.../fal-ai/flux-2-flex/edit`` and polls
``.../fal-ai/flux-2-flex/requests/{id}/status``), as fal's own clients do.

The work is shared out by reason to change: ``transport`` sends one call (auth, typed errors,
redaction: the key never appears in ``repr``, logs or error messages), ``retry`` decides what
is retried (``submit`` only when it surely never reached fal; a lost answer is
``FalSubmitAmbiguous``), ``storage`` uploads inputs and ``download`` fetches outputs behind its
host, redirect, address and deadline checks, ``stream`` reads the status stream.

``list_requests`` reads fal's Platform API (``{api_url}/v1/models/requests/by-endpoint``, paged
in ``requests_list``), the one place that shows requests whose submit answer was lost; see its
docstring for the contract (fal.ai/docs/platform-apis/v1/models/requests/by-endpoint).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import quote

import httpx

from bot.fal.download import (
    DEFAULT_RESULT_HOSTS,
    MAX_REDIRECTS,
    Downloader,
    DownloadRules,
    loopback_origin,
    parse_result_hosts,
)
from bot.fal.errors import (
    FalError,
    FalResultGoneError,
    FalSubmitAmbiguous,
)
from bot.fal.requests_list import REQUEST_LIST_PAGE_MAX, RequestQuery, list_requests
from bot.fal.schema import (
    APP_NAMESPACES,
    CANCEL_OUTCOMES,
    AppId,
    CancelOutcome,
    EditResult,
    LogLine,
    OutputImage,
    QueueState,
    QueueStatus,
    RequestOutcome,
    RequestRecord,
    parse_result,
    parse_status,
)
from bot.fal.storage import Storage
from bot.fal.stream import STREAM_IDLE_TIMEOUT, stream_status
from bot.fal.transport import USER_AGENT, Call, Transport
from bot.secret import Secret

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "APP_NAMESPACES",
    "DEFAULT_RESULT_HOSTS",
    "MAX_REDIRECTS",
    "REQUEST_LIST_PAGE_MAX",
    "STREAM_IDLE_TIMEOUT",
    "USER_AGENT",
    "AppId",
    "CancelOutcome",
    "EditResult",
    "FalClient",
    "LogLine",
    "OutputImage",
    "QueueState",
    "QueueStatus",
    "RequestOutcome",
    "RequestRecord",
    "loopback_origin",
    "parse_result",
    "parse_result_hosts",
    "parse_status",
]


class FalClient:
    """Queue, storage and download calls for one fal app, with retries and typed errors."""

    def __init__(
        self,
        key: Secret | None,
        *,
        queue_url: str = "https://queue.fal.run",
        rest_url: str = "https://rest.fal.ai",
        api_url: str = "https://api.fal.ai",
        app_id: str = "fal-ai/flux-2-flex/edit",
        timeout: float = 30.0,
        max_attempts: int = 5,
        http: httpx.AsyncClient | None = None,
        result_hosts: str | Sequence[str] = DEFAULT_RESULT_HOSTS,
        download_deadline: float | None = None,
        insecure_local_origin: str | None = None,
        stream_idle_timeout: float = STREAM_IDLE_TIMEOUT,
    ) -> None:
        """``result_hosts``: hosts (and their subdomains) outputs may come from, over https.
        ``download_deadline``: seconds for a whole download; default 4 x ``timeout``.
        ``insecure_local_origin``: only for a fake fal on this machine (tests, dry runs): its
        ``http://127.0.0.1:PORT`` origin, whose outputs are fetched without the https, host
        and address checks. Anything but a loopback IP literal is a ValueError.
        ``api_url``: fal's Platform API (the request list). ``stream_idle_timeout``: seconds the
        status stream may stay silent (fal sends a keep-alive every 15 s)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        rules = DownloadRules.build(result_hosts, download_deadline, timeout, insecure_local_origin)
        self._key = key
        self._queue_url = queue_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._stream_idle_timeout = stream_idle_timeout
        self._app = AppId.from_endpoint_id(app_id)
        self._app_id = app_id
        self._owns_http = http is None
        # No auth in the client's default headers: it is added per call, so it can never leak
        # to the storage or CDN hosts.
        http_timeout = httpx.Timeout(timeout)
        http_client = http or httpx.AsyncClient(timeout=http_timeout)
        self._transport = Transport(http_client, key, http_timeout, max_attempts)
        self._storage = Storage(self._transport, rest_url.rstrip("/"))
        self._downloader = Downloader(self._transport, rules)

    @classmethod
    def from_settings(
        cls, settings: Settings, key: Secret | None, *, fake_url: str | None = None
    ) -> FalClient:
        """The client for these settings; ``fake_url`` points every fal API at a local fake.

        Outputs are trusted from the queue's own origin only when that origin is a loopback
        IP literal: a fake fal (``fake_url``, or ``fal_queue_url`` in the end-to-end tests) or
        a local proxy the operator chose. It already receives the key, so trusting its outputs
        adds nothing; the production ``https://queue.fal.run`` never qualifies."""
        queue_url = fake_url or settings.fal_queue_url
        return cls(
            key,
            queue_url=queue_url,
            rest_url=fake_url or settings.fal_rest_url,
            api_url=fake_url or settings.fal_api_url,
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
            await self._transport.http.aclose()

    # -- URLs ---------------------------------------------------------------------------------

    def _request_url(self, request_id: str, suffix: str = "") -> str:
        rid = quote(request_id, safe="")
        return f"{self._queue_url}/{self._app.queue_base}/requests/{rid}{suffix}"

    # -- queue ----------------------------------------------------------------------------------

    async def submit(self, arguments: dict[str, Any]) -> str:
        """Queue one request and return its ``request_id``.

        Retried only when the request surely never reached fal (``bot.fal.retry``). Raises
        ``FalSubmitAmbiguous`` when it was sent but the answer was lost or was a 5xx: fal may
        be running (and billing) that job, so look it up with ``list_requests`` before any
        resubmit. Other ``FalError``s mean fal refused it, or it never got there."""
        url = f"{self._queue_url}/{self._app.submit_path}"
        response = await self._transport.send("POST", url, Call(idempotent=False), json=arguments)
        header_id = response.headers.get("x-fal-request-id") or None
        try:
            body = self._transport.json(response)
        except FalError:
            body = None
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            # A 2xx means fal queued something; without an id in the body it cannot be polled.
            raise FalSubmitAmbiguous(
                "fal accepted the request but its answer named no request_id",
                cause="no_request_id",
                status=response.status_code,
                request_id=header_id,
            )
        log.info("fal submit accepted request_id=%s", request_id)
        return request_id

    async def status(self, request_id: str, *, logs: bool = True) -> QueueStatus:
        """The request's queue state, position, logs and (when done) metrics and error."""
        url = self._request_url(request_id, "/status")
        params = {"logs": "1" if logs else "0"}
        response = await self._transport.send(
            "GET", url, Call(request_id=request_id), params=params
        )
        return parse_status(self._transport.json(response))

    async def result(self, request_id: str) -> EditResult:
        """The output of a finished request, or its typed error.

        A 404 is ``FalResultGoneError``: fal keeps a result 1 hour, or 6 minutes when it is
        10 KB or more (fal.ai/docs queue result); fal does not document what an expired result
        answers, 404 is our guess (the fake answers so)."""
        url = self._request_url(request_id)
        try:
            response = await self._transport.send("GET", url, Call(request_id=request_id))
        except FalError as exc:
            if exc.status == 404 and type(exc) is FalError:
                raise FalResultGoneError(
                    exc.message, status=404, detail=exc.detail, request_id=request_id
                ) from exc
            raise
        return parse_result(self._transport.json(response), request_id)

    async def cancel(self, request_id: str) -> CancelOutcome:
        """Ask fal to cancel; returns the status fal reports (``NOT_FOUND`` is not an error)."""
        url = self._request_url(request_id, "/cancel")
        # The HTTP code per outcome is undocumented (202? 400? 404?): trust the body's status.
        call = Call(request_id=request_id, accept=frozenset({400, 404, 409}))
        response = await self._transport.send("PUT", url, call)
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        status = body.get("status") if isinstance(body, dict) else None
        if status in CANCEL_OUTCOMES:
            return cast(CancelOutcome, status)
        if not response.is_success:
            raise self._transport.error(response, request_id)
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
        """Status updates over server-sent events, ending after ``COMPLETED``; not retried.

        Comment lines (``:``, fal's keep-alive every 15 s) are skipped. A stream that breaks,
        stays silent for ``stream_idle_timeout`` or ends before ``COMPLETED`` raises
        ``FalStreamError``: poll ``status`` instead. An HTTP error answer raises its typed
        error, as ``status`` would."""
        url = self._request_url(request_id, "/status/stream")
        states = stream_status(
            self._transport, url, request_id, logs=logs, idle_timeout=self._stream_idle_timeout
        )
        # aclosing: a caller that stops early closes the HTTP stream now, not at garbage collection.
        async with aclosing(states):
            async for state in states:
                yield state

    # -- the Platform API's request list --------------------------------------------------------

    async def list_requests(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        request_id: str | None = None,
        status: RequestOutcome | None = None,
        payloads: bool = False,
        page_size: int = REQUEST_LIST_PAGE_MAX,
        endpoint_id: str | None = None,
    ) -> list[RequestRecord]:
        """Every request fal lists for this app in ``[start, end)``, following the pages.

        ``GET {api_url}/v1/models/requests/by-endpoint`` with ``Authorization: Key ...``
        (fal.ai/docs/platform-apis/v1/models/requests/by-endpoint): ``endpoint_id`` (default:
        this client's app id, sub-path included), ``start``/``end`` (ISO 8601, ``end``
        exclusive; fal defaults them to 24 hours ago and now, or 90 days back when
        ``request_id`` is given), ``status`` (``success``/``error``/``user_error``),
        ``request_id``, ``expand=payloads`` (each item's ``json_input`` and ``json_output``),
        ``limit`` (1..100) and ``cursor`` (``next_cursor`` of the previous page, until it is
        null). Requests still running may not be listed yet (undocumented).

        A 401 or 403 is ``FalRequestListForbidden``: the key cannot read the list (fal's
        authentication page: 401 a wrong or revoked key, 403 a key without the scope)."""
        query = RequestQuery(
            endpoint_id=endpoint_id or self._app_id,
            start=start,
            end=end,
            request_id=request_id,
            status=status,
            payloads=payloads,
            page_size=page_size,
        )
        return await list_requests(self._transport, self._api_url, query)

    # -- storage and downloads ------------------------------------------------------------------

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload bytes to fal storage and return the public ``access_url``."""
        return await self._storage.upload(data, content_type, file_name)

    async def verify_key(self) -> None:
        """Check the key without spending: fal hands a storage token only to a valid key.

        Raises FalAuthError for a rejected key, FalError subclasses for anything else."""
        await self._storage.token(force=True)

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch an output (an https URL on a result host, or a ``data:`` URI).

        Refuses more than ``max_bytes``, any other host or address (``FalDownloadRefusedError``)
        and anything still running at the deadline (``FalDownloadTimeoutError``)."""
        return await self._downloader.download(url, max_bytes)
