"""The ledger: one row per money movement of a job, and the job's held/charged columns with it.

``reserve`` holds a job's estimate at submit, ``release`` lets the hold go, ``charge`` records the
actual price, ``refund`` gives a charge back. A job's ``held_micros`` is reserve - release and its
``charged_micros`` is charge - refund, kept in step here inside the caller's transaction.
"""

from __future__ import annotations

from bot.model import LedgerKind
from bot.store.db import Reader, Tx, execute, fetch_all

_COLUMN = {
    LedgerKind.RESERVE: ("held_micros", 1),
    LedgerKind.RELEASE: ("held_micros", -1),
    LedgerKind.CHARGE: ("charged_micros", 1),
    LedgerKind.REFUND: ("charged_micros", -1),
}


async def add(
    tx: Tx,
    job_id: int,
    kind: LedgerKind,
    amount: int,
    user_id: int,
    guild_id: int | None,
    now: float,
) -> None:
    """Append one ledger row and move the job's held/charged column with it."""
    if kind not in _COLUMN or amount < 0:
        raise ValueError(f"bad ledger row {kind} {amount}")
    await execute(
        tx,
        "INSERT INTO ledger (job_id, kind, amount_micros, user_id, guild_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, kind, amount, user_id, guild_id, now),
    )
    column, sign = _COLUMN[kind]
    if kind != LedgerKind.RESERVE:  # insert_job already set held_micros with the reserve
        await execute(
            tx, f"UPDATE jobs SET {column} = {column} + ? WHERE id = ?", (sign * amount, job_id)
        )


async def totals_for(src: Reader, job_id: int) -> dict[LedgerKind, int]:
    """Sum of each ledger kind for one job."""
    totals = dict.fromkeys(LedgerKind, 0)
    rows = await fetch_all(
        src,
        "SELECT kind, SUM(amount_micros) FROM ledger WHERE job_id = ? GROUP BY kind",
        (job_id,),
    )
    for kind, amount in rows:
        totals[LedgerKind(kind)] = int(amount)
    return totals
