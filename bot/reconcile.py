"""Reconciliation: does the ledger agree with what fal ran (and so billed) for this app?

fal's request list (``FalClient.list_requests``) is the only record of requests whose submit
answer was lost, so it is compared with the jobs Flexbot sent, over a period:

- an *orphan* is a request fal finished with no job recording its id (an ambiguous submit, or
  another program using the same key and app): fal billed it, nobody was charged;
- an *unlisted* job was charged but fal lists no such request;
- a *price difference* is a job whose charge rows differ from fal's price for its request.

fal's list carries no price, so a request is priced here from its payloads, as fal prices this
endpoint and as ``bot.pricing`` quotes it: every input and the output per started megapixel. The
output size is in ``json_output``; the inputs are URLs, so their sizes come from our blobs (by the
job's own inputs, or by fal storage URL). An input we do not know is assumed to be one of our
uploads, at most ``max_input_megapixels`` (the price is then an upper bound, and says so).
Only 2xx results are billed (fal: "Server errors (HTTP 500+) are never charged"; a 4xx is taken as
unbilled too, which fal says "may" not hold for a 422 that used GPU time).

Requests near the period's edges are matched against jobs (and the other way round) over an extra
hour on each side, so a job queued before midnight and sent after it is not reported twice.
``Reconciler`` runs the same check every ``reconcile_interval_minutes`` in the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.fal.client import FalClient, RequestRecord
from bot.fal.errors import FalError, FalRequestListForbidden
from bot.metrics import Metrics
from bot.model import PRESET_SIZES
from bot.pricing import PriceList
from bot.settings import Settings
from bot.store import reconcile as store
from bot.store.db import Database

log = logging.getLogger(__name__)

#: Jobs and requests this far outside the period still match one inside it (clock skew, queueing).
MATCH_MARGIN = timedelta(hours=1)
#: A short, explicit "what to do" for a key that cannot read the list.
KEY_SCOPE_FIX = (
    "create a key at https://fal.ai/dashboard/keys that can read fal's Platform API request "
    "list (an ADMIN-scope key can; fal's page for the list asks for a user or enterprise API "
    "key) and set FAL_KEY to it"
)

Size = tuple[int, int]
#: Job states whose submit the engine may still be looking up in fal's list (``bot.engine``).
_RESOLVING = frozenset({"submitting", "unsure"})


@dataclass(frozen=True, slots=True)
class FalPrice:
    """What fal billed for one request, as priced from its payloads; None when it cannot say."""

    micros: int | None
    assumed: str = ""  # what the price rests on beyond fal's record, for people


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
class Pricing:
    """How to price a request from fal's list: the operator's prices and what we know of inputs."""

    prices: PriceList
    max_input_megapixels: float
    sizes_by_url: Mapping[str, Size] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, sizes_by_url: Mapping[str, Size]) -> Pricing:
        return cls(PriceList.from_settings(settings), settings.max_input_megapixels, sizes_by_url)


# -- pricing one request ------------------------------------------------------------------------


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _size(value: Any) -> Size | None:
    """``{"width": w, "height": h}`` as (w, h); None for anything else."""
    if not isinstance(value, dict):
        return None
    width, height = _positive(value.get("width")), _positive(value.get("height"))
    return (width, height) if width and height else None


def _output_sizes(record: RequestRecord) -> list[Size]:
    output = record.json_output
    images = output.get("images") if isinstance(output, dict) else None
    sizes = [_size(image) for image in images] if isinstance(images, list) else []
    return [s for s in sizes if s is not None]


def price_request(
    record: RequestRecord, pricing: Pricing, own_inputs: Sequence[Size | None] = ()
) -> FalPrice:
    """fal's price for ``record``: 0 unless it succeeded; None while running or unknowable.

    ``own_inputs``: the sizes of the job's inputs in order (None: unknown), when it is ours."""
    if record.outcome is None:
        return FalPrice(None, "still running at fal")
    if record.outcome != "success":
        return FalPrice(0)
    urls = (record.json_input or {}).get("image_urls")
    if not isinstance(urls, list):
        return FalPrice(None, "fal listed no input")
    assumed: list[str] = []
    unit = pricing.prices.unit
    inputs: list[Size] = []
    for i, url in enumerate(urls):
        known = pricing.sizes_by_url.get(url) if isinstance(url, str) else None
        if known is None and i < len(own_inputs):
            known = own_inputs[i]
        if known is None:
            # Area as a 1-pixel-high strip: priced by area alone, like bot.engine.admission.
            known = (max(1, int(pricing.max_input_megapixels * unit)), 1)
            assumed.append(f"input {i + 1} at most {pricing.max_input_megapixels:g} MP")
        inputs.append(known)
    outputs = _output_sizes(record)
    if not outputs:
        requested = (record.json_input or {}).get("image_size")
        size = _size(requested)
        if size is None and isinstance(requested, str):
            size = PRESET_SIZES.get(requested)
        if size is None:
            limit = pricing.prices.max_output_megapixels
            size = (max(1, math.ceil(limit * unit)), 1)
            assumed.append(f"output at most {limit:g} MP (fal's record has no size)")
        outputs = [size]
    # The inputs are billed once per request, each output image on its own.
    micros = pricing.prices.quote(inputs, outputs[0]).micros
    micros += sum(pricing.prices.quote([], out).micros for out in outputs[1:])
    return FalPrice(micros, "; ".join(assumed))


# -- the comparison (pure) ----------------------------------------------------------------------


def _maybe_job(record: RequestRecord, unsent: Sequence[store.SentJob]) -> int | None:
    """A job without a request id sent with this request's prompt and seed, if exactly one."""
    body = record.json_input or {}
    seed, prompt = body.get("seed"), body.get("prompt")
    if seed is None or prompt is None:
        return None
    same = [j.job_id for j in unsent if j.seed == seed and j.prompt == prompt]
    return same[0] if len(same) == 1 else None


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
    lo, hi = start.timestamp(), end.timestamp()

    def judged_record(r: RequestRecord) -> bool:
        return r.sent_at is None or lo <= r.sent_at.timestamp() < hi

    def judged_job(j: store.SentJob) -> bool:
        return lo <= j.sent_at < hi

    by_id = {j.fal_request_id: j for j in jobs if j.fal_request_id}
    unsent = [j for j in jobs if not j.fal_request_id]
    resolving = [j for j in unsent if j.state in _RESOLVING]
    listed = {r.request_id for r in records}
    orphans: list[Orphan] = []
    differences: list[PriceDifference] = []
    matched = running = unbilled = fal_micros = 0
    for record in records:
        job = by_id.get(record.request_id)
        if not (judged_record(record) or (job is not None and judged_job(job))):
            continue
        own = [input_sizes.get(h) for h in job.input_hashes] if job else []
        price = price_request(record, pricing, own)
        if judged_record(record) and price.micros:
            fal_micros += price.micros
        if price.micros is None and record.outcome is None:
            running += 1
        elif job is None and price.micros == 0:
            unbilled += 1
        elif job is None and _maybe_job(record, resolving) is not None:
            running += 1  # the engine is still looking this submit up: judged next time
        elif job is None:
            hint = _maybe_job(record, unsent)
            orphans.append(Orphan(record.request_id, record.sent_at, price, hint))
        elif price.micros != job.charged_micros:
            differences.append(PriceDifference(job, price))
        else:
            matched += 1
    unlisted = tuple(
        j
        for j in jobs
        if j.fal_request_id
        and j.fal_request_id not in listed
        and judged_job(j)
        and j.charged_micros
    )
    return ReconcileReport(
        start=start,
        end=end,
        orphans=tuple(orphans),
        unlisted=unlisted,
        price_differences=tuple(differences),
        matched=matched,
        running=running,
        unbilled_orphans=unbilled,
        ledger_micros=sum(j.charged_micros for j in jobs if judged_job(j)),
        fal_micros=fal_micros,
        fal_requests=sum(1 for r in records if judged_record(r)),
    )


# -- the I/O around it --------------------------------------------------------------------------


async def reconcile(
    db: Database, fal: FalClient, settings: Settings, start: datetime, end: datetime
) -> ReconcileReport:
    """Read fal's list and the ledger for ``[start, end)`` and compare them.

    Raises ``FalRequestListForbidden`` when the key cannot read the list, ``FalError`` when fal
    cannot be reached."""
    records = await fal.list_requests(
        start=start - MATCH_MARGIN, end=end + MATCH_MARGIN, payloads=True
    )
    jobs = await store.jobs_sent_between(
        db, (start - MATCH_MARGIN).timestamp(), (end + MATCH_MARGIN).timestamp()
    )
    input_sizes = await store.image_sizes(db, (h for j in jobs for h in j.input_hashes))
    pricing = Pricing.from_settings(settings, await store.sizes_by_fal_url(db))
    return compare(jobs, records, start=start, end=end, pricing=pricing, input_sizes=input_sizes)


# -- the periodic check in the bot --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What ``/flexadmin report`` shows of the last check.

    The bot owner sees the whole bot (``bot_wide``); a server's admins see only their own
    server's jobs: orphans belong to no server, and other servers' counts are not theirs."""

    checked_at: float | None  # None: no check has finished yet
    start: datetime | None
    bot_wide: bool
    orphans: int
    unlisted: int
    price_differences: int
    matched: int
    orphan_micros: int
    failure: str | None  # why the last check could not run (owner only)

    @property
    def differences(self) -> int:
        return self.orphans + self.unlisted + self.price_differences


class Reconciler:
    """Runs ``reconcile`` over this UTC month so far every ``reconcile_interval_minutes``."""

    def __init__(
        self,
        db: Database,
        fal: FalClient,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.fal = fal
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.last: ReconcileReport | None = None
        self.last_at: float | None = None
        self.failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        #: Set after each periodic attempt, successful or not (for whoever waits on the first).
        self.checked = asyncio.Event()

    @property
    def interval(self) -> float:
        return self.settings.reconcile_interval_minutes * 60.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the periodic check (the first one at once); nothing when the interval is 0."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="flexbot-reconcile")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug or a database error: say so, and check again next time
                log.exception("reconcile: the check failed")
            self.checked.set()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> ReconcileReport | None:
        """One check of this month so far: metrics updated, one log line; None if it failed."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        try:
            report = await reconcile(self.db, self.fal, self.settings, start, now)
        except FalRequestListForbidden as exc:
            self._failed(f"fal refused the request list ({exc.status})")
            log.error(
                "reconcile: this fal key cannot read fal's request list (HTTP %s): ambiguous "
                "submits cannot be reconciled and what fal billed cannot be checked; %s",
                exc.status,
                KEY_SCOPE_FIX,
            )
            return None
        except FalError as exc:  # fal unreachable or answering nonsense: try again next time
            self._failed(f"fal could not be asked ({exc.user_message})")
            log.warning("reconcile: could not read fal's request list: %s", exc)
            return None
        self.last, self.last_at, self.failure = report, self.clock(), None
        self._record(report)
        level = logging.INFO if report.ok else logging.WARNING
        log.log(
            level,
            "reconcile %s..%s: %d matched, %d orphan(s) at fal (%s), %d charged job(s) fal has "
            "no record of, %d price difference(s); ledger %d micros, fal %d micros",
            f"{start:%Y-%m-%d}",
            f"{now:%Y-%m-%dT%H:%M}",
            report.matched,
            len(report.orphans),
            ", ".join(o.request_id for o in report.orphans[:5]) or "none",
            len(report.unlisted),
            len(report.price_differences),
            report.ledger_micros,
            report.fal_micros,
        )
        return report

    def _failed(self, reason: str) -> None:
        self.failure = reason
        self.metrics.reconcile_list_readable.set(0)

    def _record(self, report: ReconcileReport) -> None:
        m = self.metrics
        m.reconcile_list_readable.set(1)
        m.reconcile_orphans.set(len(report.orphans))
        m.reconcile_unlisted_jobs.set(len(report.unlisted))
        m.reconcile_price_differences.set(len(report.price_differences))
        m.reconcile_last_run.set(self.last_at or 0)

    def summary(self, guild_id: int | None) -> CheckSummary:
        """The last check for the bot owner (``guild_id`` None) or for one server's admins."""
        report = self.last
        if report is None:
            failure = self._failure_for(guild_id)
            return CheckSummary(None, None, guild_id is None, 0, 0, 0, 0, 0, failure)
        if guild_id is None:
            return CheckSummary(
                self.last_at,
                report.start,
                True,
                len(report.orphans),
                len(report.unlisted),
                len(report.price_differences),
                report.matched,
                sum(o.price.micros or 0 for o in report.orphans),
                self.failure,
            )
        return CheckSummary(
            self.last_at,
            report.start,
            False,
            0,
            sum(1 for j in report.unlisted if j.guild_id == guild_id),
            sum(1 for d in report.price_differences if d.job.guild_id == guild_id),
            0,
            0,
            self._failure_for(guild_id),
        )

    def _failure_for(self, guild_id: int | None) -> str | None:
        if self.failure is None or guild_id is None:
            return self.failure
        return "the last check could not run; the bot owner has the details"
