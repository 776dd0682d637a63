"""What happens to stored jobs when the engine starts again (DESIGN §3).

Queued jobs go back into the fair queue. Jobs already past it resume their run: ``running`` ones
read fal's status first and follow their stored request id (never a second submit), ``fetched``
ones are delivered, and ``submitting`` ones (a crash inside the submit window: fal may have the
job) become ``unsure`` and are looked up in fal's request list before anything is sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.engine import quota
from bot.engine.dispatch import Dispatcher
from bot.model import JobState, Requester
from bot.store import jobs as jobs_repo
from bot.store.db import Database

log = logging.getLogger(__name__)

RESUMED = (JobState.UNSURE, JobState.RUNNING, JobState.FETCHED)


async def recover(
    db: Database,
    dispatcher: Dispatcher,
    limits_for: Callable[[Requester], Awaitable[quota.Limits]],
    clock: Callable[[], float],
) -> None:
    """Queue the stored queued jobs and resume the runs of those past the queue."""
    for job in await jobs_repo.jobs_in_states(db, [JobState.QUEUED]):
        if job.id not in dispatcher.scheduler:  # submitted before start()
            limits = await limits_for(job.requester)
            dispatcher.queue(job.id, job.user_id, job.guild_id, limits["user_max_running"])
    for job in await jobs_repo.jobs_in_states(db, [JobState.SUBMITTING]):
        # The POST's answer (if it was sent) never got stored: the window closes now at latest.
        async with db.transaction(serial=False) as tx:
            await jobs_repo.transition(
                tx, job.id, [JobState.SUBMITTING], JobState.UNSURE, submit_window_end=clock()
            )
        log.warning("job=%s crashed inside the submit window; looking for it at fal", job.id)
    for job in await jobs_repo.jobs_in_states(db, list(RESUMED)):
        log.info("job=%s resuming in state %s", job.id, job.state)
        dispatcher.resume(job.id, job.user_id)
