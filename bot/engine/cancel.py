"""Cancelling a job: at once while queued, at fal while running; finished work is kept.

Only its requester or a moderator of its server may, from where the job is visible
(``bot.visibility``); a job not visible from there is ``not_found``, like a missing one.
"""

from __future__ import annotations

import logging

from bot.engine.scheduler import FairScheduler
from bot.engine.settlement import Settlement
from bot.engine.shared_dispatch import CANCEL_CHANNEL
from bot.errors import NoSuchJob
from bot.i18n import ENGLISH, Text, translate
from bot.model import CancelOutcome, CancelResult, JobState, Requester
from bot.store import jobs as jobs_repo
from bot.store.db import Database
from bot.visibility import may_manage, visible

log = logging.getLogger(__name__)

ACTIVE_FAL = (JobState.SUBMITTING, JobState.UNSURE, JobState.RUNNING)
NOT_YOURS = "Only the member who asked for it or a moderator can cancel this job."
CANCELLED = "Job #{job} cancelled; nothing was charged."
CANCELLING = (
    "Cancelling job #{job} at fal. If it had already finished, you will still get (and pay for) it."
)
ENDED = "Job #{job} has already ended ({state})."


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
        missing = NoSuchJob(job_id)
        return CancelResult(
            job_id, CancelOutcome.NOT_FOUND, str(missing), missing.template, dict(missing.params)
        )
    if not may_manage(job, who):
        return _result(job_id, CancelOutcome.NOT_ALLOWED, NOT_YOURS)
    caller_id = who.user_id
    if job.state == JobState.QUEUED:
        # The member hears it from this answer, so no Delivery.failed notice.
        ended = await settlement.end_job(job, [JobState.QUEUED], JobState.CANCELLED, "cancelled")
        if ended:
            scheduler.remove(job_id)
            log.info("job=%s cancelled while queued by %s", job_id, caller_id)
            return _result(job_id, CancelOutcome.CANCELLED, CANCELLED)
        job = await jobs_repo.get_job(db, job_id) or job
    if job.state in ACTIVE_FAL:
        async with db.transaction(serial=False) as tx:
            await jobs_repo.update_job(tx, job_id, cancel_requested=1)
        cancel_requests.add(job_id)
        try:  # the run may be another process's: tell it now rather than at its next heartbeat
            await db.notify(CANCEL_CHANNEL, str(job_id))
        except Exception:  # the stored flag reaches it with the heartbeat instead
            log.warning("job=%s could not tell the other processes of the cancel", job_id)
        log.info("job=%s cancel requested by %s", job_id, caller_id)
        return _result(job_id, CancelOutcome.CANCELLING, CANCELLING)
    return _result(job_id, CancelOutcome.FINISHED, ENDED, state=Text(job.state.value))


def _result(job_id: int, outcome: CancelOutcome, template: str, **params: object) -> CancelResult:
    params = {"job": job_id, **params}
    return CancelResult(job_id, outcome, translate(ENGLISH, template, **params), template, params)
