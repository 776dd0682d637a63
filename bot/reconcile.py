"""Reconciliation: does the ledger agree with what fal ran (and so billed) for this app?

fal's request list (``FalClient.list_requests``) is the only record of requests whose submit
answer was lost, so it is compared with the jobs Flexbot sent, over a period:

- an *orphan* is a request fal finished with no job recording its id (an ambiguous submit, or
  another program using the same key and app): fal billed it, nobody was charged;
- an *unlisted* job was charged but fal lists no such request;
- a *price difference* is a job whose charge rows differ from fal's price for its request.

fal's list carries no price: ``bot.reconcile_pricing`` prices a request from its payloads, and
``bot.reconcile_compare`` compares (pure). This module reads both sides for a period
(``reconcile``); ``PeriodicCheck`` runs the same check every ``reconcile_interval_minutes`` in the
bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.fal.client import FalClient
from bot.fal.errors import FalError, FalRequestListForbidden
from bot.metrics import Metrics
from bot.reconcile_compare import (
    MATCH_MARGIN,
    Orphan,
    PriceDifference,
    ReconcileReport,
    compare,
)
from bot.reconcile_pricing import FalPrice, Pricing, Size, price_request
from bot.settings import Settings
from bot.store import reconcile as store
from bot.store.db import Database

__all__ = [
    "KEY_SCOPE_FIX",
    "MATCH_MARGIN",
    "CheckSummary",
    "FalPrice",
    "Orphan",
    "PeriodicCheck",
    "PriceDifference",
    "Pricing",
    "ReconcileReport",
    "Size",
    "compare",
    "price_request",
    "reconcile",
]

log = logging.getLogger(__name__)

#: A short, explicit "what to do" for a key that cannot read the list.
KEY_SCOPE_FIX = (
    "create a key at https://fal.ai/dashboard/keys that can read fal's Platform API request "
    "list (an ADMIN-scope key can; fal's page for the list asks for a user or enterprise API "
    "key) and set FAL_KEY to it"
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


class PeriodicCheck:
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
                async with self.db.exclusive("reconcile") as mine:
                    if mine:  # one process at a time checks for the whole bot
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
