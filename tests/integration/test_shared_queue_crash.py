"""Crash test of the shared queue (issue 13): three engine processes on one PostgreSQL database,
SIGKILLed at random and restarted, audited against what fal billed.

The fake fal runs in its own process with processing time; three ``tests/support/shared_worker``
processes claim jobs from the one queue. At random moments a random process is killed, and
restarted (under a new name, like a new container) after a pause; the jobs it held are taken over
by whichever process sees their lease run out first, resuming the stored fal request, never
submitting again. Lost submit answers are injected before early runs. Meanwhile one member with a
small daily cap fires edits through all three processes at once.

After at least 20 kills every process runs to completion and the test checks: every job final,
none lost, none delivered twice (the Delivery deduplicates by key like a Discord nonce; raw
re-posts are counted), none charged twice, each job's ledger balanced, fal's billing equal to the
ledger with every billed request owned by exactly one job, and the capped member within their cap.

Reproduce a failure with ``CRASH_TEST_SEED=<seed> pytest
tests/integration/test_shared_queue_crash.py -s``; the workers' logs are
``<tmp>/data/worker-<slot>.log``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bot.model import JobState
from tests.support.crash_worker import make_plan
from tests.support.procs import Procs, fake_fal, inject, read_line
from tests.support.shared_worker import CAP_ATTEMPTS, CAPPED_USER, HARNESS_DB

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEED = int(os.environ.get("CRASH_TEST_SEED", "20261204"))
JOBS, USERS = 200, 20
SLOTS = 3
KILLS = 21
PROCESSING_TIME = (
    1.0  # 200 jobs take fal >= 50 s: the kills (about 1.3 s each) land while work remains
)
FAKE_CONCURRENCY = 4
CAP = 350_000  # µ$: three and a half edits of the capped member
LOST_ANSWERS = [
    {"route": "submit", "fault": "drop", "after": True},
    {"route": "submit", "fault": "502", "after": True},
    {"route": "submit", "fault": "timeout", "after": True, "seconds": 4},
    {"route": "submit", "fault": "502"},  # fal never got it: sent again once
]
LOST_ANSWER_RUNS = 10
TRANSIENT_FAULTS = [
    {"route": "status", "fault": "503", "times": 5},
    {"route": "result", "fault": "502", "times": 2},
    {"route": "stream", "fault": "drop", "events": 1, "times": 3},
]
FINAL_OK = {JobState.DELIVERED, JobState.CANCELLED, JobState.FAILED}


def worker_args(url: str, data_dir: Path, fal_url: str, slot: int, run: int) -> list[str]:
    args = [
        "-m",
        "tests.support.shared_worker",
        "--database-url",
        url,
        "--data-dir",
        str(data_dir),
        "--fal-url",
        fal_url,
        "--seed",
        str(SEED),
        "--slot",
        str(slot),
        "--slots",
        str(SLOTS),
        "--name",
        f"worker-{slot}-run-{run}",
        "--jobs",
        str(JOBS),
        "--users",
        str(USERS),
        "--cap",
        str(CAP),
    ]
    return args + (["--cap-burst"] if run == 0 else [])


def start_worker(
    procs: Procs, url: str, data_dir: Path, fal_url: str, slot: int, run: int
) -> subprocess.Popen[bytes]:
    worker = procs.spawn(f"worker-{slot}", worker_args(url, data_dir, fal_url, slot, run))
    ready = read_line(worker.stdout, worker, timeout=60)
    assert ready == "ready", f"worker {slot} did not start ({ready!r}):\n{tail(data_dir, slot)}"
    return worker


def tail(data_dir: Path, slot: int, lines: int = 40) -> str:
    path = data_dir / f"worker-{slot}.log"
    return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else "(no log)"


def pg_rows(url: str, sql: str) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def harness_rows(path: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def fal_billing(fal_url: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """fal's billing log and its jobs by request id, once no request is still running."""
    with httpx.Client(base_url=fal_url, timeout=30) as http:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            jobs = http.get("/_fake/jobs").json()["jobs"]
            if all(j["state"] == "COMPLETED" for j in jobs):
                break
            time.sleep(0.1)
        billing = http.get("/_fake/billing").json()["entries"]
    return billing, {j["request_id"]: j for j in jobs}


def test_three_processes_survive_random_sigkills(tmp_path: Path, procs: Procs, pg_url: str) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    fal_url = fake_fal(procs, PROCESSING_TIME, FAKE_CONCURRENCY)
    inject(fal_url, TRANSIENT_FAULTS)

    runs = dict.fromkeys(range(SLOTS), 0)
    workers = {slot: start_worker(procs, pg_url, data_dir, fal_url, slot, 0) for slot in runs}
    kills: list[tuple[int, float]] = []
    lost_injected = 0
    while len(kills) < KILLS:
        if len(kills) < LOST_ANSWER_RUNS:
            lost = rng.sample(LOST_ANSWERS, 2)
            inject(fal_url, lost)
            lost_injected += len(lost)
        delay = rng.uniform(0.1, 0.7)
        time.sleep(delay)
        slot = rng.randrange(SLOTS)
        victim = workers[slot]
        assert victim.poll() is None, f"work ran out after {len(kills)} kills; make it longer"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        kills.append((slot, delay))
        time.sleep(rng.uniform(0.1, 0.5))  # the pause before it comes back
        runs[slot] += 1
        workers[slot] = start_worker(procs, pg_url, data_dir, fal_url, slot, runs[slot])
    for slot, worker in workers.items():
        try:
            rc = worker.wait(timeout=150)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {slot} did not finish after the kills:\n{tail(data_dir, slot)}")
        assert rc == 0, f"worker {slot} exited {rc}:\n{tail(data_dir, slot)}"

    # -- gather ---------------------------------------------------------------------------------
    harness = data_dir / HARNESS_DB
    plan = {p.prompt: p for p in make_plan(SEED, JOBS, USERS)}
    jobs = {r["id"]: r for r in pg_rows(pg_url, "SELECT * FROM jobs ORDER BY id")}
    prompt_of = {jid: json.loads(r["params"])["prompt"] for jid, r in jobs.items()}
    planned = {jid: plan[p] for jid, p in prompt_of.items() if p in plan}
    capped = {jid: r for jid, r in jobs.items() if r["user_id"] == CAPPED_USER}
    ledger: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in pg_rows(pg_url, "SELECT * FROM ledger ORDER BY id"):
        ledger[row["job_id"]].append(row)
    posts = collections.Counter(r["job_id"] for r in harness_rows(harness, "SELECT * FROM posts"))
    messages = {r["key"]: r for r in harness_rows(harness, "SELECT * FROM messages")}
    admissions = collections.Counter(
        r["outcome"] for r in harness_rows(harness, "SELECT * FROM admissions")
    )
    worker_runs = harness_rows(harness, "SELECT * FROM runs ORDER BY run")
    billing, fal_jobs = fal_billing(fal_url)
    billed = {e["request_id"]: e["micros"] for e in billing}
    owner_of = {r["fal_request_id"]: jid for jid, r in jobs.items() if r["fal_request_id"]}
    charges = sum(e["amount_micros"] for es in ledger.values() for e in es if e["kind"] == "charge")
    refunds = sum(e["amount_micros"] for es in ledger.values() for e in es if e["kind"] == "refund")
    found_at_start: collections.Counter[str] = collections.Counter()
    for run in worker_runs[SLOTS:]:
        for state, ids in json.loads(run["states"]).items():
            found_at_start[state] += len(ids)
    states = collections.Counter(r["state"] for r in jobs.values())
    duplicates = sum(1 for n in posts.values() if n > 1)
    double_messages = sum(
        1 for jid in jobs if sum(1 for m in messages.values() if m["job_id"] == jid) > 1
    )
    capped_spend = sum(r["held_micros"] + r["charged_micros"] for r in capped.values())
    overrun = max((r["cost_micros"] or 0) - r["estimate_micros"] for r in capped.values())
    table = [
        ("seed", SEED),
        ("processes / SIGKILLs / process runs", f"{SLOTS} / {len(kills)} / {len(worker_runs)}"),
        ("kills per process", dict(collections.Counter(s for s, _ in kills))),
        ("lost submit answers injected", lost_injected),
        ("jobs (plan + capped member)", f"{len(jobs)} ({len(planned)} + {len(capped)})"),
        ("  states", dict(states)),
        (
            "submits per job (attempts: jobs)",
            dict(collections.Counter(r["submit_attempts"] for r in jobs.values())),
        ),
        ("fal requests / billed", f"{len(fal_jobs)} / {len(billed)}"),
        ("Σ fal billed (µ$)", sum(billed.values())),
        ("Σ ledger charge - refund (µ$)", charges - refunds),
        ("billed requests not owned by exactly one job", len(set(billed) - set(owner_of))),
        ("fal requests no job follows", len(set(fal_jobs) - set(owner_of))),
        ("visible messages / delivered jobs", f"{len(messages)} / {states['delivered']}"),
        ("jobs posted more than once (raw / visible)", f"{duplicates} / {double_messages}"),
        (
            "capped member: attempts / admitted",
            f"{SLOTS * CAP_ATTEMPTS} / {admissions['admitted']}",
        ),
        ("capped member: spend / cap (µ$)", f"{capped_spend} / {CAP}"),
        ("runtime", f"{time.monotonic() - began:.1f} s"),
    ]
    width = max(len(k) for k, _ in table)
    print("\n\nshared queue crash test\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in table))

    # -- nothing lost, everything final ---------------------------------------------------------
    assert sorted(p.index for p in planned.values()) == list(range(JOBS)), "lost or doubled jobs"
    assert len(jobs) == len(planned) + len(capped)
    for jid, job in jobs.items():
        assert job["state"] in FINAL_OK, (jid, job["state"])
        if job["state"] != "delivered":
            assert job["failure_reason"], jid

    # -- what fal billed is what the ledger says; one fal request per job ---------------------
    assert sum(billed.values()) == charges - refunds
    assert set(billed) <= set(owner_of), sorted(set(billed) - set(owner_of))
    assert set(fal_jobs) <= set(owner_of), sorted(set(fal_jobs) - set(owner_of))
    assert len(owner_of) == sum(1 for r in jobs.values() if r["fal_request_id"]), "shared request"
    for request_id, micros in billed.items():
        assert jobs[owner_of[request_id]]["charged_micros"] == micros, request_id
    for jid, job in jobs.items():
        assert job["submit_attempts"] <= 2, jid

    # -- charged at most once, ledger balanced per job -----------------------------------------
    for jid, job in jobs.items():
        kinds = collections.Counter(e["kind"] for e in ledger[jid])
        amount = {k: sum(e["amount_micros"] for e in ledger[jid] if e["kind"] == k) for k in kinds}
        assert (kinds["reserve"], amount["reserve"]) == (1, job["estimate_micros"]), jid
        assert (kinds["release"], amount["release"]) == (1, amount["reserve"]), (jid, kinds)
        assert job["held_micros"] == 0, jid
        assert kinds["charge"] <= 1, (jid, kinds)
        assert kinds["refund"] == 0, (jid, kinds)
        assert job["charged_micros"] == amount.get("charge", 0), jid
        if job["state"] == "delivered":
            assert kinds["charge"] == 1, jid
            assert job["charged_micros"] == job["cost_micros"] > 0, jid

    # -- delivered once -------------------------------------------------------------------------
    assert double_messages == 0
    for jid, job in jobs.items():
        key = f"flexbot-job-{jid}"
        if job["state"] == "delivered":
            assert key in messages, f"job {jid} delivered without a message"
            assert job["output_hash"] == messages[key]["image_sha256"], jid
        else:
            assert key not in messages, f"job {jid} {job['state']} posted"

    # -- the capped member, through three processes at once -------------------------------------
    assert (
        admissions["admitted"] + sum(n for k, n in admissions.items() if k.startswith("refused"))
        == SLOTS * CAP_ATTEMPTS
    )
    assert admissions["admitted"] == len(capped)
    assert capped_spend <= CAP + max(0, overrun), (capped_spend, CAP, overrun)
    assert admissions["admitted"] >= 1
