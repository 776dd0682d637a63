"""Cancelling a job: at once while queued, at fal while running; finished work is kept.

Only its requester or a moderator of its server may, from where the job is visible
(``bot.visibility``); a job not visible from there is ``not_found``, like a missing one.
"""

from __future__ import annotations

import logging

from bot.engine.scheduler import FairScheduler
from bot.engine.settlement import Settlement
from bot.errors import NoSuchJob
from bot.model import CancelOutcome, CancelResult, JobState, Requester
from bot.store import jobs as jobs_repo
from bot.store.db import Database
from bot.visibility import may_manage, visible

log = logging.getLogger(__name__)

ACTIVE_FAL = (JobState.SUBMITTING, JobState.UNSURE, JobState.RUNNING)


async def cancel_job(
    job_id: int,
    who: Requester,
    *,
    db: Database,
    settlement: Settlement,
    scheduler: FairScheduler,
    cancel_requests: set[int],
) -> CancelResult:
    """Cancel ``job_id`` for ``who``; a running job's run sees it in ``cancel_requests``."""
    job = await jobs_repo.get_job(db, job_id)
    if job is None or not visible(job, who):
        return CancelResult(job_id, CancelOutcome.NOT_FOUND, str(NoSuchJob(job_id)))
    if not may_manage(job, who):
        return CancelResult(
            job_id,
            CancelOutcome.NOT_ALLOWED,
            "Only the member who asked for it or a moderator can cancel this job.",
        )
    caller_id = who.user_id
    if job.state == JobState.QUEUED:
        # The member hears it from this answer, so no Delivery.failed notice.
        ended = await settlement.end_job(job, [JobState.QUEUED], JobState.CANCELLED, "cancelled")
        if ended:
            scheduler.remove(job_id)
            log.info("job=%s cancelled while queued by %s", job_id, caller_id)
            return CancelResult(
                job_id,
                CancelOutcome.CANCELLED,
                f"Job #{job_id} cancelled; nothing was charged.",
            )
        job = await jobs_repo.get_job(db, job_id) or job
    if job.state in ACTIVE_FAL:
        async with db.transaction(serial=False) as tx:
            await jobs_repo.update_job(tx, job_id, cancel_requested=1)
        cancel_requests.add(job_id)
        log.info("job=%s cancel requested by %s", job_id, caller_id)
        return CancelResult(
            job_id,
            CancelOutcome.CANCELLING,
            f"Cancelling job #{job_id} at fal. If it "
            "had already finished, you will still get (and pay for) it.",
        )
    return CancelResult(
        job_id, CancelOutcome.FINISHED, f"Job #{job_id} has already ended ({job.state})."
    )
