"""What happens to stored jobs when the engine starts again (DESIGN §3).

Queued jobs go back into the fair queue. Jobs already past it resume their run: ``running`` ones
poll their stored request id (never a second submit), ``fetched`` ones are delivered, and
``submitting`` ones (a crash between the POST and storing the id) are resubmitted once.
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

RESUMED = (JobState.SUBMITTING, JobState.RUNNING, JobState.FETCHED)


async def recover(
    db: Database,
    dispatcher: Dispatcher,
    limits_for: Callable[[Requester], Awaitable[quota.Limits]],
) -> None:
    """Queue the stored queued jobs and resume the runs of those past the queue."""
    for job in await jobs_repo.jobs_in_states(db, [JobState.QUEUED]):
        if job.id not in dispatcher.scheduler:  # submitted before start()
            limits = await limits_for(job.requester)
            dispatcher.queue(job.id, job.user_id, job.guild_id, limits["user_max_running"])
    for job in await jobs_repo.jobs_in_states(db, list(RESUMED)):
        log.info("job=%s resuming in state %s", job.id, job.state)
        dispatcher.resume(job.id, job.user_id)
