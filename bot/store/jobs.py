"""The jobs table (the queue), as SQL behind small functions.

Every state change is a compare-and-set: ``UPDATE ... WHERE id = ? AND state IN (...)``; the caller
learns whether it won. Money columns move only with a ledger row (``bot.store.ledger``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.model import EditParams, Job, JobState, LedgerKind, Origin
from bot.store import ledger
from bot.store.db import Reader, Row, Tx, execute, fetch_all, fetch_one, insert
from bot.store.limits import GLOBAL

_COLUMNS = (
    "id, state, user_id, guild_id, channel_id, role_ids, origin, parent_job_id, endpoint, params,"
    " input_hashes, seed, estimate_micros, cost_micros, held_micros, charged_micros,"
    " cancel_requested, fal_request_id, submit_attempts, output_hash, output_width,"
    " output_height, failure_reason, status_message_id, result_message_id, source_message_id,"
    " created_at, started_at, finished_at, updated_at, channel_nsfw, source_author_id,"
    " fal_input, submit_window_start, submit_window_end, fal_request_hint, fal_seconds,"
    " fal_seen_at, nsfw_flagged"
)
_UPDATABLE = frozenset(
    {
        "params",  # EditParams.to_json(): the seed Flexbot picked is stored before the POST
        "seed",
        "cost_micros",
        "fal_request_id",
        "submit_attempts",
        "output_hash",
        "output_width",
        "output_height",
        "failure_reason",
        "status_message_id",
        "result_message_id",
        "started_at",
        "finished_at",
        "cancel_requested",
        "fal_input",
        "submit_window_start",
        "submit_window_end",
        "fal_request_hint",
        "fal_seconds",
        "fal_seen_at",
        "nsfw_flagged",
    }
)


def _job(row: Row) -> Job:
    return Job(
        id=row["id"],
        state=JobState(row["state"]),
        user_id=row["user_id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        role_ids=tuple(json.loads(row["role_ids"])),
        origin=Origin(row["origin"]),
        parent_job_id=row["parent_job_id"],
        endpoint=row["endpoint"],
        params=EditParams.from_json(row["params"]),
        input_hashes=tuple(json.loads(row["input_hashes"])),
        seed=row["seed"],
        estimate_micros=row["estimate_micros"],
        cost_micros=row["cost_micros"],
        held_micros=row["held_micros"],
        charged_micros=row["charged_micros"],
        cancel_requested=bool(row["cancel_requested"]),
        fal_request_id=row["fal_request_id"],
        submit_attempts=row["submit_attempts"],
        output_hash=row["output_hash"],
        output_width=row["output_width"],
        output_height=row["output_height"],
        failure_reason=row["failure_reason"],
        status_message_id=row["status_message_id"],
        result_message_id=row["result_message_id"],
        source_message_id=row["source_message_id"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        channel_nsfw=bool(row["channel_nsfw"]),
        source_author_id=row["source_author_id"],
        fal_input=row["fal_input"],
        submit_window_start=row["submit_window_start"],
        submit_window_end=row["submit_window_end"],
        fal_request_hint=row["fal_request_hint"],
        fal_seconds=float(row["fal_seconds"]),
        fal_seen_at=row["fal_seen_at"],
        nsfw_flagged=bool(row["nsfw_flagged"]),
    )


@dataclass(frozen=True, slots=True)
class NewJob:
    """What submit() writes; the rest of a Job's fields start empty."""

    user_id: int
    guild_id: int | None
    channel_id: int | None
    role_ids: tuple[int, ...]
    origin: Origin
    parent_job_id: int | None
    endpoint: str
    params: EditParams
    input_hashes: tuple[str, ...]
    estimate_micros: int
    channel_nsfw: bool
    source_message_id: int | None = None
    source_author_id: int | None = None
    #: the member's running cap at admission (None: none), read by every process's claims
    max_running: int | None = None


async def insert_job(tx: Tx, new: NewJob, now: float) -> int:
    """Insert a queued job holding its estimate, with its ``reserve`` ledger row."""
    job_id = await insert(
        tx,
        "INSERT INTO jobs (state, user_id, guild_id, channel_id, role_ids, origin, parent_job_id,"
        " endpoint, params, input_hashes, seed, estimate_micros, held_micros, source_message_id,"
        " created_at, updated_at, channel_nsfw, source_author_id, max_running)"
        " VALUES ('queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.user_id,
            new.guild_id,
            new.channel_id,
            json.dumps(list(new.role_ids)),
            new.origin,
            new.parent_job_id,
            new.endpoint,
            new.params.to_json(),
            json.dumps(list(new.input_hashes)),
            new.params.seed,
            new.estimate_micros,
            new.estimate_micros,
            new.source_message_id,
            now,
            now,
            int(new.channel_nsfw),
            new.source_author_id,
            new.max_running,
        ),
    )
    await ledger.add(
        tx, job_id, LedgerKind.RESERVE, new.estimate_micros, new.user_id, new.guild_id, now
    )
    return job_id


async def get_job(src: Reader, job_id: int) -> Job | None:
    row = await fetch_one(src, f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
    return _job(row) if row else None


async def job_by_result_message(src: Reader, message_id: int) -> Job | None:
    """The job whose result was posted as this Discord message."""
    sql = f"SELECT {_COLUMNS} FROM jobs WHERE result_message_id = ? ORDER BY id LIMIT 1"
    row = await fetch_one(src, sql, (message_id,))
    return _job(row) if row else None


async def jobs_in_states(
    src: Reader, states: Iterable[str], *, user_id: int | None = None
) -> list[Job]:
    states = list(states)
    sql = f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({','.join('?' * len(states))})"
    args: list[Any] = list(states)
    if user_id is not None:
        sql += " AND user_id = ?"
        args.append(user_id)
    rows = await fetch_all(src, sql + " ORDER BY id", args)
    return [_job(row) for row in rows]


async def recent_jobs(src: Reader, user_id: int, limit: int) -> list[Job]:
    rows = await fetch_all(
        src,
        f"SELECT {_COLUMNS} FROM jobs WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        (user_id, limit),
    )
    return [_job(row) for row in rows]


async def transition(
    tx: Tx,
    job_id: int,
    from_states: Sequence[str],
    to_state: str,
    now: float | None = None,
    **changes: Any,
) -> bool:
    """Compare-and-set the job's state; True when this caller made the change."""
    bad = set(changes) - _UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    sets = ["state = ?", "updated_at = ?"] + [f"{name} = ?" for name in changes]
    args: list[Any] = [to_state, time.time() if now is None else now, *changes.values()]
    changed = await execute(
        tx,
        f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?"
        f" AND state IN ({','.join('?' * len(from_states))})",
        (*args, job_id, *from_states),
    )
    return changed == 1


async def update_job(tx: Tx, job_id: int, **changes: Any) -> None:
    """Change non-state fields (message ids, cancel flag)."""
    bad = set(changes) - _UPDATABLE
    if bad or not changes:
        raise ValueError(f"not updatable: {sorted(bad)}")
    sets = ", ".join(f"{name} = ?" for name in changes)
    await execute(
        tx,
        f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ?",
        (*changes.values(), time.time(), job_id),
    )


async def spend(
    src: Reader,
    since: float,
    *,
    user_id: int | None = None,
    guild_id: int | None = None,
) -> int:
    """Money held or charged for jobs created since ``since``, in micro-dollars."""
    sql = "SELECT COALESCE(SUM(held_micros + charged_micros), 0) FROM jobs WHERE created_at >= ?"
    args: list[Any] = [since]
    if user_id is not None:
        sql += " AND user_id = ?"
        args.append(user_id)
    if guild_id is not None:
        sql += " AND guild_id = ?"
        args.append(guild_id)
    rows = await fetch_all(src, sql, args)
    row = rows[0] if rows else None
    return int(row[0]) if row else 0


async def count_active(src: Reader, user_id: int) -> tuple[int, int]:
    """(queued, running) jobs of a user; running includes submitting, unsure and fetched, and
    a queued job a process has claimed (shared queue: it is about to start)."""
    rows = await fetch_all(
        src,
        "SELECT COUNT(*) FILTER (WHERE state = 'queued' AND owner IS NULL),"
        " COUNT(*) FILTER (WHERE state IN ('submitting', 'unsure', 'running', 'fetched')"
        " OR (state = 'queued' AND owner IS NOT NULL))"
        " FROM jobs WHERE user_id = ?"
        " AND state IN ('queued', 'submitting', 'unsure', 'running', 'fetched')",
        (user_id,),
    )
    row = rows[0] if rows else None
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


async def last_submission(src: Reader, user_id: int) -> float | None:
    rows = await fetch_all(src, "SELECT MAX(created_at) FROM jobs WHERE user_id = ?", (user_id,))
    row = rows[0] if rows else None
    return float(row[0]) if row and row[0] is not None else None


async def recent_durations(src: Reader, limit: int = 20) -> list[float]:
    """How long recent fal jobs took from start to fetched, newest first."""
    rows = await fetch_all(
        src,
        "SELECT finished_at - started_at FROM jobs WHERE state IN ('delivered','undeliverable',"
        " 'fetched') AND started_at IS NOT NULL AND finished_at IS NOT NULL"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [float(r[0]) for r in rows]


async def count_by_state(src: Reader) -> dict[str, int]:
    rows = await fetch_all(src, "SELECT state, count(*) FROM jobs GROUP BY state")
    return {str(state): int(n) for state, n in rows}


async def spend_by_guild(src: Reader, since: float) -> dict[int | None, int]:
    """Money held or charged per guild for jobs created since ``since``."""
    rows = await fetch_all(
        src,
        "SELECT guild_id, SUM(held_micros + charged_micros) FROM jobs WHERE created_at >= ?"
        " GROUP BY guild_id",
        (since,),
    )
    return {guild: int(total) for guild, total in rows}


async def request_owner(src: Reader, request_id: str) -> int | None:
    """The job that follows this fal request, if any."""
    row = await fetch_one(
        src, "SELECT id FROM jobs WHERE fal_request_id = ? ORDER BY id LIMIT 1", (request_id,)
    )
    return int(row[0]) if row else None


async def owned_requests(src: Reader, request_ids: Sequence[str]) -> set[str]:
    """Which of these fal requests a job already follows."""
    if not request_ids:
        return set()
    marks = ",".join("?" * len(request_ids))
    rows = await fetch_all(
        src, f"SELECT fal_request_id FROM jobs WHERE fal_request_id IN ({marks})", request_ids
    )
    return {str(r[0]) for r in rows}


async def sending_same_input(src: Reader, job_id: int, fal_input: str) -> bool:
    """Whether another job is sending the very same arguments right now (an exact rerun whose
    answer is not in yet): its request must not be taken for this job's."""
    row = await fetch_one(
        src,
        "SELECT 1 FROM jobs WHERE state = 'submitting' AND fal_input = ? AND id != ? LIMIT 1",
        (fal_input, job_id),
    )
    return row is not None


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What admission weighs for one member at one instant: counts, last submission, money held
    or spent in each window (micro-dollars) and the credit granted this month."""

    queued: int
    running: int
    last_submit: float | None
    user_day: int
    user_month: int
    guild_month: int
    global_month: int
    credit: int


_SPENT = "SELECT COALESCE(SUM(held_micros + charged_micros), 0) FROM jobs WHERE created_at >= ?"


async def member_facts(
    src: Reader, user_id: int, guild_id: int | None, day: float, month: float
) -> MemberFacts:
    """Every figure admission checks, in one query: one round trip while the write lock is
    held, where eight separate reads made every other process wait eight times as long."""
    row = await fetch_one(
        src,
        "SELECT"
        " (SELECT COUNT(*) FROM jobs WHERE user_id = ? AND state = 'queued' AND owner IS NULL),"
        " (SELECT COUNT(*) FROM jobs WHERE user_id = ?"
        "  AND (state IN ('submitting', 'unsure', 'running', 'fetched')"
        "   OR (state = 'queued' AND owner IS NOT NULL))),"
        " (SELECT MAX(created_at) FROM jobs WHERE user_id = ?),"
        f" ({_SPENT} AND user_id = ?),"
        f" ({_SPENT} AND user_id = ?),"
        f" ({_SPENT} AND guild_id = ?),"
        f" ({_SPENT}),"
        " (SELECT COALESCE(SUM(amount_micros), 0) FROM credits"
        "  WHERE guild_id = ? AND user_id = ? AND created_at >= ?)",
        (
            user_id,
            user_id,
            user_id,
            day,
            user_id,
            month,
            user_id,
            month,
            guild_id,
            month,
            guild_id or GLOBAL,
            user_id,
            month,
        ),
    )
    assert row is not None
    return MemberFacts(
        queued=int(row[0]),
        running=int(row[1]),
        last_submit=None if row[2] is None else float(row[2]),
        user_day=int(row[3]),
        user_month=int(row[4]),
        guild_month=int(row[5]) if guild_id else 0,
        global_month=int(row[6]),
        credit=max(0, int(row[7])),
    )
