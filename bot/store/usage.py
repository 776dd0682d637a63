"""Read-only SQL behind usage reports: spend by day, channel and member, per-job ledger sums.

Money is attributed to the window in which its job was created, as the budget checks do
(``bot.store.jobs.spend``). "Spent" means charged minus refunded plus still held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.store.db import POSTGRESQL, Reader, fetch_all

# Per job, from the ledger: charge - refund + (reserve - release).
_LEDGER_NET = (
    "SUM(CASE l.kind WHEN 'charge' THEN l.amount_micros WHEN 'refund' THEN -l.amount_micros"
    " WHEN 'reserve' THEN l.amount_micros ELSE -l.amount_micros END)"
)
_LEDGER_HELD = (
    "SUM(CASE l.kind WHEN 'reserve' THEN l.amount_micros WHEN 'release' THEN -l.amount_micros"
    " ELSE 0 END)"
)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Jobs and money for one key (a channel or a member) in a period."""

    key: int | None
    jobs: int
    spent_micros: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Jobs and money in a period."""

    jobs: int
    delivered: int
    failed: int
    cancelled: int
    held_micros: int
    charged_micros: int

    @property
    def spent_micros(self) -> int:
        return self.held_micros + self.charged_micros


@dataclass(frozen=True, slots=True)
class LedgerJobRow:
    """One job with its ledger sums, for the CSV export."""

    job_id: int
    created_at: float
    user_id: int
    guild_id: int | None
    channel_id: int | None
    state: str
    origin: str
    held_micros: int
    charged_micros: int


def _where(
    since: float, until: float, guild_id: int | None, user_id: int | None, prefix: str = ""
) -> tuple[str, list[Any]]:
    sql = f" WHERE {prefix}created_at >= ? AND {prefix}created_at < ?"
    args: list[Any] = [since, until]
    if guild_id is not None:
        sql += f" AND {prefix}guild_id = ?"
        args.append(guild_id)
    if user_id is not None:
        sql += f" AND {prefix}user_id = ?"
        args.append(user_id)
    return sql, args


async def spend_by_day(
    src: Reader,
    since: float,
    until: float,
    *,
    guild_id: int | None = None,
    user_id: int | None = None,
) -> dict[int, int]:
    """Spend per day index (0 = the day starting at ``since``, UTC days of 86,400 s)."""
    where, args = _where(since, until, guild_id, user_id)
    # SQLite's CAST truncates (the floor, as created_at >= since); PostgreSQL's rounds.
    day = (
        "CAST(FLOOR((created_at - ?) / 86400) AS BIGINT)"
        if src.dialect == POSTGRESQL
        else "CAST((created_at - ?) / 86400 AS INTEGER)"
    )
    rows = await fetch_all(
        src,
        f"SELECT {day} AS d, SUM(held_micros + charged_micros) FROM jobs" + where + " GROUP BY d",
        [since, *args],
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def jobs_per_state(
    src: Reader, *, guild_id: int | None = None, user_id: int | None = None
) -> dict[str, int]:
    sql = "SELECT state, COUNT(*) FROM jobs WHERE 1 = 1"
    args: list[Any] = []
    if guild_id is not None:
        sql += " AND guild_id = ?"
        args.append(guild_id)
    if user_id is not None:
        sql += " AND user_id = ?"
        args.append(user_id)
    rows = await fetch_all(src, sql + " GROUP BY state", args)
    return {str(r[0]): int(r[1]) for r in rows}


async def totals(
    src: Reader,
    since: float,
    until: float,
    *,
    guild_id: int | None = None,
    user_id: int | None = None,
) -> Totals:
    where, args = _where(since, until, guild_id, user_id)
    rows = await fetch_all(
        src,
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'delivered'),"
        " COUNT(*) FILTER (WHERE state = 'failed'), COUNT(*) FILTER (WHERE state = 'cancelled'),"
        " SUM(held_micros), SUM(charged_micros) FROM jobs" + where,
        args,
    )
    row = rows[0] if rows else None
    assert row is not None
    return Totals(*(int(v or 0) for v in row))


async def breakdown(
    src: Reader,
    column: str,
    since: float,
    until: float,
    *,
    guild_id: int | None,
    limit: int = 10,
) -> list[Breakdown]:
    """Jobs and spend per channel or per member, biggest spend first."""
    if column not in ("channel_id", "user_id"):
        raise ValueError(column)
    where, args = _where(since, until, guild_id, None)
    rows = await fetch_all(
        src,
        f"SELECT {column}, COUNT(*), SUM(held_micros + charged_micros) AS spent FROM jobs"
        + where
        + f" GROUP BY {column} ORDER BY spent DESC, {column} LIMIT ?",
        [*args, limit],
    )
    return [Breakdown(r[0], int(r[1]), int(r[2] or 0)) for r in rows]


async def ledger_rows(
    src: Reader, since: float, until: float, *, guild_id: int | None
) -> list[LedgerJobRow]:
    """Every job of the period with its money summed from the ledger, oldest first."""
    where, args = _where(since, until, guild_id, None, prefix="j.")
    rows = await fetch_all(
        src,
        "SELECT j.id, j.created_at, j.user_id, j.guild_id, j.channel_id, j.state, j.origin,"
        f" {_LEDGER_HELD}, {_LEDGER_NET} - {_LEDGER_HELD}"
        " FROM jobs j JOIN ledger l ON l.job_id = j.id" + where + " GROUP BY j.id ORDER BY j.id",
        args,
    )
    return [
        LedgerJobRow(
            int(r[0]),
            float(r[1]),
            int(r[2]),
            r[3],
            r[4],
            str(r[5]),
            str(r[6]),
            int(r[7]),
            int(r[8]),
        )
        for r in rows
    ]


async def ledger_total(src: Reader, since: float, until: float, *, guild_id: int | None) -> int:
    """charge - refund + held over the ledger rows of the period's jobs."""
    where, args = _where(since, until, guild_id, None, prefix="j.")
    rows = await fetch_all(
        src,
        f"SELECT COALESCE({_LEDGER_NET}, 0) FROM jobs j JOIN ledger l ON l.job_id = j.id" + where,
        args,
    )
    row = rows[0] if rows else None
    return int(row[0]) if row else 0
