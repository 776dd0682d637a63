"""Which failed fal calls are worth another attempt, and the stamina loop that makes them.

Retries (stamina, exponential backoff with jitter, at most ``attempts`` tries) cover 408, 429,
5xx and transport errors on idempotent calls: status, result, cancel, the storage token, uploads
and downloads. A 5xx whose body names an ``error_type`` is the request's outcome, not a hiccup,
and is not retried; neither is anything fal marks ``X-Fal-Retryable: false``.

``submit`` is not idempotent and fal has no idempotency key: a retry after a lost answer would
create a second fal job and bill twice. So a submit is retried only when it surely never reached
fal's queue: the connection was never made (connect error, DNS, connect or pool timeout), or the
gateway refused it before the queue saw it (429, or 503, and only without ``x-fal-request-id``).
Any answer carrying ``x-fal-request-id`` came from fal's own server (fal_client ``client.py``
``_is_ingress_error``: "this is clearly returned from our server") and is never retried. A read
timeout, a connection lost after sending, or any other 5xx raises ``FalSubmitAmbiguous`` (see
``bot.fal.transport``): fal may be running and billing that job, and only fal's request list
can tell. A 503 without ``x-fal-request-id`` is taken as the gateway's refusal (fal_client
retries these too); 500, 502 and 504 stay ambiguous, since a gateway sends those after it
forwarded the request.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import stamina

from bot.fal.errors import FalError

_T = TypeVar("_T")
_RETRY_AFTER_CAP = 30.0


class Transient(Exception):
    """A failure worth another attempt; ``error`` is raised once attempts run out."""

    def __init__(self, error: FalError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def backoff(exc: Exception) -> bool | float:
    """stamina hook: retry ``Transient``; honour a ``Retry-After`` when fal sent one."""
    if not isinstance(exc, Transient):
        return False
    if exc.wait is not None:
        return exc.wait + random.uniform(0, 0.5)
    return True


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` seconds of ``response``, capped; None when absent or a date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _RETRY_AFTER_CAP)
    except ValueError:
        return None  # an HTTP-date; the exponential backoff is good enough


def from_fal_server(response: httpx.Response) -> bool:
    """Whether fal's own server (not the gateway in front of it) sent this answer."""
    return "x-fal-request-id" in response.headers


def should_retry(response: httpx.Response, error: FalError, *, idempotent: bool) -> bool:
    """Whether an HTTP error answer is worth another attempt (see the module doc)."""
    if not error.retryable:
        return False
    code = response.status_code
    if error.error_type is not None and code >= 500:
        # The request's own outcome (e.g. runner_server_error): asking again won't change it.
        return False
    if not idempotent:
        return code in (429, 503) and not from_fal_server(response)
    return code in (408, 429) or code >= 500


async def retrying(once: Callable[[], Awaitable[_T]], attempts: int) -> _T:
    """Run ``once`` until it succeeds, fails for good, or the attempts run out."""
    try:
        async for attempt in stamina.retry_context(
            on=backoff,
            attempts=attempts,
            timeout=None,
            wait_initial=0.2,
            wait_max=10.0,
            wait_jitter=1.0,
        ):
            with attempt:
                return await once()
    except Transient as exc:
        # stamina re-raises the last failure; callers see the typed error instead.
        raise exc.error from exc.__cause__
    raise AssertionError("unreachable")
