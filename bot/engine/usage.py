"""Usage queries for /usage and /flexadmin usage: spend, remaining budget, reports, CSV.

Spend is what members see against their caps: charged minus refunded plus still held, in the UTC
day or month their job was created (the same rule ``check_budget`` applies).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.engine import quota
from bot.engine.engine import Engine
from bot.model import MICROS_PER_USD, Job, JobState, Requester, UsagePeriod
from bot.store import jobs as jobs_repo
from bot.store import usage as usage_repo
from bot.store.db import Database
from bot.store.usage import Breakdown, Totals
from bot.visibility import visible

SERIES_DAYS = 30
PERIODS = tuple(UsagePeriod)
CSV_HEADER = (
    "job_id",
    "created_utc",
    "user_id",
    "guild_id",
    "channel_id",
    "state",
    "origin",
    "charged_usd",
    "held_usd",
    "amount_usd",
)


@dataclass(frozen=True, slots=True)
class CapLine:
    """One cap that applies to a member, how much of it is used and when it resets."""

    name: str
    label: str
    cap_micros: int | None  # None = unlimited
    spent_micros: int
    credit_micros: int
    resets_at: datetime
    source: quota.LimitSource

    @property
    def remaining_micros(self) -> int | None:
        if self.cap_micros is None:
            return None
        return max(0, self.cap_micros + self.credit_micros - self.spent_micros)


@dataclass(frozen=True, slots=True)
class MemberUsage:
    """What /usage shows one member."""

    today_micros: int
    month_micros: int
    credit_micros: int
    caps: tuple[CapLine, ...]
    queued: int
    running: int
    series: tuple[tuple[date, int], ...]
    recent: tuple[Job, ...]

    @property
    def remaining_micros(self) -> int | None:
        """The least remaining across every capped window (None when nothing is capped)."""
        left = [c.remaining_micros for c in self.caps if c.remaining_micros is not None]
        return min(left) if left else None


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC time range [since, until) with a name for people."""

    since: float
    until: float
    label: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A server's usage in a period: totals, top members and channels."""

    period: Period
    totals: Totals
    top_members: tuple[Breakdown, ...]
    channels: tuple[Breakdown, ...]
    ledger_total_micros: int


def period(name: UsagePeriod | str, now: float) -> Period:
    """``today``, ``month`` (this UTC month), ``last30`` (30 UTC days) or ``all``."""
    end = now + 1.0
    if name == UsagePeriod.TODAY:
        return Period(quota.day_start(now).timestamp(), end, "today (UTC)")
    if name == UsagePeriod.MONTH:
        start = quota.month_start(now)
        return Period(start.timestamp(), end, f"{start:%B %Y} (UTC)")
    if name == UsagePeriod.LAST30:
        start = quota.day_start(now) - timedelta(days=SERIES_DAYS - 1)
        return Period(start.timestamp(), end, "the last 30 days")
    if name == UsagePeriod.ALL:
        return Period(0.0, end, "all time")
    raise ValueError(f"unknown period {name!r}; one of {', '.join(PERIODS)}")


async def daily_series(
    db: Database,
    now: float,
    *,
    user_id: int | None = None,
    guild_id: int | None = None,
    days: int = SERIES_DAYS,
) -> tuple[tuple[date, int], ...]:
    """Spend per UTC day for the last ``days`` days, oldest first, today last, zeros included."""
    first = quota.day_start(now) - timedelta(days=days - 1)
    by_day = await usage_repo.spend_by_day(
        db, first.timestamp(), now + 1.0, guild_id=guild_id, user_id=user_id
    )
    return tuple(((first + timedelta(days=i)).date(), by_day.get(i, 0)) for i in range(days))


async def member_usage(
    engine: Engine, requester: Requester, now: float | None = None
) -> MemberUsage:
    """Spend today and this month against every cap that applies to this member."""
    now = engine.clock() if now is None else now
    limits = await engine.limits_for(requester)
    used = await engine.usage_for(requester, now)
    tomorrow = quota.day_start(now) + timedelta(days=1)
    month = quota.next_month(now)
    windows = [
        ("user_daily_cap", "Your daily budget", used.user_day, used.user_credit, tomorrow),
        ("user_monthly_cap", "Your monthly budget", used.user_month, used.user_credit, month),
    ]
    if requester.guild_id is not None:
        windows.append(
            ("guild_monthly_cap", "This server's monthly budget", used.guild_month, 0, month)
        )
    windows.append(("global_monthly_cap", "The bot's monthly budget", used.global_month, 0, month))
    caps = tuple(
        CapLine(
            name,
            label,
            limits[name],
            spent,
            credit,
            resets,
            limits.sources.get(name, quota.DEFAULT_SOURCE),
        )
        for name, label, spent, credit, resets in windows
    )
    queued, running = await jobs_repo.count_active(engine.db, requester.user_id)
    return MemberUsage(
        today_micros=used.user_day,
        month_micros=used.user_month,
        credit_micros=used.user_credit,
        caps=caps,
        queued=queued,
        running=running,
        series=await daily_series(engine.db, now, user_id=requester.user_id),
        recent=tuple(await jobs_repo.recent_jobs(engine.db, requester.user_id, 5)),
    )


async def recent_history(db: Database, user_id: int, limit: int = 10) -> list[Job]:
    """A member's newest jobs, newest first."""
    return await jobs_repo.recent_jobs(db, user_id, limit)


async def jobs_per_state(
    db: Database, *, guild_id: int | None = None, user_id: int | None = None
) -> dict[str, int]:
    return await usage_repo.jobs_per_state(db, guild_id=guild_id, user_id=user_id)


async def totals(db: Database, span: Period, *, guild_id: int | None = None) -> Totals:
    return await usage_repo.totals(db, span.since, span.until, guild_id=guild_id)


async def usage_report(
    db: Database, guild_id: int | None, span: Period, *, top: int = 10
) -> UsageReport:
    """Totals, top members and channels of a server (or of the whole bot) in a period."""
    return UsageReport(
        period=span,
        totals=await usage_repo.totals(db, span.since, span.until, guild_id=guild_id),
        top_members=tuple(
            await usage_repo.breakdown(
                db, "user_id", span.since, span.until, guild_id=guild_id, limit=top
            )
        ),
        channels=tuple(
            await usage_repo.breakdown(
                db, "channel_id", span.since, span.until, guild_id=guild_id, limit=top
            )
        ),
        ledger_total_micros=await usage_repo.ledger_total(
            db, span.since, span.until, guild_id=guild_id
        ),
    )


def dollars(micros: int) -> str:
    """Exact dollars for a spreadsheet: ``0.050000``."""
    return f"{Decimal(micros) / MICROS_PER_USD:.6f}"


async def csv_rows(db: Database, guild_id: int | None, span: Period) -> list[tuple[str, ...]]:
    """One row per job, amounts from the ledger; ``amount_usd`` sums to the ledger total."""
    rows = await usage_repo.ledger_rows(db, span.since, span.until, guild_id=guild_id)
    return [
        (
            str(r.job_id),
            datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(r.user_id),
            "" if r.guild_id is None else str(r.guild_id),
            "" if r.channel_id is None else str(r.channel_id),
            r.state,
            r.origin,
            dollars(r.charged_micros),
            dollars(r.held_micros),
            dollars(r.charged_micros + r.held_micros),
        )
        for r in rows
    ]


def render_csv(rows: Sequence[Sequence[str]]) -> str:
    """The CSV text with its header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue()


async def export_csv(db: Database, guild_id: int | None, span: Period) -> str:
    return render_csv(await csv_rows(db, guild_id, span))


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One of a member's unfinished jobs, with its place in the fair queue when still queued."""

    job: Job
    position: int | None
    eta_seconds: float | None


async def queue_for(
    engine: Engine, user_id: int, *, visible_to: Requester | None = None
) -> list[QueueEntry]:
    """A member's queued and running jobs, oldest first; with ``visible_to``, only those visible
    from where that requester asks (``bot.visibility``: the jobs this server may see)."""
    states = [*JobState.ACTIVE, JobState.FETCHED]
    entries = []
    for job in await jobs_repo.jobs_in_states(engine.db, states, user_id=user_id):
        if visible_to is not None and not visible(job, visible_to):
            continue
        place = engine.position(job.id) if job.state == JobState.QUEUED else None
        entries.append(QueueEntry(job, place[0] if place else None, place[1] if place else None))
    return entries
