"""A durable, idempotent Delivery for crash tests, plus the harness's own log, in one SQLite file.

``deliver`` behaves like a Discord post with a message nonce: the first post for a
``job.delivery_key`` creates a message, a second post with the same key returns that same message
(the platform deduplicates). Every raw ``deliver`` call is also recorded, in the same transaction,
so a test can report how often the engine *tried* to post a result more than once.

With ``latency`` each post takes that long to arrive and as long again to be acknowledged, so a
kill can land after the post but before the engine records it (the case the key exists for).
The file survives SIGKILL: each call commits before it returns (WAL, ``synchronous=FULL``).
The worker also writes what it saw at each start (job states before recovery) and every cancel it
issued, so the test can tell which jobs were caught in the ``submitting`` window.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import Words, english
from bot.model import Job, Progress

MESSAGE_ID_BASE = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    states TEXT NOT NULL            -- {"state": [job ids]} found before engine.start()
);
CREATE TABLE IF NOT EXISTS posts (  -- every raw deliver() call
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (  -- what members see: one per key (the nonce)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    job_id INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    run INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (  -- Delivery.failed() calls
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS admissions (  -- the capped member's edits: admitted or refused
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cancels (  -- Engine.cancel() calls the worker made
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    caller INTEGER NOT NULL,
    moderator INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


class HarnessLog:
    """The worker's durable notes: runs, posts, messages, failure notices, cancels."""

    def __init__(self, path: Path, pid: int) -> None:
        self.conn = connect(path)
        self.run = 0
        self.pid = pid

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def begin_run(self, states: dict[str, list[int]]) -> int:
        with self.tx() as conn:
            cur = conn.execute(
                "INSERT INTO runs (pid, started_at, states) VALUES (?, ?, ?)",
                (self.pid, time.time(), json.dumps(states, sort_keys=True)),
            )
        assert cur.lastrowid is not None
        self.run = cur.lastrowid
        return self.run

    def cancel(self, job_id: int, caller: int, moderator: bool, outcome: str) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO cancels (run, job_id, caller, moderator, outcome)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.run, job_id, caller, int(moderator), outcome),
            )

    def admission(self, outcome: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT INTO admissions (run, outcome) VALUES (?, ?)", (self.run, outcome))

    def close(self) -> None:
        self.conn.close()


class FileDelivery:
    """The engine's Delivery: posts deduplicated by ``job.delivery_key``, all of it on disk."""

    def __init__(self, log: HarnessLog, latency: float = 0.0) -> None:
        self.log = log
        self.latency = latency  # each way, like a round trip to Discord
        self.progress_calls = 0

    async def progress(self, job: Job, progress: Progress) -> None:
        self.progress_calls += 1

    async def deliver(self, job: Job, image: bytes) -> int | None:
        sha = hashlib.sha256(image).hexdigest()
        key = job.delivery_key
        await asyncio.sleep(self.latency)
        with self.log.tx() as conn:
            conn.execute(
                "INSERT INTO posts (run, job_id, key, image_sha256, at) VALUES (?, ?, ?, ?, ?)",
                (self.log.run, job.id, key, sha, time.time()),
            )
            conn.execute(
                "INSERT INTO messages (key, job_id, image_sha256, run) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO NOTHING",
                (key, job.id, sha, self.log.run),
            )
            row = conn.execute("SELECT id FROM messages WHERE key = ?", (key,)).fetchone()
        await asyncio.sleep(self.latency)  # posted, but the engine has not heard back yet
        return MESSAGE_ID_BASE + int(row["id"])

    async def failed(self, job: Job, reason: Words) -> None:
        reason = english(reason)
        with self.log.tx() as conn:
            conn.execute(
                "INSERT INTO notices (run, job_id, state, reason) VALUES (?, ?, ?, ?)",
                (self.log.run, job.id, job.state, reason),
            )
