"""Starting job runs: at most ``fal_concurrency`` at once, in the fair scheduler's order.

The dispatcher owns the worker tasks, the wake-up event and this process's cancel requests. A run
that crashes (a bug, not a fal or Discord failure) leaves its job in its stored state, so it
resumes on the next start rather than being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.engine.runner import JobRun, RunContext
from bot.engine.scheduler import FairScheduler
from bot.logs import bind

log = logging.getLogger(__name__)


class Dispatcher:
    """Spawns a worker per picked job and wakes when a job is queued or a worker ends."""

    def __init__(self, scheduler: FairScheduler, concurrency: int, stopping: asyncio.Event) -> None:
        self.scheduler = scheduler
        self.concurrency = concurrency
        #: Running workers by job id.
        self.workers: dict[int, asyncio.Task[None]] = {}
        #: Ids of jobs whose cancel was asked in this process (the stored flag covers restarts).
        self.cancel_requests: set[int] = set()
        #: What every run uses; set before the first spawn (``Engine.start``).
        self.context: RunContext | None = None
        self._stopping = stopping
        self._wake = asyncio.Event()
        self._job_user: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """True while the dispatch loop runs."""
        return self._task is not None and not self._task.done()

    def queue(
        self, job_id: int, user_id: int, guild_id: int | None, max_running: int | None
    ) -> None:
        """Make an admitted job dispatchable (once: start() may have found it in the table)."""
        if job_id not in self.scheduler:
            self.scheduler.add(job_id, user_id, guild_id, max_running)
            self._job_user[job_id] = user_id
        self._wake.set()

    def resume(self, job_id: int, user_id: int) -> None:
        """Restart the run of a job that was already past the queue (it holds a running slot)."""
        self.scheduler.running[user_id] = self.scheduler.running.get(user_id, 0) + 1
        self._spawn(job_id, user_id)

    def start(self) -> None:
        """Start the dispatch loop (after ``context`` is set and stored jobs are recovered)."""
        self._task = asyncio.create_task(self._loop(), name="engine-dispatch")

    async def stop_loop(self) -> None:
        """Stop picking jobs (the stopping event is already set); workers keep running."""
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def drain(self, timeout: float) -> None:
        """Let workers reach a stored state within ``timeout``; cancel the rest."""
        workers = list(self.workers.values())
        if workers:
            # Runs check the stopping event between steps and return at the next stored state.
            _, pending = await asyncio.wait(workers, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
                log.warning("shutdown: %d job(s) interrupted mid-step", len(pending))

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            while len(self.workers) < self.concurrency:
                job_id = self.scheduler.pick()
                if job_id is None:
                    break
                self._spawn(job_id, self._job_user[job_id])
            await self._wake.wait()

    def _spawn(self, job_id: int, user_id: int) -> None:
        task = asyncio.create_task(self._run(job_id, user_id), name=f"job-{job_id}")
        self.workers[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self.workers.pop(job_id, None)
            self._job_user.pop(job_id, None)
            self.cancel_requests.discard(job_id)  # the stored flag outlives this process
            self.scheduler.finished(user_id)
            self._wake.set()

        task.add_done_callback(done)

    async def _run(self, job_id: int, user_id: int) -> None:
        assert self.context is not None  # set by Engine.start, before any spawn
        try:
            with bind(job_id=job_id, user_id=user_id):
                await JobRun(self.context, job_id).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a fal or Discord failure: keep the job where it is (it resumes on the
            # next start) rather than lose it, and say so loudly.
            log.exception("job=%s worker crashed; it will resume after a restart", job_id)
