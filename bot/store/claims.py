"""The shared queue's SQL: which process runs which job, claimed fairly, held by a lease.

Used when several processes share one PostgreSQL database (``bot.engine.shared_dispatch``). A
job waiting in the queue has no ``owner``; a claim gives it one with a ``lease_until`` that the
owner's heartbeat keeps pushing forward. A job whose lease ran out belongs to a process that died
(or stalled): another process takes it over and resumes it from its stored state.

Every function that changes who runs what is called inside a serial transaction (the bot-wide
write lock, ``bot.store.postgres``), so the counts a claim reads are the counts it acts on.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.model import JobState
from bot.store.db import Reader, Tx, execute, fetch_all, fetch_one

#: States in which a job holds (or is about to hold) one of the bot's fal slots once claimed.
_HOLDING = "('queued', 'submitting', 'unsure', 'running', 'fetched')"
_PAST_QUEUE = "('submitting', 'unsure', 'running', 'fetched')"

# The fair order of FairScheduler (bot/engine/scheduler.py), decided in one query for the whole
# bot: among the members whose oldest waiting job may start (below their running cap), the one
# with the fewest jobs running goes first; then a member new to the queue (not served since
# their oldest waiting job arrived) before those already served; then guilds take turns (the
# guild served longest ago, or that joined the queue last, after the others), then members in
# their guild, by the same rule. "Served" is the ``turns`` table, written by every claim.
_PICK = f"""
WITH live AS (
    SELECT user_id, COUNT(*) AS n FROM jobs
    WHERE owner IS NOT NULL AND state IN {_HOLDING}
    GROUP BY user_id
), heads AS (
    SELECT DISTINCT ON (guild_id, user_id) id, COALESCE(guild_id, 0) AS guild, user_id,
        created_at, max_running
    FROM jobs WHERE state = 'queued' AND owner IS NULL
    ORDER BY guild_id, user_id, id
), guild_turns AS (
    SELECT guild_id, MAX(picked_at) AS at FROM turns GROUP BY guild_id
), ranked AS (
    SELECT h.id, COALESCE(l.n, 0) AS running,
        (COALESCE(l.n, 0) > 0 OR COALESCE(t.picked_at, 0) >= h.created_at) AS served,
        GREATEST(COALESCE(g.at, 0), MIN(h.created_at) OVER (PARTITION BY h.guild)) AS guild_key,
        GREATEST(COALESCE(t.picked_at, 0), h.created_at) AS member_key,
        h.max_running
    FROM heads h
    LEFT JOIN live l ON l.user_id = h.user_id
    LEFT JOIN turns t ON t.guild_id = h.guild AND t.user_id = h.user_id
    LEFT JOIN guild_turns g ON g.guild_id = h.guild
)
SELECT id FROM ranked
WHERE max_running IS NULL OR running < max_running
ORDER BY running, served, guild_key, member_key, id
LIMIT 1
"""

# One statement, so a claim costs one round trip under the write lock: below the bot-wide fal
# concurrency (the first ``?``), pick the next job, lock its row (SKIP LOCKED: a row a cancel is
# writing is a miss, not a wait), give it to the owner with a lease, and note the member's turn.
_CLAIM = f"""
WITH picked AS (
    SELECT id FROM ({_PICK}) AS next
    WHERE (SELECT COUNT(*) FROM jobs WHERE owner IS NOT NULL AND state IN {_HOLDING}) < ?
), claimed AS (
    UPDATE jobs SET owner = ?, lease_until = ?
    WHERE id = (
        SELECT j.id FROM jobs j JOIN picked p ON p.id = j.id
        WHERE j.state = 'queued' AND j.owner IS NULL
        FOR UPDATE OF j SKIP LOCKED
    )
    RETURNING id, user_id, guild_id
), turn AS (
    INSERT INTO turns (guild_id, user_id, picked_at)
    SELECT COALESCE(guild_id, 0), user_id, ? FROM claimed
    ON CONFLICT (guild_id, user_id) DO UPDATE SET picked_at = excluded.picked_at
)
SELECT id, user_id FROM claimed
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    job_id: int
    user_id: int
    state: JobState


async def holding(src: Reader) -> int:
    """Jobs that hold one of the bot's fal slots now, in every process."""
    row = await fetch_one(
        src, f"SELECT COUNT(*) FROM jobs WHERE owner IS NOT NULL AND state IN {_HOLDING}"
    )
    return int(row[0]) if row else 0


async def claim_next(
    tx: Tx, owner: str, now: float, lease: float, concurrency: int
) -> Claimed | None:
    """Give the next job in the bot-wide fair order to ``owner``; None when none may start
    (every slot of the bot's ``concurrency`` is held, or nobody waiting is below their cap)."""
    row = await fetch_one(tx, _CLAIM, (concurrency, owner, now + lease, now))
    return None if row is None else Claimed(int(row[0]), int(row[1]), JobState.QUEUED)


async def take_over(tx: Tx, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` jobs whose owner's lease ran out (or that have no owner though they
    are past the queue: copied from a SQLite deployment), for ``owner``."""
    rows = await fetch_all(
        tx,
        "SELECT id, user_id, state FROM jobs"
        f" WHERE state IN {_HOLDING} AND owner IS DISTINCT FROM ?"
        " AND ((owner IS NOT NULL AND (lease_until IS NULL OR lease_until < ?))"
        f"   OR (owner IS NULL AND state IN {_PAST_QUEUE}))"
        " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
        (owner, now, limit),
    )
    for row in rows:
        await execute(
            tx,
            "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?",
            (owner, now + lease, row[0]),
        )
    return [Claimed(int(r[0]), int(r[1]), JobState(r[2])) for r in rows]


async def mine(src: Reader, owner: str) -> list[Claimed]:
    """The unfinished jobs ``owner`` holds (a restarted process with the same name)."""
    rows = await fetch_all(
        src,
        f"SELECT id, user_id, state FROM jobs WHERE owner = ? AND state IN {_HOLDING} ORDER BY id",
        (owner,),
    )
    return [Claimed(int(r[0]), int(r[1]), JobState(r[2])) for r in rows]


async def renew(tx: Tx, owner: str, until: float) -> set[int]:
    """Push the lease of every unfinished job ``owner`` holds to ``until``; their ids."""
    rows = await fetch_all(
        tx,
        f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND state IN {_HOLDING} RETURNING id",
        (until, owner),
    )
    return {int(r[0]) for r in rows}


async def release(tx: Tx, owner: str) -> int:
    """At shutdown: claimed jobs that never started go back to the queue; the leases of those
    past it end now, so another process resumes them without waiting."""
    back = await execute(
        tx,
        "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE owner = ? AND state = 'queued'",
        (owner,),
    )
    await execute(
        tx,
        f"UPDATE jobs SET lease_until = 0 WHERE owner = ? AND state IN {_PAST_QUEUE}",
        (owner,),
    )
    return back


async def ownership(src: Reader, job_ids: list[int]) -> list[tuple[int, str | None, bool]]:
    """(job id, owner, cancel asked) of these jobs: what a heartbeat checks of its runs."""
    marks = ",".join("?" * len(job_ids))
    rows = await fetch_all(
        src, f"SELECT id, owner, cancel_requested FROM jobs WHERE id IN ({marks})", job_ids
    )
    return [(int(r[0]), r[1], bool(r[2])) for r in rows]


async def waiting(src: Reader) -> list[tuple[int, int, int | None, int | None]]:
    """(job id, user, guild, running cap) of every unclaimed queued job, oldest first."""
    rows = await fetch_all(
        src,
        "SELECT id, user_id, guild_id, max_running FROM jobs"
        " WHERE state = 'queued' AND owner IS NULL ORDER BY id",
    )
    return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]


async def running_per_user(src: Reader) -> dict[int, int]:
    rows = await fetch_all(
        src,
        f"SELECT user_id, COUNT(*) FROM jobs WHERE owner IS NOT NULL AND state IN {_HOLDING}"
        " GROUP BY user_id",
    )
    return {int(r[0]): int(r[1]) for r in rows}
