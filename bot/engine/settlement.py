"""Settlement: the money moves of a job and THE one way a job ends.

Money moves only with a ledger row, inside the transaction that changes the job's state:
``release`` lets the hold go, ``charge`` records the actual price (``refund`` is the store's, for
an operator). ``end_job`` is the compare-and-set to a final state with the hold released, the
metrics and the member's notice; a caller that loses the race (the job moved meanwhile) learns it
from the False it returns and does nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.errors import Words, english
from bot.model import Job, JobState, LedgerKind
from bot.store import jobs as jobs_repo
from bot.store import ledger
from bot.store.db import Database, Tx

log = logging.getLogger(__name__)

#: Called after each stored change; a final state is counted in the metrics.
OnChange = Callable[[JobState | None], Awaitable[None]]
#: Tells the member a job ended without a result (``Delivery.failed``).
Tell = Callable[[Job, Words], Awaitable[None]]


async def release(tx: Tx, job: Job, now: float) -> None:
    """Let go of whatever the job still holds (read inside the transaction, never stale)."""
    current = await jobs_repo.get_job(tx, job.id)
    held = current.held_micros if current else 0
    if held:
        await ledger.add(tx, job.id, LedgerKind.RELEASE, held, job.user_id, job.guild_id, now)


async def charge(tx: Tx, job: Job, cost: int, now: float) -> None:
    await ledger.add(tx, job.id, LedgerKind.CHARGE, cost, job.user_id, job.guild_id, now)


class Settlement:
    """Ends jobs and settles their money; one instance per engine."""

    def __init__(
        self, db: Database, clock: Callable[[], float], on_change: OnChange, tell: Tell
    ) -> None:
        self.db = db
        self.clock = clock
        self.on_change = on_change
        self.tell = tell

    async def end_job(
        self,
        job: Job,
        from_states: Sequence[JobState],
        to_state: JobState,
        reason: Words,
        *,
        notice: Words | None = None,
        cost: int | None = None,
    ) -> bool:
        """Move ``job`` from one of ``from_states`` to a final state; True when this call did.

        ``reason`` is stored as the failure reason, in English (the database and the logs stay
        English; the notice carries the message to translate). Whatever the job still holds is
        released in the same transaction, and ``cost`` (what fal billed for a job that ends
        without a result) is charged there too. ``notice`` (None: no notice) goes to the member
        afterwards; a failure to tell them is logged, never raised, since the job has ended
        either way.
        """
        now = self.clock()
        stored = english(reason)
        # A fetched job keeps the finish time of its fal run (the ETA statistics use it).
        changes: dict[str, Any] = {} if JobState.FETCHED in from_states else {"finished_at": now}
        if cost is not None:
            changes["cost_micros"] = cost
        async with self.db.transaction(serial=False) as tx:
            won = await jobs_repo.transition(
                tx, job.id, from_states, to_state, failure_reason=stored, **changes
            )
            if won:
                await release(tx, job, now)
                if cost is not None:
                    await charge(tx, job, cost, now)
        if not won:
            return False
        await self.on_change(to_state)
        log.info("job=%s %s: %s", job.id, to_state, stored)
        if notice is not None:
            try:
                await self.tell(replace(job, state=to_state), notice)
            except Exception:  # the job has ended; a lost notice must not undo that
                log.warning("job=%s could not tell the member", job.id, exc_info=True)
        return True

    async def fail(self, job: Job, from_states: Sequence[JobState], reason: Words) -> bool:
        """End a job without a result and tell the member why."""
        return await self.end_job(job, from_states, JobState.FAILED, reason, notice=reason)

    async def fetched(
        self,
        job: Job,
        *,
        output_hash: str,
        size: tuple[int, int],
        seed: int | None,
        cost: int,
        nsfw_flagged: bool = False,
    ) -> bool:
        """running -> fetched: store the output, release the hold and charge the actual price.

        ``nsfw_flagged``: fal's safety checker flagged the output; fal billed it all the same, so
        it is charged like any other, and delivery decides how (or whether) it is shown."""
        now = self.clock()
        async with self.db.transaction(serial=False) as tx:
            won = await jobs_repo.transition(
                tx,
                job.id,
                [JobState.RUNNING],
                JobState.FETCHED,
                output_hash=output_hash,
                output_width=size[0],
                output_height=size[1],
                seed=seed,
                cost_micros=cost,
                finished_at=now,
                nsfw_flagged=int(nsfw_flagged),
            )
            if won:
                await release(tx, job, now)
                await charge(tx, job, cost, now)
        if won:
            await self.on_change(None)
        return won

    async def lost(self, job: Job, cost: int, notice: Words) -> bool:
        """running -> failed, charged what fal billed for a result it made but Flexbot lost.

        The member's quota carries it: they asked for the edit and fal billed it; losing it is
        not their fault, but the caps are what keep the owner's fal bill within bounds, and
        they only can if every dollar fal bills counts (``flexbot reconcile`` checks the same
        sum)."""
        return await self.end_job(
            job, [JobState.RUNNING], JobState.FAILED, notice, notice=notice, cost=cost
        )
