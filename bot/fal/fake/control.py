"""Test control of the fake: in process (``inject``, ``configure``, ``reset``, ``calls``) and the
same over HTTP under ``/_fake/`` for a fake in another process."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from bot.fal.fake.state import FakeState, RecordedRequest

_FLOATS = (
    "queue_delay",
    "processing_time",
    "result_ttl_small",
    "result_ttl_large",
    "stream_keepalive",
)
_CONFIG_FIELDS = (
    "latency",
    *_FLOATS,
    "concurrency",
    "validate_on_submit",
    "list_unfinished",
    "price_per_megapixel_micros",
)


class Control(FakeState):
    """The test-facing half of ``FakeFal``."""

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

    @property
    def billed_micros(self) -> int:
        """Everything fal would have billed so far, in micro-dollars (see ``billing``)."""
        return sum(entry.micros for entry in self.billing)

    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward (results expire on it); returns ``now()``."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += seconds
        return self.now()

    def configure(self, **settings: Any) -> None:
        """Change any of ``_CONFIG_FIELDS`` while running (see ``FakeState.__init__``)."""
        for name, value in settings.items():
            if name not in _CONFIG_FIELDS:
                raise ValueError(f"unknown setting {name!r}; known: {list(_CONFIG_FIELDS)}")
            if name == "latency":
                self.faults.latency = float(value)
            elif name in ("validate_on_submit", "list_unfinished"):
                setattr(self, name, bool(value))
            elif name in ("concurrency", "price_per_megapixel_micros"):
                setattr(self, name, int(value))
            else:
                setattr(self, name, float(value))
        if "concurrency" in settings and self._turn is not None:
            self._spawn(self._notify())

    def reset(self) -> None:
        """Forget faults, the request log, finished jobs, the billing log and stored files."""
        self.faults.clear()
        self.requests.clear()
        self.files.clear()
        self.billing.clear()
        self.cancels = 0
        for request_id, job in list(self.jobs.items()):
            if job.state == "COMPLETED":
                del self.jobs[request_id]

    # -- over HTTP ------------------------------------------------------------------------------

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
        shown = {name: getattr(self, name) for name in _CONFIG_FIELDS if name != "latency"}
        return self._json(200, {"latency": self.faults.latency, **shown})

    async def _control_clock(self, request: web.Request) -> web.StreamResponse:
        try:
            spec = await request.json()
            now = self.advance(float(spec.get("advance", 0)))
        except (ValueError, TypeError, AttributeError) as exc:
            return self._json(400, {"detail": str(exc)})
        return self._json(200, {"now": now})

    async def _control_billing(self, request: web.Request) -> web.StreamResponse:
        return self._json(
            200,
            {
                "total_micros": self.billed_micros,
                "entries": [entry.to_dict() for entry in self.billing],
            },
        )

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return self._json(200, {"ok": True})
