"""fal's own endpoints on the fake: storage token, upload, files, and the queue's submit,
status (plain and streamed), result and cancel. Each consults the fault queue first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.fal.fake.faults import Fault, drop, fault_response
from bot.fal.fake.job import FakeJob, iso
from bot.fal.fake.queue import JobQueue
from bot.fal.fake.validate import field_error, validate_arguments

log = logging.getLogger(__name__)


class FalRoutes(JobQueue):
    """The handlers ``FakeFal`` mounts at fal's paths."""

    # -- storage and files ----------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("token", request)) is not None:
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
                "expires_at": iso(expires),
            },
        )

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("upload", request)) is not None:
            return answer
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self._tokens.get(token, 0.0) < time.monotonic():
            return self._json(401, {"detail": "Invalid or expired upload token"})
        data = await request.read()
        if not data:
            return self._json(400, {"detail": "Empty upload"})
        name = self._store(data, request.content_type)
        return self._json(200, {"access_url": f"{self.url}/files/{name}"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        answer = await self._apply_fault("files", request)
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

    # -- queue ----------------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        answer = await self._apply_fault("submit", request)
        if isinstance(answer, web.Response):
            return answer
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            arguments = json.loads(await request.read())
        except ValueError:
            return self._json(
                422, {"detail": [field_error([], "invalid JSON", "value_error.jsondecode")]}
            )
        if self.validate_on_submit and (errors := validate_arguments(arguments)):
            return self._json(422, {"detail": errors})
        request_id = str(uuid.uuid4())
        job = FakeJob(request_id, arguments if isinstance(arguments, dict) else {}, clock=self.now)
        job.fault = self.faults.take("job")
        self._enqueue(job)
        log.debug("fake fal accepted request_id=%s", request_id)
        if isinstance(answer, Fault):
            # A fault with after=True: the job exists (and will be billed), the answer is lost.
            return await self._after_accept(answer, request, request_id)
        return self._json(
            200,
            {
                "request_id": request_id,
                "gateway_request_id": request_id,
                "status": "IN_QUEUE",
                "queue_position": self._position(job),
                **self._urls(request_id),
            },
        )

    async def _after_accept(
        self, fault: Fault, request: web.Request, request_id: str
    ) -> web.StreamResponse:
        """The lost answer of an accepted submit: hang, drop the connection, or a 5xx that
        names the request (``x-fal-request-id``, as fal's own server sends it)."""
        if fault.kind == "timeout":
            await self._hang(float(fault.options.get("seconds", 3600)))
            return self._json(504, {"detail": "hung up"}, {"x-fal-request-id": request_id})
        if fault.kind == "drop":
            return drop(request)
        return fault_response(fault.kind, fault.options, {"x-fal-request-id": request_id})

    async def _known_job(self, route: str, request: web.Request) -> FakeJob | web.Response:
        """The request's job, or the answer to give instead: a fault, 401 or 404."""
        if (answer := await self._fault(route, request)) is not None:
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
        fault = self.faults.take("stream")
        # "drop" with "events": send that many events, then end the stream before COMPLETED.
        cut_after: int | None = None
        if fault is not None and fault.kind == "drop" and "events" in fault.options:
            cut_after = int(fault.options["events"])
        elif fault is not None:
            answer = await self._answer_fault(fault, request)
            if isinstance(answer, web.StreamResponse):
                return answer
        job = await self._known_job("stream", request)
        if not isinstance(job, FakeJob):
            return job
        assert self._closing is not None
        logs = request.query.get("logs", "0").lower() in {"1", "true"}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        last: str | None = None
        sent = 0
        quiet_since = time.monotonic()
        while not self._closing.is_set():
            done = job.state == "COMPLETED"  # read first: the body below then shows it
            body = json.dumps(self._status_body(job, logs=logs))
            if cut_after is not None and sent >= cut_after:
                break
            if body != last:
                await response.write(f"data: {body}\n\n".encode())
                last, sent, quiet_since = body, sent + 1, time.monotonic()
            elif time.monotonic() - quiet_since >= self.stream_keepalive:
                # fal's keep-alive: an SSE comment, which clients skip.
                await response.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
            if done:
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
        if self._expired(job):
            # What fal answers for an expired result is undocumented; 404 is our guess.
            return self._json(404, {"detail": "Request not found"})
        headers = {"x-fal-request-id": job.request_id, **job.result_headers}
        return self._json(job.result_status, job.result_body, headers)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        if (answer := await self._fault("cancel", request)) is not None:
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
            await self._cancel_queued(job)
        return self._json(202, {"status": "CANCELLATION_REQUESTED"})
