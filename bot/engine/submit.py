"""A run's first step: a queued job sent to fal, or an ``unsure`` one looked up, sent again once
or ended (DESIGN §3). Each change is stored before the next step."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import replace
from typing import Any

from bot.engine.reconcile import Verdict
from bot.engine.run_context import RunContext
from bot.errors import UserError
from bot.fal.errors import FalError, FalSubmitAmbiguous
from bot.i18n import Text
from bot.model import Job, JobState
from bot.store import jobs as jobs_repo

log = logging.getLogger(__name__)

#: Seeds Flexbot picks when the member gave none: fal's own range for a random seed.
SEED_RANGE = 2**32
SUBMIT_STATES = (JobState.QUEUED, JobState.UNSURE, JobState.SUBMITTING)
#: Why a queued job failed at dispatch; ``{refusal}`` is the cap's own refusal, nested.
BUDGET_RAN_OUT = (
    "Your budget ran out while this edit was waiting (earlier edits cost more than estimated); "
    "nothing was charged. {refusal}"
)


async def submit(ctx: RunContext, job: Job) -> Job | None:
    """Send a queued job to fal, or send again an ``unsure`` one fal surely never got.

    ``submitting`` and the exact arguments (with the seed Flexbot picked) are stored before
    the POST. A lost answer leaves the job ``unsure`` (fal may be running it), to be looked
    up in fal's request list; it is never failed or sent again on the spot."""
    fail = ctx.settlement.fail
    try:
        urls = [await ctx.inputs.fal_url_for(sha) for sha in job.input_hashes]
    except UserError as exc:
        await fail(job, SUBMIT_STATES, str(exc))
        return None
    except FalError as exc:
        ctx.count_fal_error(exc)
        await fail(job, SUBMIT_STATES, exc.user_message)
        return None
    arguments = await _mark_submitting(ctx, job, urls)
    if arguments is None:
        return None
    if job.state == JobState.UNSURE:
        log.warning("job=%s sending again: fal's request list does not show it", job.id)
    try:
        request_id = await ctx.fal.submit(arguments)
    except FalSubmitAmbiguous as exc:
        ctx.count_fal_error(exc)
        return await _unsure(ctx, job, exc)
    except FalError as exc:  # fal refused it, or it never got there
        ctx.count_fal_error(exc)
        await fail(job, [JobState.SUBMITTING], exc.user_message)
        return None
    async with ctx.db.transaction(serial=False) as tx:
        await jobs_repo.transition(
            tx,
            job.id,
            [JobState.SUBMITTING],
            JobState.RUNNING,
            fal_request_id=request_id,
            fal_seen_at=ctx.clock(),  # fal accepted it: queued at fal from now
        )
    await ctx.on_change(None)
    log.info("job=%s running at fal request=%s", job.id, request_id)
    return await ctx.job(job.id)


async def _unsure(ctx: RunContext, job: Job, exc: FalSubmitAmbiguous) -> Job | None:
    """The submit's answer was lost: fal may be running (and billing) the job."""
    ctx.metrics.fal_submits_unsure.labels(exc.cause).inc()
    async with ctx.db.transaction(serial=False) as tx:
        await jobs_repo.transition(
            tx,
            job.id,
            [JobState.SUBMITTING],
            JobState.UNSURE,
            submit_window_end=ctx.clock(),
            fal_request_hint=exc.request_id,
        )
    await ctx.on_change(None)
    log.warning(
        "job=%s submit answer lost (%s, request_id=%s); looking for it at fal",
        job.id,
        exc.cause,
        exc.request_id,
    )
    return await ctx.job(job.id)


async def _mark_submitting(ctx: RunContext, job: Job, urls: list[str]) -> dict[str, Any] | None:
    """Store ``submitting``, the seed and the exact arguments before the POST; returns the
    arguments, or None when the job must not be sent.

    The budget check and the transition share one transaction, so what was checked is what
    the job starts against (a job sent again was checked the first time).
    """
    params = job.params
    if params.seed is None:
        # Flexbot picks the seed, stored before the POST: a rerun is exact, and the request
        # can be recognised in fal's request list if the submit's answer is lost.
        params = replace(params, seed=secrets.randbelow(SEED_RANGE))
    arguments = params.to_fal_input(urls)
    resend = job.state == JobState.UNSURE
    # The limits are admin-set: read before the write lock, which is held for the money only.
    limits = None if resend else await ctx.limits_for(job.requester)
    async with ctx.db.transaction() as tx:
        over = None if limits is None else await ctx.budget_at_dispatch(job, tx, limits)
        if over is None:
            now = ctx.clock()
            won = await jobs_repo.transition(  # False: cancelled meanwhile
                tx,
                job.id,
                [job.state],
                JobState.SUBMITTING,
                submit_attempts=job.submit_attempts + 1,
                started_at=job.started_at or now,
                params=params.to_json(),
                seed=params.seed,
                fal_input=json.dumps(arguments, sort_keys=True),
                submit_window_start=now,
                submit_window_end=None,
                fal_request_hint=None,
            )
            return arguments if won else None
    reason = Text(BUDGET_RAN_OUT, {"refusal": Text(over.template, over.params)})
    await ctx.settlement.fail(job, [JobState.QUEUED], reason)
    return None


async def reconcile(ctx: RunContext, job: Job) -> Job | None:
    """A job fal may have: adopt its request, send it again once, or end it."""
    verdict = await ctx.reconciler.settle(job, ctx.cancel_requests)
    if verdict == Verdict.ADOPTED:
        await ctx.on_change(None)
        return await ctx.job(job.id)
    if verdict not in (Verdict.RESUBMIT, Verdict.GIVE_UP):
        return None  # stopping (looked up again after the restart), or moved meanwhile
    job = await ctx.job(job.id)
    if job.state != JobState.UNSURE:
        return job
    cancelled = job.cancel_requested or job.id in ctx.cancel_requests
    if verdict == Verdict.RESUBMIT and not cancelled:
        ctx.metrics.fal_unsure_resolved.labels("resubmitted").inc()
        return await submit(ctx, job)
    if cancelled:
        ctx.metrics.fal_unsure_resolved.labels("cancelled").inc()
        await ctx.cancelled(job)
        return None
    ctx.metrics.fal_unsure_resolved.labels("failed").inc()
    reason = (
        "Flexbot could not get this edit to fal after two tries (the answers were lost "
        "on the way); nothing was charged. Please try again."
    )
    await ctx.settlement.fail(job, [JobState.UNSURE], reason)
    return None
