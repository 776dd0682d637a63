"""Consistent backups of a live Flexbot: SQLite online backup plus the content-addressed blobs.

Order matters: the database snapshot is taken first, then the blobs are copied. A blob is always
written before the row that names it, so every blob the snapshot refers to is already on disk.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bot.errors import StoreError

DB_NAME = "flexbot.db"
BLOB_DIR = "blobs"
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    schema_version: int
    jobs: int
    ledger_rows: int
    blobs_copied: int


def _integrity(path: Path) -> tuple[int, int, int]:
    """(schema version, jobs, ledger rows) of a database that passes integrity_check."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StoreError(f"{path} failed integrity_check: {result}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    return int(version), int(jobs), int(ledger)


def backup(data_dir: Path, target: Path) -> BackupReport:
    """Copy the live database (online, consistent) and its blobs into ``target``."""
    source = data_dir / DB_NAME
    if not source.exists():
        raise StoreError(f"there is no database at {source}")
    if target.exists() and any(target.iterdir()):
        raise StoreError(f"{target} is not empty; choose a new directory for the backup")
    target.mkdir(parents=True, exist_ok=True)
    dest = target / DB_NAME
    with sqlite3.connect(source) as src, sqlite3.connect(dest) as out:
        src.execute("PRAGMA busy_timeout = 10000")
        src.backup(out, pages=1024)  # in steps, so writers are not blocked for long
    out.close()
    version, jobs, ledger = _integrity(dest)

    copied = 0
    blobs = data_dir / BLOB_DIR
    if blobs.exists():
        for path in blobs.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                copy = target / BLOB_DIR / path.relative_to(blobs)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
                copied += 1
    (target / MANIFEST).write_text(
        json.dumps(
            {
                "created_at": time.time(),
                "schema_version": version,
                "jobs": jobs,
                "ledger_rows": ledger,
                "blobs": copied,
            },
            indent=2,
        )
    )
    return BackupReport(target, version, jobs, ledger, copied)


def restore(source: Path, data_dir: Path, *, force: bool = False) -> BackupReport:
    """Put a backup in place as the data directory's database and blobs (bot stopped)."""
    db = source / DB_NAME
    if not db.exists():
        raise StoreError(f"{source} holds no {DB_NAME}; is it a Flexbot backup?")
    version, jobs, ledger = _integrity(db)
    live = data_dir / DB_NAME
    if live.exists() and not force:
        raise StoreError(
            f"{live} exists; stop the bot and pass --force to replace it (a copy of it is kept "
            f"as {live.name}.before-restore)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    if live.exists():
        shutil.copy2(live, live.with_name(live.name + ".before-restore"))
    tmp = live.with_name(live.name + ".restoring")
    shutil.copy2(db, tmp)
    for suffix in ("-wal", "-shm"):
        live.with_name(live.name + suffix).unlink(missing_ok=True)
    tmp.replace(live)
    copied = 0
    blobs = source / BLOB_DIR
    if blobs.exists():
        for path in blobs.rglob("*"):
            if path.is_file():
                dest = data_dir / BLOB_DIR / path.relative_to(blobs)
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)
                copied += 1
    return BackupReport(data_dir, version, jobs, ledger, copied)
