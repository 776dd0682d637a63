"""Jobs that may be at fal (``unsure``): did the lost submit reach fal? (DESIGN §3, §6)

fal has no idempotency key, so a submit whose answer was lost (``FalSubmitAmbiguous``) or a
crash inside the submit window leaves a job fal may be running and billing. It is never failed
or sent again blindly. Its exact arguments (Flexbot picked the seed, so they are its own) and
the submit's time window are stored; fal's request list (``FalClient.list_requests``) is read
for that window, widened by ``fal_unsure_margin_seconds`` each side:

- a request with the job's seed, prompt and image URLs that no other job follows -> adopted:
  the job goes on as ``running`` with that request id and is charged once, on the normal path;
- none after ``fal_unsure_grace_seconds`` (the list may lag) -> sent again once (the second
  time it is still looked up the same way), else failed with its money released;
- the key cannot read the list (``FalRequestListForbidden``) -> said once in the log, the job is
  sent again once or failed as before issue 12, and each such guess is counted in
  ``flexbot_fal_possible_orphans``: fal may have billed a request no job follows.

A cancel asked meanwhile is honoured after the look-up: a found request is cancelled at fal on
the normal path; a job fal never got ends cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Container
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.fal.client import FalClient, RequestRecord
from bot.fal.errors import FalError, FalRequestListForbidden
from bot.metrics import Metrics
from bot.model import Job, JobState
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.db import Database

log = logging.getLogger(__name__)

#: The arguments that make a request this job's own (Flexbot picked the seed).
MATCH_KEYS = ("seed", "prompt", "image_urls")
#: Submits per job at most: the first, and one more when fal surely never got it.
MAX_SUBMITS = 2


class Verdict(StrEnum):
    """What became of a job that may have been at fal."""

    ADOPTED = "adopted"  # found at fal: now running with that request id
    RESUBMIT = "resubmit"  # not at fal: send it again (once)
    GIVE_UP = "give_up"  # not at fal and already sent twice (or cancelled): end it
    STOPPING = "stopping"  # the engine stops: still unsure, looked up again after the restart
    GONE = "gone"  # the job moved meanwhile (another worker, a cancel)


class NotAtFal(Exception):
    """The job cannot be looked up (the list is forbidden, or nothing was stored to match)."""


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def matches(record: RequestRecord, sent: dict[str, Any]) -> bool:
    """Whether fal's record carries the arguments this job sent."""
    given = record.json_input
    if not isinstance(given, dict):
        return False
    return all(given.get(key) == sent.get(key) for key in MATCH_KEYS)


class Reconciler:
    """Looks up ``unsure`` jobs in fal's request list; one per engine."""

    def __init__(
        self,
        db: Database,
        fal: FalClient,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float],
        stopping: asyncio.Event,
    ) -> None:
        self.db = db
        self.fal = fal
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.stopping = stopping
        self._said_forbidden = False

    async def settle(self, job: Job, cancel_requests: Container[int]) -> Verdict:
        """Look for the job at fal until found, given up on, or the engine stops."""
        settings = self.settings
        while True:
            if self.stopping.is_set():
                return Verdict.STOPPING
            try:
                found = await self.find(job)
            except NotAtFal:
                # Nothing can tell: guess as before issue 12, and count the guess.
                self.metrics.fal_possible_orphans.inc()
                return self._give_up_or_resubmit(job, cancel_requests)
            except FalError as exc:  # fal's list is unreachable for now: try again later
                log.warning("job=%s fal's request list failed (%s); will retry", job.id, exc)
                found = None
            if found is not None and (verdict := await self.adopt(job, found)) is not None:
                return verdict
            window_end = job.submit_window_end or job.submit_window_start or 0.0
            if self.clock() - window_end >= settings.fal_unsure_grace_seconds:
                return self._give_up_or_resubmit(job, cancel_requests)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.stopping.wait(), timeout=settings.fal_unsure_interval_seconds
                )
            current = await jobs_repo.get_job(self.db, job.id)
            if current is None or current.state != JobState.UNSURE:
                return Verdict.GONE
            job = current

    def _give_up_or_resubmit(self, job: Job, cancel_requests: Container[int]) -> Verdict:
        cancelled = job.cancel_requested or job.id in cancel_requests
        if cancelled or job.submit_attempts >= MAX_SUBMITS:
            return Verdict.GIVE_UP
        return Verdict.RESUBMIT

    async def find(self, job: Job) -> str | None:
        """The id of the job's request at fal that no other job follows, or None.

        Raises ``NotAtFal`` when it cannot be looked up, ``FalError`` when fal failed."""
        hint = job.fal_request_hint
        if hint and await jobs_repo.request_owner(self.db, hint) is None:
            # fal's answer named a request: if fal knows it, it is this job's.
            with contextlib.suppress(FalError):
                await self.fal.status(hint)
                return hint
        if job.fal_input is None or job.submit_window_start is None:
            log.warning("job=%s has no stored fal arguments to look up", job.id)
            raise NotAtFal
        sent = json.loads(job.fal_input)
        margin = self.settings.fal_unsure_margin_seconds
        start = job.submit_window_start - margin
        end = (job.submit_window_end or self.clock()) + margin
        try:
            records = await self.fal.list_requests(
                start=_when(start), end=_when(end), payloads=True
            )
        except FalRequestListForbidden:
            if not self._said_forbidden:
                self._said_forbidden = True
                log.error(
                    "fal's request list is refused for this key: a submit whose answer is lost "
                    "cannot be looked up, so it is sent again once or failed; fal may bill "
                    "requests no job follows (counted in flexbot_fal_possible_orphans)"
                )
            raise NotAtFal from None
        candidates = [r.request_id for r in records if matches(r, sent)]
        if not candidates:
            return None
        if await jobs_repo.sending_same_input(self.db, job.id, job.fal_input):
            # An exact rerun is being sent right now: its request could be taken for this one's.
            log.info("job=%s waits for an identical submit to settle", job.id)
            return None
        owned = await jobs_repo.owned_requests(self.db, candidates)
        free = [rid for rid in candidates if rid not in owned]
        return free[-1] if free else None  # the list is newest first: take the oldest

    async def adopt(self, job: Job, request_id: str) -> Verdict | None:
        """unsure -> running with the request found at fal; None when another job took that
        request first (keep looking)."""
        now = self.clock()
        won = taken = False
        async with self.db.transaction() as tx:
            taken = await jobs_repo.request_owner(tx, request_id) is not None
            if not taken:
                won = await jobs_repo.transition(
                    tx,
                    job.id,
                    [JobState.UNSURE],
                    JobState.RUNNING,
                    fal_request_id=request_id,
                    fal_seen_at=now,
                )
        if taken:
            return None
        if not won:
            return Verdict.GONE
        self.metrics.fal_unsure_resolved.labels("adopted").inc()
        log.info("job=%s found at fal as request=%s; following it", job.id, request_id)
        return Verdict.ADOPTED
