"""The process the crash test SIGKILLs: a real Engine on a data dir, pointed at a fake fal.

    python -m tests.support.crash_worker --data-dir DIR --fal-url URL --seed N

Each run: note the job states found on disk (before recovery) in the harness log, start the
engine (recovery per DESIGN §3), print ``ready``, submit whatever part of the seeded plan is not
in the database yet (through ``Engine.submit``, so reserves are real), issue the plan's cancels,
and exit 0 once every planned job is in a final state. Killed at any point, the next run picks up
from what is stored. The plan is a pure function of the seed so the test can check it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bot.engine.engine import Engine
from bot.errors import UserError
from bot.fal.client import FalClient
from bot.fal.fake import BLOCKED_WORD
from bot.model import EditParams, EditRequest, InputImage, JobState, Requester
from bot.secret import Secret
from bot.settings import Settings
from bot.store.blobs import BlobStore
from bot.store.db import Database, fetch_all
from tests.support.engine_kit import make_settings
from tests.support.file_delivery import FileDelivery, HarnessLog

HARNESS_DB = "harness.sqlite"
FIRST_USER = 5000
STRANGER = 4242  # not a member of the plan: their cancels must be refused
MODERATOR = 4343
DELIVERY_LATENCY = 0.05  # seconds each way per post


@dataclass(frozen=True, slots=True)
class PlannedJob:
    index: int
    user_id: int
    guild_id: int
    prompt: str
    nsfw: bool  # the fake's content checker fails it
    cancel_after: float | None  # seconds after each run's start; None: never cancelled
    cancel_when: str = "queued"  # or "running": not before it is seen submitting/running
    cancel_by_moderator: bool = False


def make_plan(seed: int, jobs: int = 200, users: int = 20) -> list[PlannedJob]:
    """The seeded workload: ``jobs`` edits spread evenly over ``users`` in 4 guilds."""
    rng = random.Random(seed)
    owners = [FIRST_USER + i % users for i in range(jobs)]
    rng.shuffle(owners)
    nsfw = set(rng.sample(range(jobs), 6))
    cancels = rng.sample(sorted(set(range(jobs)) - nsfw), 20)
    moderated = set(cancels[:3])
    at_fal = set(cancels[10:])
    plan = []
    for index, user in enumerate(owners):
        prompt = f"crash test job {index:03d} for user {user}"
        if index in nsfw:
            prompt += f" {BLOCKED_WORD}"
        plan.append(
            PlannedJob(
                index=index,
                user_id=user,
                guild_id=100 + user % 4,
                prompt=prompt,
                nsfw=index in nsfw,
                cancel_after=round(rng.uniform(0.0, 1.0), 3) if index in cancels else None,
                cancel_when="running" if index in at_fal else "queued",
                cancel_by_moderator=index in moderated,
            )
        )
    return plan


def worker_settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        fal_concurrency=8,
        user_max_queued=100,
        user_max_running=2,
        user_cooldown_seconds=0.0,
        user_daily_cap=None,
        user_monthly_cap=None,
        guild_monthly_cap=None,
        global_monthly_cap=None,
        poll_interval_seconds=0.05,
        poll_max_interval_seconds=0.2,
        # Results lost to an outage are booked, never timed out: the test advances fal's clock
        # by more than an hour while the worker is down.
        fal_job_timeout_seconds=86400.0,
        fal_unsure_grace_seconds=1.0,
        fal_unsure_interval_seconds=0.1,
        progress_interval_seconds=0.5,
        fal_http_timeout_seconds=3.0,
        fal_max_attempts=4,
        shutdown_timeout_seconds=2.0,
    )


def png(user: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), ((user * 37) % 256, (user * 91) % 256, 120)).save(buf, "PNG")
    return buf.getvalue()


async def stored_jobs(db: Database) -> dict[str, tuple[int, str]]:
    """prompt -> (job id, state) for every job in the database (either backend)."""
    rows = await fetch_all(db, "SELECT id, state, params FROM jobs")
    return {json.loads(r["params"])["prompt"]: (int(r["id"]), str(r["state"])) for r in rows}


async def states_on_disk(db: Database) -> dict[str, list[int]]:
    states: dict[str, list[int]] = {}
    for row in await fetch_all(db, "SELECT id, state FROM jobs ORDER BY id"):
        states.setdefault(str(row["state"]), []).append(int(row["id"]))
    return states


async def submit_plan(engine: Engine, db: Database, plan: list[PlannedJob]) -> None:
    existing = await stored_jobs(db)
    images: dict[int, InputImage] = {}
    for job in plan:
        if job.prompt in existing:
            continue
        if job.user_id not in images:
            sha = await engine.store_blob(png(job.user_id), 64, 48, "image/png")
            images[job.user_id] = InputImage(sha, 64, 48)
        try:
            await engine.submit(
                EditRequest(
                    EditParams(prompt=job.prompt, seed=job.index),
                    (images[job.user_id],),
                    Requester(job.user_id, job.guild_id, 900 + job.guild_id, ()),
                )
            )
        except UserError as refused:
            raise SystemExit(f"plan job {job.index} refused: {refused}") from None


async def issue_cancels(
    engine: Engine, db: Database, plan: list[PlannedJob], log: HarnessLog, tick: float = 0.05
) -> None:
    """Cancel the planned jobs on the plan's schedule (again after each restart, if not final):
    "queued" ones ``cancel_after`` seconds into the run, "running" ones not before that and not
    before they are seen submitting or running at fal. The first cancel of each run is tried by
    a stranger first, who must be refused. One small query per tick: the engine shares the
    connection, and the harness must not slow it down."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ids = {prompt: job_id for prompt, (job_id, _) in (await stored_jobs(db)).items()}
    pending = {ids[j.prompt]: j for j in plan if j.cancel_after is not None}
    stranger_tried = False
    while pending:
        marks = ",".join("?" * len(pending))
        rows = await fetch_all(
            db, f"SELECT id, state FROM jobs WHERE id IN ({marks})", list(pending)
        )
        states = {int(r[0]): str(r[1]) for r in rows}
        elapsed = loop.time() - start
        for job_id, job in list(pending.items()):
            assert job.cancel_after is not None
            state = states[job_id]
            if state in JobState.FINAL:
                del pending[job_id]
                continue
            if elapsed < job.cancel_after:
                continue
            if job.cancel_when == "running" and state not in (
                JobState.SUBMITTING,
                JobState.UNSURE,
                JobState.RUNNING,
            ):
                continue
            del pending[job_id]
            if not stranger_tried:
                stranger_tried = True
                stranger = Requester(STRANGER, job.guild_id, 900 + job.guild_id)
                refused = await engine.cancel(job_id, stranger)
                log.cancel(job_id, STRANGER, False, refused.outcome)
            caller = MODERATOR if job.cancel_by_moderator else job.user_id
            who = Requester(
                caller, job.guild_id, 900 + job.guild_id, moderator=job.cancel_by_moderator
            )
            result = await engine.cancel(job_id, who)
            log.cancel(job_id, caller, job.cancel_by_moderator, result.outcome)
        await asyncio.sleep(tick)


async def all_final(db: Database, count: int) -> bool:
    async with db.conn.execute(
        f"SELECT COUNT(*), SUM(state IN ({','.join('?' * len(JobState.FINAL))})) FROM jobs",
        tuple(JobState.FINAL),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]) == count and int(row[1] or 0) == count


async def fal_clock_offset(fal_url: str) -> float:
    """How far the fake fal's clock is ahead of ours: the test moves it forward while the worker
    is down (results expire), and the engine's clock must agree with fal's, as the real
    clocks do (the request list is searched by time)."""
    async with httpx.AsyncClient(base_url=fal_url, timeout=10) as http:
        response = await http.post("/_fake/clock", json={"advance": 0})
        response.raise_for_status()
        return float(response.json()["now"]) - time.time()


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    settings = worker_settings(data_dir)
    plan = make_plan(args.seed, args.jobs, args.users)
    log = HarnessLog(data_dir / HARNESS_DB, os.getpid())
    db = await Database.open(settings.database_path)
    log.begin_run(await states_on_disk(db))
    fal = fal_client(settings, args.fal_url)
    offset = await fal_clock_offset(args.fal_url)
    engine = Engine(
        db=db,
        blobs=BlobStore(settings.blob_dir),
        fal=fal,
        delivery=FileDelivery(log, latency=DELIVERY_LATENCY),
        settings=settings,
        clock=lambda: time.time() + offset,
    )
    return await drive(
        engine,
        fal,
        db,
        log,
        submit=lambda: submit_plan(engine, db, plan),
        cancels=lambda: issue_cancels(engine, db, plan, log),
        finished=lambda: all_final(db, len(plan)),
    )


async def drive(
    engine: Engine,
    fal: FalClient,
    db: Database,
    log: HarnessLog,
    *,
    submit: Callable[[], Awaitable[None]],
    cancels: Callable[[], Awaitable[None]],
    finished: Callable[[], Awaitable[bool]],
) -> int:
    """Start the engine, say ``ready``, submit, issue the cancels and wait until ``finished``;
    then close everything (a kill may come at any point of it)."""
    await engine.start()
    print("ready", flush=True)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await submit()
        tasks.append(asyncio.create_task(cancels()))
        while not await finished():
            if tasks[0].done() and tasks[0].exception() is not None:
                raise tasks[0].exception()  # type: ignore[misc]
            await asyncio.sleep(0.1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.stop(timeout=2)
        await fal.aclose()
        await db.close()
        log.close()
    print("done", flush=True)
    return 0


def fal_client(settings: Settings, fal_url: str) -> FalClient:
    """The worker's fal client, pointed at the fake fal process."""
    return FalClient(
        Secret("crash-test-key"),
        queue_url=fal_url,
        rest_url=fal_url,
        api_url=fal_url,
        app_id=settings.fal_app_id,
        timeout=settings.fal_http_timeout_seconds,
        max_attempts=settings.fal_max_attempts,
        insecure_local_origin=fal_url,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fal-url", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=Path(args.data_dir) / "worker.log",
        level=logging.INFO,
        format=f"%(asctime)s {os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
