"""The fake's fault injection: what may go wrong, on which route, how many times.

HTTP faults answer a route's next call(s) instead of its handler; job faults shape the outcome
of the next submitted job(s). The kinds and their options are listed in ``bot.fal.fake``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.fal.fake.validate import field_error

ROUTES = frozenset(
    {"submit", "status", "stream", "result", "cancel", "token", "upload", "files", "requests", "*"}
)
HTTP_FAULTS = frozenset(
    {
        "401",
        "403",
        "422",
        "429",
        "500",
        "502",
        "503",
        "504",
        "timeout",
        "redirect",
        "trickle",
        "drop",
    }
)
#: Faults that, on ``submit`` with ``after=True``, hit once the job exists (and will be billed).
AFTER_FAULTS = frozenset({"timeout", "drop", "500", "502", "503", "504"})
JOB_FAULTS = frozenset({"content_policy", "validation", "completed_with_error"})
_DETAILS = {
    401: "Invalid API key",
    403: "Forbidden",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


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
        if options.get("after") and (route != "submit" or kind not in AFTER_FAULTS):
            raise ValueError(f"after=True only applies to submit faults {sorted(AFTER_FAULTS)}")
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


def drop(request: web.Request) -> web.Response:
    """Close the connection without an answer: the client sees it end mid-request."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never sent: the connection is already gone


def fault_response(
    kind: str, opts: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    """The answer an HTTP fault gives at once (not ``timeout`` or ``trickle``, which take time)."""
    if kind == "redirect":
        return web.Response(
            status=int(opts.get("status", 302)), headers={"Location": str(opts["location"])}
        )
    if kind == "429":
        return web.json_response(
            {"detail": "Too many requests"},
            status=429,
            headers={"Retry-After": str(opts.get("retry_after", 0))},
        )
    if kind == "422":
        detail = [
            field_error(
                list(opts.get("loc", ["prompt"])),
                str(opts.get("msg", "invalid input")),
                str(opts.get("type", "value_error")),
            )
        ]
        return web.json_response({"detail": detail}, status=422)
    status = int(kind)
    body: dict[str, Any] = {"detail": opts.get("detail") or _DETAILS[status]}
    headers = dict(headers or {})
    if opts.get("error_type"):
        body["error_type"] = opts["error_type"]
        headers["X-Fal-Error-Type"] = str(opts["error_type"])
    return web.json_response(body, status=status, headers=headers)
