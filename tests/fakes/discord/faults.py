"""Faults the test asks for: a route answers 429, 403, 404 or 5xx for its next N calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from .state import Json


@dataclass
class Fault:
    """One injected failure for a route template like `/channels/{channel_id}/messages`."""

    method: str
    route: str
    status: int
    body: Json
    times: int
    match: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def applies(self, method: str, route: str, params: dict[str, str]) -> bool:
        """Whether this fault fires for a request (and has uses left)."""
        return (
            self.hits < self.times
            and self.method == method
            and self.route == route
            and all(params.get(k) == v for k, v in self.match.items())
        )


def _split(route: str) -> tuple[str, str]:
    method, _, path = route.partition(" ")
    return method.upper(), path


class Faults:
    """Fault controls; `route` is `"METHOD /template"` as listed by `FakeDiscord.routes()`."""

    def __init__(self) -> None:
        self.active: list[Fault] = []

    def add(
        self,
        route: str,
        status: int,
        body: Json,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        **match: int | str,
    ) -> Fault:
        """Answer `status`/`body` for the next `times` matching requests."""
        method, path = _split(route)
        fault = Fault(
            method,
            path,
            status,
            body,
            times,
            {k: str(v) for k, v in match.items()},
            headers or {},
        )
        self.active.append(fault)
        return fault

    def rate_limit(
        self,
        route: str,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        **match: int | str,
    ) -> Fault:
        """429 with `retry_after`, a `Via` header and X-RateLimit headers, as Discord sends it."""
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket" + route.replace(" ", ""),
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
            "code": 0,
        }
        return self.add(route, 429, body, times=times, headers=headers, **match)

    def forbidden(self, route: str, *, times: int = 1, **match: int | str) -> Fault:
        """403 Missing Permissions (50013)."""
        return self.add(
            route, 403, {"message": "Missing Permissions", "code": 50013}, times=times, **match
        )

    def not_found(
        self,
        route: str,
        *,
        times: int = 1,
        code: int = 10003,
        message: str = "Unknown Channel",
        **match: int | str,
    ) -> Fault:
        """404 with a Discord code (10003 Unknown Channel by default, 10008 Unknown Message)."""
        return self.add(route, 404, {"message": message, "code": code}, times=times, **match)

    def server_error(
        self, route: str, *, times: int = 1, status: int = 500, **match: int | str
    ) -> Fault:
        """A 5xx; discord.py retries 500/502/504 itself with a 1 s+ backoff."""
        return self.add(
            route, status, {"message": "Internal Server Error", "code": 0}, times=times, **match
        )

    def take(self, method: str, route: str, params: dict[str, str]) -> Fault | None:
        """The first fault that fires for this request, counting the hit."""
        for fault in self.active:
            if fault.applies(method, route, params):
                fault.hits += 1
                return fault
        return None

    def clear(self) -> None:
        """Drop every fault."""
        self.active.clear()
