"""Starting job runs from a queue several processes share (PostgreSQL, issue 13).

The one-process :class:`~bot.engine.dispatch.Dispatcher` picks from its in-memory fair
scheduler. Here every process claims from the database instead (``bot.store.claims``): one
transaction under the bot-wide write lock counts the jobs holding a fal slot in *every* process,
picks the next job in the bot-wide fair order and marks it as this process's, with a lease. So
``fal_concurrency`` and each member's running cap hold across processes, and the round-robin
between members and servers is the whole bot's, not one process's.

A heartbeat (every third of ``worker_lease_seconds``) renews this process's leases, learns the
cancels asked in other processes, and stops any run whose job another process took over (this
one stalled past its lease). The same tick takes over the jobs of processes whose lease ran out
(they died): a job past the queue resumes from its stored state, following the stored fal
request id, never submitting again; one caught inside the submit window becomes ``unsure`` and
is looked up in fal's request list first, exactly as after a restart (``bot.engine.recovery``).

Other processes are woken through PostgreSQL's LISTEN/NOTIFY when a job is queued or a slot
frees; the tick is the fallback when a notification is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from bot.engine.dispatch import Dispatcher
from bot.engine.scheduler import FairScheduler
from bot.model import JobState
from bot.settings import Settings
from bot.store import claims
from bot.store import jobs as jobs_repo
from bot.store.db import Database

log = logging.getLogger(__name__)

#: The LISTEN/NOTIFY channel that says "a job was queued or a slot freed: try to claim".
WAKE_CHANNEL = "flexbot_queue"
#: The channel that says "cancel this job" (the payload: its id), asked in another process.
CANCEL_CHANNEL = "flexbot_cancel"


def worker_name(settings: Settings) -> str:
    """This process's name in the jobs' ``owner`` column (unique per process)."""
    return settings.worker_name or f"{socket.gethostname()}:{os.getpid()}"


class SharedDispatcher(Dispatcher):
    """Claims jobs from the shared queue, holds them with a lease, takes over the dead's."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        stopping: asyncio.Event,
        clock: Callable[[], float],
    ) -> None:
        # The scheduler here only mirrors the shared queue, for queue positions and ETAs.
        super().__init__(FairScheduler(), settings.fal_concurrency, stopping)
        self.db = db
        self.clock = clock
        self.owner = worker_name(settings)
        self.lease = settings.worker_lease_seconds
        self.tick = self.lease / 3
        self._heart: asyncio.Task[None] | None = None
        self._notify_tasks: set[asyncio.Task[None]] = set()

    # -- what the engine calls -------------------------------------------------------------------

    def queue(
        self, job_id: int, user_id: int, guild_id: int | None, max_running: int | None
    ) -> None:
        """A job was admitted here: mirror it, and wake this process and the others."""
        if job_id not in self.scheduler:
            self.scheduler.add(job_id, user_id, guild_id, max_running)
        self._wake.set()
        self._tell_others()

    async def recover(self) -> None:
        """Resume this process's own jobs (a restart under the same ``worker_name``) and load
        the mirror; the jobs of other dead processes come with the first tick's takeover."""
        await self._refresh_mirror()
        for held in await claims.mine(self.db, self.owner):
            await self._adopt(held)

    def start(self) -> None:
        super().start()
        self._heart = asyncio.create_task(self._heartbeat(), name="engine-heartbeat")

    async def stop_loop(self) -> None:
        if self._heart is not None:
            self._heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heart
        await super().stop_loop()

    async def drain(self, timeout: float) -> None:
        """Let runs reach a stored state, then hand this process's jobs back: unstarted claims
        to the queue, the others' leases ended so another process resumes them at once."""
        await super().drain(timeout)
        with contextlib.suppress(Exception):  # a dead database: the leases run out instead
            async with self.db.transaction() as tx:
                await claims.release(tx, self.owner)
            await self._notify()
        # Wake-ups still in flight go before the database closes under them.
        await asyncio.gather(*self._notify_tasks, return_exceptions=True)

    # -- claiming --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        await self.db.listen(WAKE_CHANNEL, lambda _: self._wake.set())
        await self.db.listen(CANCEL_CHANNEL, self._cancel_asked)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self._claim_free_slots()
            except Exception:  # the database is away: try again next tick
                log.exception("claiming from the shared queue failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)

    async def _claim_free_slots(self) -> None:
        while len(self.workers) < self.concurrency and not self._stopping.is_set():
            async with self.db.transaction() as tx:
                # The clock is read once the write lock is held: a lease computed before a long
                # wait for it could be written already run out, and be taken over at once.
                now = self.clock()
                claimed = await claims.claim_next(tx, self.owner, now, self.lease, self.concurrency)
            if claimed is None:
                return
            self.scheduler.remove(claimed.job_id)
            self.scheduler.running[claimed.user_id] = (
                self.scheduler.running.get(claimed.user_id, 0) + 1
            )
            self._spawn(claimed.job_id, claimed.user_id)

    async def _adopt(self, held: claims.Claimed) -> None:
        """Run a job this process now holds from wherever it was stored."""
        if held.job_id in self.workers:
            return
        if held.state == JobState.SUBMITTING:
            # Its owner died inside the submit window: the POST's answer was never stored.
            async with self.db.transaction(serial=False) as tx:
                await jobs_repo.transition(
                    tx,
                    held.job_id,
                    [JobState.SUBMITTING],
                    JobState.UNSURE,
                    submit_window_end=self.clock(),
                )
            log.warning("job=%s taken over inside the submit window; looking at fal", held.job_id)
        else:
            log.info("job=%s taken over in state %s", held.job_id, held.state)
        self.scheduler.remove(held.job_id)
        self.scheduler.running[held.user_id] = self.scheduler.running.get(held.user_id, 0) + 1
        self._spawn(held.job_id, held.user_id)

    def _spawn(self, job_id: int, user_id: int) -> None:
        super()._spawn(job_id, user_id)
        # A freed slot is everyone's: when this run ends, wake the other processes too.
        self.workers[job_id].add_done_callback(lambda _: self._tell_others())

    def _cancel_asked(self, payload: str) -> None:
        """A cancel asked in another process for a job that may run here: the run sees it in
        ``cancel_requests`` at its next step (the stored flag covers a lost notification)."""
        if payload.isdigit() and int(payload) in self.workers:
            self.cancel_requests.add(int(payload))

    # -- heartbeat ---------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.beat()
            except Exception:  # the database is away: the next beat tries again
                log.exception("heartbeat failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.tick)

    async def beat(self) -> None:
        """Renew leases, learn remote cancels, stop runs taken from us, take over the dead's,
        and refresh the queue mirror."""
        async with self.db.transaction(serial=False) as tx:
            await claims.renew(tx, self.owner, self.clock() + self.lease)
        running = list(self.workers)
        if running:
            for job_id, owner, cancel in await claims.ownership(self.db, running):
                if cancel:
                    self.cancel_requests.add(job_id)
                if owner != self.owner and job_id in self.workers:
                    log.warning("job=%s was taken over by %s; stopping this run", job_id, owner)
                    self.workers[job_id].cancel()
        free = self.concurrency - len(self.workers)
        if free > 0:
            async with self.db.transaction() as tx:
                taken = await claims.take_over(tx, self.owner, self.clock(), self.lease, free)
            for held in taken:
                await self._adopt(held)
        await self._refresh_mirror()

    async def _refresh_mirror(self) -> None:
        mirror = FairScheduler()
        mirror.running = await claims.running_per_user(self.db)
        for job_id, user_id, guild_id, cap in await claims.waiting(self.db):
            mirror.add(job_id, user_id, guild_id, cap)
        self.scheduler = mirror

    def _tell_others(self) -> None:
        task = asyncio.get_running_loop().create_task(self._notify())
        self._notify_tasks.add(task)
        task.add_done_callback(self._notify_tasks.discard)

    async def _notify(self) -> None:
        try:
            await self.db.notify(WAKE_CHANNEL)
        except Exception:  # the others' tick claims it a little later instead
            log.warning("could not wake the other processes", exc_info=True)
