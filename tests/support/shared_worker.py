"""One of several engine processes on one PostgreSQL database, for the shared-queue crash test.

    python -m tests.support.shared_worker --database-url URL --data-dir DIR --fal-url URL
        --seed N --slot K --slots S --name NAME [--cap-burst]

Every process runs a real Engine (``SharedDispatcher``: claims, leases, takeover) with a Delivery
that deduplicates by ``job.delivery_key`` like a Discord nonce, writing to one harness file that
every process shares (``tests/support/file_delivery.py``). Slot K submits the seeded plan's jobs
with ``index % S == K`` that are not in the database yet and issues their cancels; the jobs
themselves run wherever a claim puts them. With ``--cap-burst`` (each slot's first run) it also
fires ``CAP_ATTEMPTS`` edits at once for the member with the small daily cap, whose refusals it
records. It prints ``ready`` once its engine started and exits 0 when every job is final.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from bot.engine.engine import Engine
from bot.errors import UserError
from bot.model import EditParams, EditRequest, InputImage, LimitScope, Requester
from bot.store import limits
from bot.store.blobs import DatabaseBlobs
from bot.store.db import Database, fetch_all
from bot.store.postgres import PostgresDatabase
from tests.support.crash_worker import (
    DELIVERY_LATENCY,
    PlannedJob,
    drive,
    fal_client,
    issue_cancels,
    make_plan,
    png,
    states_on_disk,
    stored_jobs,
    worker_settings,
)
from tests.support.file_delivery import FileDelivery, HarnessLog

HARNESS_DB = "harness.sqlite"
CAPPED_USER = 7777
CAPPED_GUILD = 101
CAP_ATTEMPTS = 6  # per process, all at once
LEASE_SECONDS = 3.0


async def image_for(engine: Engine, user: int, cache: dict[int, InputImage]) -> InputImage:
    if user not in cache:
        sha = await engine.store_blob(png(user), 64, 48, "image/png")
        cache[user] = InputImage(sha, 64, 48)
    return cache[user]


async def submit_share(engine: Engine, db: Database, plan: list[PlannedJob]) -> None:
    existing = await stored_jobs(db)
    images: dict[int, InputImage] = {}
    for job in plan:
        if job.prompt in existing:
            continue
        try:
            await engine.submit(
                EditRequest(
                    EditParams(prompt=job.prompt, seed=job.index),
                    (await image_for(engine, job.user_id, images),),
                    Requester(job.user_id, job.guild_id, 900 + job.guild_id, ()),
                )
            )
        except UserError as refused:
            raise SystemExit(f"plan job {job.index} refused: {refused}") from None


async def cap_burst(engine: Engine, slot: int, log: HarnessLog) -> None:
    """CAP_ATTEMPTS edits of the capped member at once from this process."""
    image = await image_for(engine, CAPPED_USER, {})
    who = Requester(CAPPED_USER, CAPPED_GUILD, 900 + CAPPED_GUILD, ())

    async def one(i: int) -> None:
        request = EditRequest(EditParams(prompt=f"cap test {slot}-{i}", seed=i), (image,), who)
        try:
            await engine.submit(request)
            log.admission("admitted")
        except UserError as refused:
            log.admission(f"refused {refused.limit}")

    await asyncio.gather(*(one(i) for i in range(CAP_ATTEMPTS)))


async def everything_final(db: Database, planned: int) -> bool:
    rows = await fetch_all(
        db,
        "SELECT COUNT(*) FILTER (WHERE params NOT LIKE '%cap test%'),"
        " COUNT(*) FILTER (WHERE state NOT IN"
        " ('delivered', 'undeliverable', 'cancelled', 'failed'))"
        " FROM jobs",
    )
    return int(rows[0][0]) == planned and int(rows[0][1]) == 0


async def set_cap(db: Database, cap: int) -> None:
    async with db.transaction() as tx:
        await limits.set_limit(
            tx, LimitScope.USER, CAPPED_GUILD, CAPPED_USER, "user_daily_cap", cap, None
        )


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    settings = replace(
        worker_settings(data_dir),
        database_url=args.database_url,
        worker_name=args.name,
        worker_lease_seconds=LEASE_SECONDS,
    )
    plan = make_plan(args.seed, args.jobs, args.users)
    share = [j for j in plan if j.index % args.slots == args.slot]
    log = HarnessLog(data_dir / HARNESS_DB, os.getpid())
    db = await PostgresDatabase.connect(args.database_url)
    log.begin_run(await states_on_disk(db))
    if args.cap is not None:
        await set_cap(db, args.cap)
    fal = fal_client(settings, args.fal_url)
    engine = Engine(
        db=db,
        blobs=DatabaseBlobs(db),
        fal=fal,
        delivery=FileDelivery(log, latency=DELIVERY_LATENCY),
        settings=settings,
    )

    async def submit() -> None:
        if args.cap_burst:
            await cap_burst(engine, args.slot, log)
        await submit_share(engine, db, share)

    return await drive(
        engine,
        fal,
        db,
        log,
        submit=submit,
        cancels=lambda: issue_cancels(engine, db, share, log, tick=0.1),
        finished=lambda: everything_final(db, len(plan)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fal-url", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--cap", type=int, default=None)
    parser.add_argument("--cap-burst", action="store_true")
    args = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=Path(args.data_dir) / f"worker-{args.slot}.log",
        level=logging.INFO,
        format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    rc = asyncio.run(run(args))
    logging.getLogger(__name__).info("finished in %.1f s", time.monotonic() - started)
    return rc


if __name__ == "__main__":
    sys.exit(main())
