"""A run's step after fal completed the job: the output fetched, stored and charged, or, when fal
billed a result that cannot be had, booked as lost at what fal billed (DESIGN §3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.engine import lost_result
from bot.engine.run_context import RunContext
from bot.errors import UserError
from bot.fal.client import EditResult, OutputImage
from bot.fal.errors import FalError, FalResultGoneError
from bot.images import image_size
from bot.model import Job

log = logging.getLogger(__name__)

#: Rounds of ``result`` calls (each with the client's own retries) before a result fal
#: completed is booked as lost.
RESULT_ATTEMPTS = 3


async def fetch(ctx: RunContext, job: Job, *, cancelled: bool, timed_out: bool) -> Job | None:
    """Download the output, store it and charge its actual price.

    A result fal no longer has (``FalResultGoneError``), or an output that cannot be had
    after fal answered with it, was still billed by fal: ``lost`` books it."""
    result = await _result(ctx, job, cancelled=cancelled, timed_out=timed_out)
    if result is None:
        return None
    output = result.images[0] if result.images else None
    try:
        if output is None:
            raise FalError("fal returned no image")
        data = await ctx.fal.download(output.url, ctx.settings.max_output_bytes)
        width, height = image_size(data)
    except (FalError, UserError, ValueError, OSError) as exc:
        if isinstance(exc, FalError):
            ctx.count_fal_error(exc)
        log.warning("job=%s output could not be had: %s", job.id, exc)
        await lost(ctx, job, output, cancelled=cancelled, timed_out=timed_out)
        return None
    inputs = await ctx.inputs.rows(job.input_hashes, job.id)
    cost = ctx.prices.quote([(i.width, i.height) for i in inputs], (width, height)).micros
    content_type = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    sha = await ctx.inputs.store(data, width, height, content_type)
    won = await ctx.settlement.fetched(
        job,
        output_hash=sha,
        size=(width, height),
        seed=result.seed,
        cost=cost,
        nsfw_flagged=result.flagged,
    )
    if not won:
        return None
    if job.started_at:
        took = ctx.clock() - job.started_at
        ctx.metrics.fal_job_seconds.observe(took)
        ctx.record_duration(took)
    log.info(
        "job=%s fetched output=%s cost=%s seed=%s flagged=%s",
        job.id,
        sha[:12],
        cost,
        result.seed,
        result.flagged,
    )
    return await ctx.job(job.id)


async def _result(
    ctx: RunContext, job: Job, *, cancelled: bool, timed_out: bool
) -> EditResult | None:
    """fal's answer for the completed job; None when the job was ended here or is left, still
    running, for after the restart."""
    rid = job.fal_request_id
    assert rid is not None
    for attempt in range(1, RESULT_ATTEMPTS + 1):
        try:
            return await ctx.fal.result(rid)
        except FalResultGoneError as exc:
            ctx.count_fal_error(exc)
            await lost(ctx, job, None, cancelled=cancelled, timed_out=timed_out)
            return None
        except FalError as exc:
            ctx.count_fal_error(exc)
            if exc.retryable and attempt < RESULT_ATTEMPTS and not ctx.stopping.is_set():
                # The result is kept at fal for a while: try again rather than lose it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        ctx.stopping.wait(), ctx.settings.poll_max_interval_seconds
                    )
                continue
            if ctx.stopping.is_set() and exc.retryable:
                return None  # still running: fetched after the restart
            if exc.retryable:
                # fal said COMPLETED, so it ran and billed the job; its result would not come.
                await lost(ctx, job, None, cancelled=cancelled, timed_out=timed_out)
                return None
            await ctx.ended_without_result(job, exc.user_message, cancelled, timed_out)
            return None
    raise AssertionError("unreachable: the last attempt returns")


async def lost(
    ctx: RunContext, job: Job, output: OutputImage | None, *, cancelled: bool, timed_out: bool
) -> None:
    """fal finished the job but its result cannot be had: book what fal billed."""
    assert job.fal_request_id is not None
    record = await lost_result.fal_record(ctx.fal, job.fal_request_id)
    if record is not None and record.outcome not in (None, "success"):
        # fal's list says the request did not succeed (cancelled, refused): not billed.
        await ctx.ended_without_result(
            job, "fal could not make this edit; nothing was charged.", cancelled, timed_out
        )
        return
    inputs = await ctx.inputs.rows(job.input_hashes, job.id)
    sizes = [(i.width, i.height) for i in inputs]
    size = lost_result.output_size(record, output, job.params, sizes, ctx.prices)
    cost = ctx.prices.quote(sizes, size).micros
    ctx.metrics.fal_results_lost.inc()
    won = await ctx.settlement.lost(job, cost, lost_result.LOST_NOTICE)
    if won:
        log.warning(
            "job=%s result lost at fal request=%s: charged %s (what fal billed)",
            job.id,
            job.fal_request_id,
            cost,
        )
