"""One HTTP call to fal: auth headers, retries, typed errors, and secrets kept out of text.

The key is sent only as ``Authorization: Key ...`` on calls that ask for it (the queue and rest
hosts), never to the storage or CDN hosts, and never appears in ``repr``, logs or error messages:
every text taken from a response is redacted of the key and the storage token in use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx

from bot.fal.errors import (
    FalAuthError,
    FalError,
    FalSubmitAmbiguous,
    FalTimeoutError,
    FalUnavailableError,
    error_from_response,
)
from bot.fal.retry import Transient, retry_after, retrying, should_retry
from bot.secret import Secret

log = logging.getLogger(__name__)
_T = TypeVar("_T")

USER_AGENT = "flexbot/0.1"


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``: never its user info, path or (signed) query."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port is not None else host


def path_of(url: str) -> str:
    """The URL without query or host, safe for logs."""
    return urlsplit(url).path


@dataclass(frozen=True, slots=True)
class Call:
    """How one HTTP call is sent and retried."""

    idempotent: bool = True
    auth: Literal["key", "none"] = "key"
    request_id: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    accept: frozenset[int] = frozenset()  # non-2xx codes the caller interprets itself


class Transport:
    """Sends calls for a ``FalClient`` and its storage and download helpers."""

    def __init__(
        self, http: httpx.AsyncClient, key: Secret | None, timeout: httpx.Timeout, attempts: int
    ) -> None:
        self.http = http
        self.timeout = timeout
        self.attempts = attempts
        self._key = key
        #: The storage token in use, redacted like the key; storage replaces it on refresh.
        self.storage_token: Secret | None = None

    def redact(self, text: str) -> str:
        if self._key is not None:
            text = self._key.redact(text)
        if self.storage_token is not None:
            text = self.storage_token.redact(text)
        return text

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **call.extra_headers}
        if call.auth == "key":
            if not self._key:
                raise FalAuthError("no fal key is configured", request_id=call.request_id)
            headers["Authorization"] = f"Key {self._key.reveal()}"
        return headers

    async def retrying(self, once: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``once`` with this client's retry policy (see ``bot.fal.retry``)."""
        return await retrying(once, self.attempts)

    async def send(self, method: str, url: str, call: Call, **kwargs: Any) -> httpx.Response:
        """One call with retries; raises a typed ``FalError`` when it finally fails."""
        headers = self.headers(call)
        return await self.retrying(lambda: self._send_once(method, url, call, headers, **kwargs))

    async def _send_once(
        self, method: str, url: str, call: Call, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except httpx.TransportError as exc:
            raise self._transport_failure(method, url, call, exc) from exc
        if response.is_success or response.status_code in call.accept:
            return response
        error = self.error(response, call.request_id or response.headers.get("x-fal-request-id"))
        log.warning(
            "fal %s %s -> HTTP %d %s",
            method,
            path_of(url),
            response.status_code,
            error.error_type or "",
        )
        if should_retry(response, error, idempotent=call.idempotent):
            raise Transient(error, retry_after(response))
        if not call.idempotent and response.status_code >= 500:
            raise FalSubmitAmbiguous(
                f"{method} {path_of(url)}: HTTP {response.status_code} after fal received the "
                f"request: {error.message}",
                cause="http_5xx",
                status=error.status,
                error_type=error.error_type,
                detail=error.detail,
                request_id=error.request_id,
            )
        raise error

    def _transport_failure(
        self, method: str, url: str, call: Call, exc: httpx.TransportError
    ) -> Exception:
        """What a failed connection means: retry (``Transient``), or the error to raise.

        Only a connection that was never made is safe to retry for a non-idempotent call; after
        the request went out, a lost answer is ``FalSubmitAmbiguous``."""
        name = type(exc).__name__
        log.warning("fal %s %s failed: %s", method, path_of(url), name)
        timed_out = isinstance(exc, httpx.TimeoutException)
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        error: FalError
        if timed_out:
            error = FalTimeoutError(
                f"{method} {path_of(url)}: no answer within the timeout ({name})",
                request_id=call.request_id,
                retryable=True,
            )
        else:
            error = FalUnavailableError(
                self.redact(f"{method} {path_of(url)}: {name}: {exc}"),
                request_id=call.request_id,
                retryable=True,
            )
        if call.idempotent or never_sent:
            return Transient(error)
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return error  # refused by httpx itself, before anything was sent
        return FalSubmitAmbiguous(
            f"{error.message}; fal may have received the request",
            cause="read_timeout" if timed_out else "connection_lost",
            request_id=call.request_id,
        )

    def error(self, response: httpx.Response, request_id: str | None) -> FalError:
        """The typed error an (already read) error answer stands for, redacted."""
        text = self.redact(response.text)
        body: object
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return error_from_response(
            response.status_code, body, response.headers, request_id=request_id
        )

    def json(self, response: httpx.Response) -> Any:
        return self.loads(response.text)

    def loads(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FalError(f"fal sent invalid JSON: {self.redact(text[:200])!r}") from exc
