"""fal's status stream: server-sent events for one request, read until ``COMPLETED``.

Not retried: a stream that breaks, stays silent too long or ends early raises ``FalStreamError``
and the caller polls ``status`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from bot.fal.errors import FalError, FalStreamError
from bot.fal.schema import QueueStatus, parse_status
from bot.fal.transport import Call, Transport

#: fal's status stream sends a keep-alive comment every 15 s (fal.ai/docs status-stream), so a
#: stream silent for three of those is broken, not slow.
STREAM_IDLE_TIMEOUT = 45.0


async def stream_status(
    transport: Transport, url: str, request_id: str, *, logs: bool, idle_timeout: float
) -> AsyncGenerator[QueueStatus, None]:
    """Each status event from ``url``, ending after ``COMPLETED`` (see ``FalClient``)."""
    call = Call(request_id=request_id, extra_headers={"Accept": "text/event-stream"})
    base = transport.timeout
    timeout = httpx.Timeout(idle_timeout, connect=base.connect, write=base.write, pool=base.pool)
    try:
        async with transport.http.stream(
            "GET",
            url,
            params={"logs": "1" if logs else "0"},
            headers=transport.headers(call),
            timeout=timeout,
        ) as response:
            if not response.is_success:
                await response.aread()
                raise transport.error(response, request_id)
            async for state in _events(transport, response, request_id):
                yield state
                if state.done:
                    return
    except httpx.TimeoutException as exc:
        raise FalStreamError(
            f"status stream silent for {idle_timeout}s", request_id=request_id, retryable=True
        ) from exc
    except httpx.TransportError as exc:
        raise FalStreamError(
            transport.redact(f"status stream broke: {type(exc).__name__}: {exc}"),
            request_id=request_id,
            retryable=True,
        ) from exc
    raise FalStreamError(
        "status stream ended before COMPLETED", request_id=request_id, retryable=True
    )


async def _events(
    transport: Transport, response: httpx.Response, request_id: str
) -> AsyncIterator[QueueStatus]:
    """Each SSE event's ``data`` as a status; comments and other fields are skipped."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue  # a comment: fal's keep-alive
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield _event_status(transport, "\n".join(data), request_id)
            data = []
    if data:  # the last event without its blank line
        yield _event_status(transport, "\n".join(data), request_id)


def _event_status(transport: Transport, text: str, request_id: str) -> QueueStatus:
    try:
        return parse_status(transport.loads(text))
    except FalError as exc:
        raise FalStreamError(
            f"status stream sent an unreadable event: {exc.message}",
            request_id=request_id,
            retryable=True,
        ) from exc
