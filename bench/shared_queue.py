"""Shared-queue benchmarks (issue 13): the engine on PostgreSQL in several OS processes.

Run: ``python bench/shared_queue.py`` (about a minute and a half). One throwaway PostgreSQL
cluster (tests/support/pg_cluster.py), the bundled fake fal in a process of its own on 127.0.0.1
(zero latency), and engines built the way the tests build them (tests/support/engine_kit.py),
each engine in its own OS process (this file run with ``--worker``), all in the same run:

  (f) throughput   600 jobs from 30 members (3 servers) through submit -> claim -> fal ->
                   fetch -> deliver, the submits split over the processes (each process its own
                   Engine, its own ``worker_name``, the same database and fake fal); jobs/s from
                   the moment every process is ready to the last job final (counted in the
                   database). SQLite in one process (the baseline), then PostgreSQL with 1, 2 and
                   3 processes. Beside each: where the time went, measured, not guessed: the
                   serial transactions (per job; the client's wait for the bot-wide advisory write
                   lock and the share of the wall time the lock was held), the time in fal HTTP
                   calls, the CPU each process used (psutil) against the host's CPUs, and what the
                   server's backends were doing (pg_stat_activity sampled every 20 ms).
  (g) claim        ``claims.claim_next`` on PostgreSQL with 10,000 queued jobs from 1,000 members
                   in 50 servers: one serial transaction (write lock included) per claim, 500
                   claims, 32 running (the oldest claim finishes when a 33rd starts); p50/p95/p99,
                   and EXPLAIN ANALYZE of the pick query with 10,000 queued (``--explain``
                   prints the plans).
  (g')             the baseline: the same on a copy of that queue with BASELINE_INDEX (below),
                   the first index the queue had, which left the pick a scan and sort of every
                   queued job.

The host is reported with each run (CPUs, how busy everyone's processes kept them, load): on a
small shared machine the numbers move with its other work, and the ratios within a run are the
figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

THIS_SCRIPT = Path(__file__).resolve()
ROOT = THIS_SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402
import stamina  # noqa: E402

from bench.engine import FAST_POLL, NO_CAPS, THROUGHPUT_FAL, pct, tiny_png  # noqa: E402
from bot.model import (  # noqa: E402
    EditParams,
    EditRequest,
    ImageSize,
    InputImage,
    JobState,
    JobTicket,
    Origin,
    Requester,
)
from bot.store import claims  # noqa: E402
from bot.store import jobs as jobs_repo  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.postgres import WRITE_LOCK, PgTx, PostgresDatabase  # noqa: E402
from tests.support.engine_kit import engine_kit, make_settings  # noqa: E402
from tests.support.pg_cluster import PgCluster  # noqa: E402

JOBS = 600
MEMBERS = 30
GUILDS = 3
PROCESSES = (1, 2, 3)
ENGINE_SETTINGS: dict[str, Any] = {
    **NO_CAPS,
    **FAST_POLL,
    "fal_concurrency": 32,  # bot-wide (every process's claims count the others' slots)
    "user_max_queued": 100,
    # user_max_running as shipped (64): no member cap gets in the way
}
CLAIM_QUEUED = 10_000
CLAIM_MEMBERS = 1_000
CLAIM_GUILDS = 50
CLAIMS = 500
CLAIM_RUNNING = 32
CLAIM_P99_TARGET_MS = 5.0
SAMPLE_EVERY = 0.02
LAG_TICK = 0.005
BENCH_APP = "flexbot-bench"  # application_name of this script's own connections
TINY_OUT = ImageSize(None, 64, 64)
FINAL = tuple(sorted(JobState.FINAL))


# -- the worker process ---------------------------------------------------------------------------


@dataclass
class Timings:
    """What one worker measured of its own engine (seconds, summed over concurrent tasks)."""

    serial: int = 0
    unlocked: int = 0
    pool_wait: float = 0.0
    lock_wait: float = 0.0
    lock_held: float = 0.0
    release: float = 0.0
    #: where serial transactions were opened: (count, lock held s, of which awaiting statements
    #: s, statements)
    sites: dict[str, tuple[int, float, float, int]] = field(default_factory=dict)
    fal_calls: dict[str, int] = field(default_factory=dict)
    fal_seconds: float = 0.0
    submit_seconds: float = 0.0
    #: how late the event loop ran a task that asked to wake after LAG_TICK (seconds)
    loop_lag: list[float] = field(default_factory=list)


def time_transactions(db: Database, t: Timings) -> None:
    """Wrap ``db.transaction`` to time the wait for the write lock and how long it is held.

    PostgreSQL: the same steps as ``PostgresDatabase.transaction``, timed one by one. SQLite:
    entering the transaction (its asyncio lock, BEGIN IMMEDIATE) is the lock wait."""
    original = db.transaction

    if isinstance(db, PostgresDatabase):
        pool = db.pool

        @asynccontextmanager
        async def timed(*, serial: bool = True) -> AsyncIterator[Any]:
            site = _caller()
            asked = time.perf_counter()
            async with pool.acquire() as conn:
                pooled = time.perf_counter()
                async with conn.transaction():
                    if serial:
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                    locked = time.perf_counter()
                    tx = TimedTx(conn)
                    try:
                        yield tx
                    finally:
                        _account(t, serial, asked, pooled, locked)
                committed = time.perf_counter()
                if serial:  # held until COMMIT returned
                    t.lock_held += committed - locked
                    _by_site(t, site, committed - locked, tx)
            t.release += time.perf_counter() - committed  # asyncpg resets a released connection

    else:

        @asynccontextmanager
        async def timed(*, serial: bool = True) -> AsyncIterator[Any]:
            asked = time.perf_counter()
            async with original(serial=serial) as tx:
                locked = time.perf_counter()
                try:
                    yield tx
                finally:
                    _account(t, True, asked, asked, locked)
            t.lock_held += time.perf_counter() - locked

    db.transaction = timed  # type: ignore[method-assign]


class TimedTx(PgTx):
    """A PgTx that sums the time its statements took (the rest of a transaction is Python)."""

    __slots__ = ("in_db", "statements")

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self.in_db = 0.0
        self.statements = 0

    async def fetch(self, sql: str, args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().fetch(sql, args)
        finally:
            self.in_db += time.perf_counter() - started
            self.statements += 1

    async def execute(self, sql: str, args: Any) -> int:
        started = time.perf_counter()
        try:
            return await super().execute(sql, args)
        finally:
            self.in_db += time.perf_counter() - started
            self.statements += 1

    async def insert(self, sql: str, args: Any) -> int:
        started = time.perf_counter()
        try:
            return await super().insert(sql, args)
        finally:
            self.in_db += time.perf_counter() - started
            self.statements += 1


def _caller() -> str:
    """Where the transaction was opened (module:line), past the context-manager machinery."""
    frame: Any = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename == __file__ or "contextlib" in frame.f_code.co_filename
    ):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{Path(frame.f_code.co_filename).stem}:{frame.f_code.co_name}"


def _by_site(t: Timings, site: str, held: float, tx: TimedTx) -> None:
    n, h, d, k = t.sites.get(site, (0, 0.0, 0.0, 0))
    t.sites[site] = (n + 1, h + held, d + tx.in_db, k + tx.statements)


def _account(t: Timings, serial: bool, asked: float, pooled: float, locked: float) -> None:
    t.pool_wait += pooled - asked
    if serial:
        t.serial += 1
        t.lock_wait += locked - pooled
    else:
        t.unlocked += 1


def time_fal(fal: Any, t: Timings) -> None:
    """Wrap the fal client's calls to sum the time spent in fal HTTP."""
    for name in ("upload", "submit", "status", "result", "download", "cancel", "list_requests"):
        setattr(fal, name, _timed_call(name, getattr(fal, name), t))
    stream = fal.stream_status

    async def timed_stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            async for status in stream(*args, **kwargs):
                yield status
        finally:
            t.fal_calls["stream_status"] = t.fal_calls.get("stream_status", 0) + 1
            t.fal_seconds += time.perf_counter() - started

    fal.stream_status = timed_stream


def _timed_call(name: str, call: Callable[..., Any], t: Timings) -> Callable[..., Any]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            t.fal_calls[name] = t.fal_calls.get(name, 0) + 1
            t.fal_seconds += time.perf_counter() - started

    return timed


async def watch_loop(t: Timings) -> None:
    """Record how late the event loop wakes a sleeper: the wait any reply (a statement's
    result under the write lock) has before its coroutine runs."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(LAG_TICK)
        t.loop_lag.append(loop.time() - asked - LAG_TICK)


def my_jobs(index: int, processes: int) -> list[int]:
    """This worker's share of the job numbers (every ``processes``-th)."""
    return list(range(index, JOBS, processes))


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def worker(config: dict[str, Any]) -> None:
    """One engine process: store its inputs, say ready, submit its share on "go", keep running
    its engine until "stop", then report its timings."""
    timings = Timings()
    overrides = dict(ENGINE_SETTINGS, worker_name=config["name"])
    if config["database_url"]:
        overrides["database_url"] = config["database_url"]
    async with engine_kit(
        Path(config["data_dir"]), config["fal_url"], start=False, **overrides
    ) as kit:
        time_transactions(kit.db, timings)
        time_fal(kit.engine.fal, timings)
        await kit.engine.start()
        mine = my_jobs(config["index"], config["processes"])
        images = {}
        for i in mine:  # distinct inputs, stored before the clock starts (as in (b))
            sha = await kit.engine.store_blob(tiny_png(1000 + i), 32, 32, "image/png")
            images[i] = InputImage(sha, 32, 32)
        say({"ready": True})
        await read_line()  # go
        lag = asyncio.create_task(watch_loop(timings))
        started = time.perf_counter()
        for i in mine:
            user = 1 + i % MEMBERS
            ticket = await kit.engine.submit(
                EditRequest(
                    EditParams(prompt=f"job {i}", image_size=TINY_OUT),
                    (images[i],),
                    Requester(user_id=user, guild_id=10 + user % GUILDS, channel_id=100),
                )
            )
            assert isinstance(ticket, JobTicket), ticket
        timings.submit_seconds = time.perf_counter() - started
        await read_line()  # stop
        lag.cancel()
        say({"timings": asdict(timings), "delivered": len(kit.delivery.delivered)})


# -- the parent: processes, sampling, counting ----------------------------------------------------


@asynccontextmanager
async def fal_process() -> AsyncIterator[tuple[str, int]]:
    """The fake fal in its own process (its CPU is not the engines'): (url, pid)."""
    code = (
        "import asyncio, sys, json; from bot.fal.fake import serve; "
        "asyncio.run(serve(port=0, **json.loads(sys.argv[1])))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, json.dumps(THROUGHPUT_FAL), cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        yield line.rsplit(" ", 1)[-1].strip(), proc.pid
    finally:
        proc.terminate()
        await proc.wait()


class Worker:
    """A ``--worker`` child process and its line protocol on stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    async def spawn(cls, config: dict[str, Any], log: Path) -> Worker:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(THIS_SCRIPT),
                "--worker",
                json.dumps(config),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                limit=1 << 24,  # the report line carries every loop-lag sample
            )
        return cls(proc, log)

    async def expect(self, key: str, timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"worker exited; its log:\n{self.log.read_text()[-3000:]}")
        message: dict[str, Any] = json.loads(line)
        assert key in message, message
        return message

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word}\n".encode())

    async def finish(self) -> None:
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
    return out


class Activity:
    """Samples pg_stat_activity for one database: what the engines' backends are doing."""

    def __init__(self, conn: asyncpg.Connection, dbname: str) -> None:
        self.conn = conn
        self.dbname = dbname
        self.samples = 0
        self.seen: Counter[str] = Counter()

    async def sample(self) -> None:
        rows = await self.conn.fetch(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name <> $2 AND backend_type = 'client backend'",
            self.dbname,
            BENCH_APP,
        )
        self.samples += 1
        for row in rows:
            self.seen[_activity_kind(row["state"], row["wait_event_type"], row["wait_event"])] += 1

    def mean(self) -> dict[str, float]:
        """Backends in each kind of activity, on average over the samples."""
        return {k: n / self.samples for k, n in self.seen.most_common()} if self.samples else {}

    async def server_pids(self) -> list[int]:
        rows = await self.conn.fetch("SELECT pid FROM pg_stat_activity")
        return [int(r["pid"]) for r in rows]


def _activity_kind(state: str | None, wait_type: str | None, wait: str | None) -> str:
    if state == "active":
        if wait_type is None:
            return "executing"
        if (wait_type, wait) == ("Lock", "advisory"):
            return "waiting for the write lock"
        return f"active, waiting on {wait_type}:{wait}"
    if state == "idle in transaction":
        return "in a transaction, waiting for Python"
    return str(state)  # idle: pooled, or LISTENing


async def count_final(db: Database) -> int:
    counts = await jobs_repo.count_by_state(db)
    return sum(n for state, n in counts.items() if state in FINAL)


async def engine_run(cluster: PgCluster | None, processes: int, base: Path) -> dict[str, Any]:
    """One configuration of (f): ``processes`` engines on PostgreSQL (or one on SQLite)."""
    kind = f"pg{processes}" if cluster else "sqlite"
    run_dir = base / kind
    run_dir.mkdir()
    url = await cluster.create_database(kind) if cluster else None
    settings = make_settings(run_dir, database_url=url) if url else make_settings(run_dir)
    db: Database = await (
        PostgresDatabase.connect(_as_bench(url)) if url else Database.open(settings.database_path)
    )
    watcher = await asyncpg.connect(_as_bench(cluster.url())) if cluster else None
    try:
        async with fal_process() as (fal_url, fal_pid):
            configs = [
                {
                    "name": f"bench-{kind}-{i}",
                    "index": i,
                    "processes": processes,
                    "database_url": url,
                    "data_dir": str(run_dir),
                    "fal_url": fal_url,
                }
                for i in range(processes)
            ]
            workers = [
                await Worker.spawn(c, base / f"{kind}-worker{c['index']}.log") for c in configs
            ]
            try:
                for w in workers:
                    await w.expect("ready")
                result = await _measure(db, workers, fal_pid, watcher, kind)
                for w in workers:
                    w.send("stop")
                reports = [await w.expect("timings") for w in workers]
            finally:
                for w in workers:
                    await w.finish()
    finally:
        await db.close()
        if watcher is not None:
            await watcher.close()
    return {**result, **_sum_timings(reports, result["seconds"]), "processes": processes}


def _as_bench(url: str | None) -> str:
    assert url is not None
    return f"{url}?application_name={BENCH_APP}"


async def _measure(
    db: Database,
    workers: list[Worker],
    fal_pid: int,
    watcher: asyncpg.Connection | None,
    dbname: str,
) -> dict[str, Any]:
    """Say go, then count final jobs (and sample the server) until all JOBS are final."""
    activity = Activity(watcher, dbname) if watcher else None
    engine_pids = [w.proc.pid for w in workers]
    server_pids = await activity.server_pids() if activity else []
    cpu_before = cpu_seconds([*engine_pids, fal_pid, *server_pids, os.getpid()])
    host_before = psutil.cpu_times()
    started = time.perf_counter()
    for w in workers:
        w.send("go")
    final = 0
    while final < JOBS:
        if activity:
            await activity.sample()
        await asyncio.sleep(SAMPLE_EVERY)
        final = await count_final(db)
        if time.perf_counter() - started > 120:
            raise RuntimeError(f"only {final} of {JOBS} jobs final after 120 s")
    seconds = time.perf_counter() - started
    if activity:
        server_pids = await activity.server_pids()
    cpu_after = cpu_seconds([*engine_pids, fal_pid, *server_pids, os.getpid()])
    host_after = psutil.cpu_times()

    def used(pids: list[int]) -> float:
        return sum(cpu_after.get(p, 0.0) - cpu_before.get(p, 0.0) for p in pids)

    states = await jobs_repo.count_by_state(db)
    return {
        "seconds": seconds,
        "jobs_per_s": JOBS / seconds,
        "states": states,
        "cpu_engines": [used([p]) for p in engine_pids],
        "cpu_fal": used([fal_pid]),
        "cpu_server": used(server_pids),
        "cpu_bench": used([os.getpid()]),
        "activity": activity.mean() if activity else {},
        "cpu_host": _busy(host_after) - _busy(host_before),
        "load": os.getloadavg()[0],
    }


def _busy(times: Any) -> float:
    """CPU seconds the whole host spent not idle (every process, ours and others')."""
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _sum_timings(reports: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ts = [r["timings"] for r in reports]
    serial = sum(t["serial"] for t in ts)
    calls: Counter[str] = Counter()
    for t in ts:
        calls.update(t["fal_calls"])
    sites: dict[str, list[float]] = {}
    for t in ts:
        for site, numbers in t["sites"].items():
            total = sites.setdefault(site, [0.0] * len(numbers))
            for i, number in enumerate(numbers):
                total[i] += number
    lags = [lag for t in ts for lag in t["loop_lag"]]
    return {
        "loop_lag_p50_ms": pct(lags, 50) * 1e3,
        "loop_lag_p99_ms": pct(lags, 99) * 1e3,
        "sites": sites,
        "serial_per_job": serial / JOBS,
        "unlocked_per_job": sum(t["unlocked"] for t in ts) / JOBS,
        "lock_wait_ms": 1e3 * sum(t["lock_wait"] for t in ts) / max(serial, 1),
        "pool_wait_ms": 1e3 * sum(t["pool_wait"] for t in ts) / max(serial, 1),
        "release_ms": 1e3 * sum(t["release"] for t in ts) / max(serial, 1),
        "lock_held_share": sum(t["lock_held"] for t in ts) / seconds,
        "lock_held_ms": 1e3 * sum(t["lock_held"] for t in ts) / max(serial, 1),
        "fal_ms_per_job": 1e3 * sum(t["fal_seconds"] for t in ts) / JOBS,
        "fal_calls_per_job": sum(calls.values()) / JOBS,
        "submit_seconds": max(t["submit_seconds"] for t in ts),
        "delivered": sum(r["delivered"] for r in reports),
    }


# -- (g) claim latency ----------------------------------------------------------------------------


#: What (g') measures beside the shipped schema, as the baseline: the first index this queue had,
#: without the ``owner IS NULL`` condition and the included columns, which left the pick a scan
#: and sort of every queued job.
BASELINE_INDEX = (
    "DROP INDEX jobs_unclaimed;"
    " CREATE INDEX jobs_waiting ON jobs (guild_id, user_id, id) WHERE state = 'queued'"
)


async def bench_claims(cluster: PgCluster) -> dict[str, Any]:
    """(g) on the shipped schema, and (g') on a copy of the same queue with BASELINE_INDEX."""
    url = await cluster.create_database("claims")
    db = await PostgresDatabase.connect(_as_bench(url))
    try:
        await fill_queue(db)
    finally:
        await db.close()
    admin = await asyncpg.connect(_as_bench(cluster.url()))
    try:  # the same 10,000 rows for both: a copy of the filled database
        await admin.execute("CREATE DATABASE claims_indexed TEMPLATE claims")
    finally:
        await admin.close()
    shipped = await claim_run(url)
    baseline = await claim_run(url.replace("/claims", "/claims_indexed"), BASELINE_INDEX)
    return {"shipped": shipped, "baseline": baseline}


async def claim_run(url: str, ddl: str | None = None) -> dict[str, Any]:
    db = await PostgresDatabase.connect(_as_bench(url))
    try:
        if ddl:
            await db.pool.execute(ddl)
        await db.pool.execute("VACUUM ANALYZE jobs")  # as autovacuum leaves a settled table
        plan = await explain_pick(db)
        times = await timed_claims(db)
        plan_after = await explain_pick(db)
    finally:
        await db.close()
    return {
        "p50_ms": pct(times, 50) * 1e3,
        "p95_ms": pct(times, 95) * 1e3,
        "p99_ms": pct(times, 99) * 1e3,
        "max_ms": max(times) * 1e3,
        "claims": len(times),
        "plan": plan,
        "plan_after": plan_after,
    }


async def fill_queue(db: PostgresDatabase) -> None:
    """CLAIM_QUEUED queued jobs from CLAIM_MEMBERS members in CLAIM_GUILDS servers, the oldest
    first, as admission writes them (with their reserve ledger rows)."""
    rng = random.Random(13)
    params = EditParams(prompt="hold me", image_size=TINY_OUT)
    sha = "0" * 64
    start = time.time() - CLAIM_QUEUED * 0.01
    for batch in range(0, CLAIM_QUEUED, 500):
        async with db.transaction() as tx:
            for i in range(batch, batch + 500):
                user = 1 + rng.randrange(CLAIM_MEMBERS)
                new = jobs_repo.NewJob(
                    user_id=user,
                    guild_id=10 + user % CLAIM_GUILDS,
                    channel_id=100,
                    role_ids=(),
                    origin=Origin.COMMAND,
                    parent_job_id=None,
                    endpoint="fal-ai/flux-2-flex/edit",
                    params=params,
                    input_hashes=(sha,),
                    estimate_micros=100_000,
                    channel_nsfw=False,
                    max_running=64,
                )
                await jobs_repo.insert_job(tx, new, start + i * 0.01)


async def timed_claims(db: PostgresDatabase) -> list[float]:
    """Seconds per claim: a serial transaction (write lock included) around ``claim_next``, as
    SharedDispatcher runs it."""
    running: list[int] = []
    times: list[float] = []
    for _ in range(CLAIMS):
        now = time.time()
        started = time.perf_counter()
        async with db.transaction() as tx:
            claimed = await claims.claim_next(tx, "bench", now, 30.0, CLAIM_RUNNING + 1)
        times.append(time.perf_counter() - started)
        assert claimed is not None
        running.append(claimed.job_id)
        if len(running) > CLAIM_RUNNING:  # the oldest run ends: its slot is free again
            async with db.transaction() as tx:
                await jobs_repo.transition(
                    tx, running.pop(0), [JobState.QUEUED], JobState.DELIVERED, finished_at=now
                )
    return times


async def explain_pick(db: PostgresDatabase) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of claims._PICK: its execution time (best of 5), the plan."""
    best = float("inf")
    text = ""
    async with db.pool.acquire() as conn:
        for _ in range(5):
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + claims._PICK)
            lines = [r[0] for r in rows]
            ms = float(lines[-1].split(":")[1].split()[0])
            if ms < best:
                best, text = ms, "\n".join(lines)
    return {"ms": best, "text": text}


# -- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(runs: list[dict[str, Any]], g: dict[str, Any], explain: bool) -> None:
    base = runs[0]["jobs_per_s"]
    pg1 = runs[1]["jobs_per_s"]
    rows = [
        (
            f"(f) throughput, {JOBS} jobs / {MEMBERS} members, {_label(r)}",
            f"{r['jobs_per_s']:.0f} jobs/s",
            f"{r['seconds']:.2f} s total",
            f"{r['jobs_per_s'] / base:.2f}x SQLite, {r['jobs_per_s'] / pg1:.2f}x PG x1",
            "baseline" if r["processes"] == 0 else "info",
        )
        for r in runs
    ]
    for name, label in (("shipped", "(g) "), ("baseline", "(g') baseline: the first index, ")):
        c = g[name]
        rows.append(
            (
                f"{label}claim_next in a serial tx, {CLAIM_QUEUED:,} queued",
                f"p99 {c['p99_ms']:.2f} ms",
                f"p50 {c['p50_ms']:.2f}, p95 {c['p95_ms']:.2f}, max {c['max_ms']:.2f} ms",
                f"< {CLAIM_P99_TARGET_MS:g} ms",
                verdict(c["p99_ms"] < CLAIM_P99_TARGET_MS),
            )
        )
    head = ("metric", "ours", "baseline / detail", "target", "result")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    print(line)
    print("settings, and where the time went:")
    print(
        f"  (f) fake fal in its own process {THROUGHPUT_FAL}; each engine "
        f"{_show(ENGINE_SETTINGS)}, user_max_running as shipped; 32x32 inputs (distinct, stored "
        "before the clock), 64x64 outputs; submits split over the processes (job i to process "
        "i mod n); the clock runs from 'go' to the last job final in the database"
    )
    for r in runs:
        print(f"  (f) {_label(r)}: {_where(r)}")
    last = runs[-1]
    print(f"  (f) {_label(last)}, serial transactions by where they are opened: {_sites(last)}")
    print(f"  (f) what limits it: {_limits(runs)}")
    shipped, baseline = g["shipped"], g["baseline"]
    print(
        f"  (g) {CLAIM_MEMBERS:,} members in {CLAIM_GUILDS} servers, running cap 64, VACUUM "
        f"ANALYZE after the fill; {shipped['claims']} claims, the oldest of {CLAIM_RUNNING} "
        "running ending at each claim after that; one statement per claim (count, pick, lock, "
        "lease and turn) plus the lock; EXPLAIN ANALYZE of the pick (best of 5): "
        f"{shipped['plan']['ms']:.2f} ms with "
        f"{CLAIM_QUEUED:,} queued, {shipped['plan_after']['ms']:.2f} ms after the claims"
    )
    print(
        f"  (g') the same queue (a copy) with `{BASELINE_INDEX}`: the pick "
        f"{baseline['plan']['ms']:.2f} ms, {baseline['plan_after']['ms']:.2f} ms after the "
        "claims; `--explain` prints both plans"
    )
    print(f"  host: {sys.platform}, {_cpus()} CPU(s), Python {sys.version.split()[0]}")
    if explain:
        for name in ("shipped", "baseline"):
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of claims._PICK, {CLAIM_QUEUED:,} queued, {name}:")
            print(g[name]["plan"]["text"])


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _label(r: dict[str, Any]) -> str:
    n = r["processes"]
    if n == 0:
        return "SQLite, 1 process"
    return f"PostgreSQL, {n} process{'es' if n > 1 else ''}"


def _show(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if k not in NO_CAPS)


def _where(r: dict[str, Any]) -> str:
    cpus = _cpus()
    engines = r["cpu_engines"]
    ours = sum(engines) + r["cpu_fal"] + r["cpu_server"] + r["cpu_bench"]
    in_flight = r["fal_ms_per_job"] / 1e3 * r["jobs_per_s"]
    parts = [
        f"{r['serial_per_job']:.1f} serial tx/job (+{r['unlocked_per_job']:.1f} without the "
        f"lock); per serial tx: waited {r['lock_wait_ms']:.2f} ms for the lock "
        f"(+{r['pool_wait_ms']:.2f} for a pooled connection), held it {r['lock_held_ms']:.2f} ms; "
        f"lock held {r['lock_held_share']:.0%} of the wall time",
        f"fal HTTP {r['fal_ms_per_job']:.1f} ms/job in {r['fal_calls_per_job']:.1f} calls "
        f"({in_flight:.1f} calls in flight on average, of {ENGINE_SETTINGS['fal_concurrency']} "
        "slots)",
        "CPU s: engines " + "+".join(f"{c:.1f}" for c in engines) + f", fake fal "
        f"{r['cpu_fal']:.1f}, server {r['cpu_server']:.1f}, bench {r['cpu_bench']:.1f}: "
        f"{ours / r['seconds']:.2f} CPUs; the host (everyone's) {r['cpu_host'] / r['seconds']:.2f}"
        f" of {cpus} busy, load {r['load']:.1f}",
        f"event-loop lag p50 {r['loop_lag_p50_ms']:.2f}, p99 {r['loop_lag_p99_ms']:.2f} ms",
    ]
    if r["activity"]:
        parts.append(
            "backends on average: "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["activity"].items() if k != "idle")
        )
    parts.append(f"end states {r['states']}")
    return "; ".join(parts)


def _sites(r: dict[str, Any]) -> str:
    ranked = sorted(r["sites"].items(), key=lambda item: -item[1][1])
    return ", ".join(
        f"{site} {n / JOBS:.1f}/job x {held / n * 1e3:.2f} ms held "
        f"({statements / n:.0f} statements, {in_db / held:.0%} awaiting them)"
        for site, (n, held, in_db, statements) in ranked[:6]
    )


def _limits(runs: list[dict[str, Any]]) -> str:
    """What the measurements say limits throughput as processes are added."""
    pg = [r for r in runs if r["processes"] > 0]
    share = min(r["lock_held_share"] for r in pg)
    sites = [v for r in pg for v in r["sites"].values()]
    awaiting = sum(v[2] for v in sites) / sum(v[1] for v in sites)
    bound = ", ".join(
        f"{1e3 / (r['serial_per_job'] * r['lock_held_ms']):.0f} (measured {r['jobs_per_s']:.0f})"
        for r in pg
    )
    waiting = " -> ".join(f"{r['activity'].get('waiting for the write lock', 0):.1f}" for r in pg)
    executing = max(r["activity"].get("executing", 0.0) for r in pg)
    held = " -> ".join(f"{r['lock_held_ms']:.2f}" for r in pg)
    lag = " -> ".join(f"{r['loop_lag_p99_ms']:.1f}" for r in pg)
    host = max(r["cpu_host"] / r["seconds"] for r in pg)
    saturated = "saturated" if share > 0.9 else "not saturated"
    return (
        f"the bot-wide advisory write lock is {saturated}: held >= {share:.0%} of the wall time "
        f"in every PostgreSQL run, so jobs/s <= 1 / (serial tx per job x held per tx) = {bound}. "
        f"More processes add waiters (backends waiting for the lock: {waiting}), not capacity. "
        f"A held transaction spends {awaiting:.0%} of its time awaiting its statements' "
        f"replies while the server is executing at most {executing:.2f} backend on average: "
        "the lock is held across client round trips (the holder's event loop and the CPU "
        f"scheduler stand between a reply and the next statement: loop lag p99 {lag} ms), "
        f"so it costs what CPU contention on {_cpus()} CPUs makes it cost ({held} ms held per "
        f"tx; the host up to {host:.2f} CPUs busy). fal is not the limit (calls in flight "
        "above) and neither are "
        "the pick queries (executing backends above)"
    )


async def main(explain: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="flexbot-bench-shared-") as tmp:
        base = Path(tmp)
        with PgCluster.running(base / "pg") as cluster:
            runs = []
            print("(f) SQLite, 1 process ...", file=sys.stderr)
            runs.append({**await engine_run(None, 1, base), "processes": 0})
            for n in PROCESSES:
                print(f"(f) PostgreSQL, {n} process(es) ...", file=sys.stderr)
                runs.append(await engine_run(cluster, n, base))
            print(f"(g) claim latency, {CLAIM_QUEUED:,} queued ...", file=sys.stderr)
            g = await bench_claims(cluster)
    report(runs, g, explain)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--explain", action="store_true", help="print the pick query's plan")
    parser.add_argument("--worker", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        with stamina.set_testing(True, attempts=1000, cap=True):
            asyncio.run(worker(json.loads(args.worker)))
    else:
        asyncio.run(main(args.explain))
