"""The comparison of one period's jobs with fal's request list (pure; ``bot.reconcile`` reads
both and explains the terms).

Requests near the period's edges are matched against jobs (and the other way round) over an extra
hour on each side, so a job queued before midnight and sent after it is not reported twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.fal.client import RequestRecord
from bot.reconcile_pricing import FalPrice, Pricing, Size, price_request
from bot.store import reconcile as store

#: Jobs and requests this far outside the period still match one inside it (clock skew, queueing).
MATCH_MARGIN = timedelta(hours=1)
#: Job states whose submit the engine may still be looking up in fal's list (``bot.engine``).
_RESOLVING = frozenset({"submitting", "unsure"})


@dataclass(frozen=True, slots=True)
class Orphan:
    """A request fal finished and billed that no job records."""

    request_id: str
    sent_at: datetime | None
    price: FalPrice
    maybe_job_id: int | None  # a job with the same prompt and seed whose submit went unanswered


@dataclass(frozen=True, slots=True)
class PriceDifference:
    """A job whose charge differs from fal's price for its request."""

    job: store.SentJob
    fal: FalPrice


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The comparison of one period; ``ok`` when nothing differs."""

    start: datetime
    end: datetime
    orphans: tuple[Orphan, ...]
    unlisted: tuple[store.SentJob, ...]  # charged, and fal has no record of the request
    price_differences: tuple[PriceDifference, ...]
    matched: int
    running: int  # requests fal has not finished, or the engine is still looking up: judged later
    unbilled_orphans: int  # requests with no job that fal failed (not billed: no money moved)
    ledger_micros: int  # charged for the period's jobs (refunds are the bot's own choice)
    fal_micros: int  # fal's price of the period's finished requests (upper bound if assumed)
    fal_requests: int

    @property
    def differences(self) -> int:
        return len(self.orphans) + len(self.unlisted) + len(self.price_differences)

    @property
    def ok(self) -> bool:
        return self.differences == 0


@dataclass(frozen=True, slots=True)
class _Period:
    """``[lo, hi)`` in Unix time: what is judged; the margins around it only match."""

    lo: float
    hi: float

    def has_record(self, r: RequestRecord) -> bool:
        return r.sent_at is None or self.lo <= r.sent_at.timestamp() < self.hi

    def has_job(self, j: store.SentJob) -> bool:
        return self.lo <= j.sent_at < self.hi


@dataclass(slots=True)
class _Tally:
    """The requests judged so far, by verdict."""

    orphans: list[Orphan] = field(default_factory=list)
    differences: list[PriceDifference] = field(default_factory=list)
    matched: int = 0
    running: int = 0
    unbilled: int = 0
    fal_micros: int = 0


def compare(
    jobs: Sequence[store.SentJob],
    records: Sequence[RequestRecord],
    *,
    start: datetime,
    end: datetime,
    pricing: Pricing,
    input_sizes: Mapping[str, Size],
) -> ReconcileReport:
    """Compare jobs and fal's records (both fetched with ``MATCH_MARGIN`` around the period).

    A request is judged when fal received it within ``[start, end)``; a job when Flexbot sent it
    within it; a matched pair when either is. ``input_sizes``: image sizes by sha256."""
    period = _Period(start.timestamp(), end.timestamp())
    tally = _judge_records(jobs, records, period, pricing, input_sizes)
    return ReconcileReport(
        start=start,
        end=end,
        orphans=tuple(tally.orphans),
        unlisted=_unlisted(jobs, records, period),
        price_differences=tuple(tally.differences),
        matched=tally.matched,
        running=tally.running,
        unbilled_orphans=tally.unbilled,
        ledger_micros=sum(j.charged_micros for j in jobs if period.has_job(j)),
        fal_micros=tally.fal_micros,
        fal_requests=sum(1 for r in records if period.has_record(r)),
    )


def _judge_records(
    jobs: Sequence[store.SentJob],
    records: Sequence[RequestRecord],
    period: _Period,
    pricing: Pricing,
    input_sizes: Mapping[str, Size],
) -> _Tally:
    """Price each request the period judges (or whose job it judges) and give it a verdict."""
    by_id = {j.fal_request_id: j for j in jobs if j.fal_request_id}
    unsent = [j for j in jobs if not j.fal_request_id]
    resolving = [j for j in unsent if j.state in _RESOLVING]
    tally = _Tally()
    for record in records:
        job = by_id.get(record.request_id)
        if not (period.has_record(record) or (job is not None and period.has_job(job))):
            continue
        own = [input_sizes.get(h) for h in job.input_hashes] if job else []
        price = price_request(record, pricing, own)
        if period.has_record(record) and price.micros:
            tally.fal_micros += price.micros
        _judge(tally, record, job, price, unsent, resolving)
    return tally


def _judge(
    tally: _Tally,
    record: RequestRecord,
    job: store.SentJob | None,
    price: FalPrice,
    unsent: Sequence[store.SentJob],
    resolving: Sequence[store.SentJob],
) -> None:
    """Count one request: still running, unbilled, an orphan, a price difference or a match."""
    if price.micros is None and record.outcome is None:
        tally.running += 1
    elif job is None and price.micros == 0:
        tally.unbilled += 1
    elif job is None and _maybe_job(record, resolving) is not None:
        tally.running += 1  # the engine is still looking this submit up: judged next time
    elif job is None:
        hint = _maybe_job(record, unsent)
        tally.orphans.append(Orphan(record.request_id, record.sent_at, price, hint))
    elif price.micros != job.charged_micros:
        tally.differences.append(PriceDifference(job, price))
    else:
        tally.matched += 1


def _maybe_job(record: RequestRecord, unsent: Sequence[store.SentJob]) -> int | None:
    """A job without a request id sent with this request's prompt and seed, if exactly one."""
    body = record.json_input or {}
    seed, prompt = body.get("seed"), body.get("prompt")
    if seed is None or prompt is None:
        return None
    same = [j.job_id for j in unsent if j.seed == seed and j.prompt == prompt]
    return same[0] if len(same) == 1 else None


def _unlisted(
    jobs: Sequence[store.SentJob], records: Sequence[RequestRecord], period: _Period
) -> tuple[store.SentJob, ...]:
    """The period's charged jobs whose request id fal does not list."""
    listed = {r.request_id for r in records}
    return tuple(
        j
        for j in jobs
        if j.fal_request_id
        and j.fal_request_id not in listed
        and period.has_job(j)
        and j.charged_micros
    )
