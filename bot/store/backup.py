"""Consistent backups of a live Flexbot: SQLite online backup plus the content-addressed blobs.

Order matters: the database snapshot is taken first, then the blobs are copied. A blob is always
written before the row that names it, so every blob the snapshot refers to is already on disk.

A backup holds every member's prompts and images, so it is owner-only whatever the umask: the
directory and its subdirectories 0700, every file 0600.

A backup is input from outside the bot: restore trusts nothing in it. Symbolic links and
anything but a regular file are skipped, never followed, and reported. Every blob must hash to
its own file name; one that does not makes restore refuse the whole backup before the live data
is touched. The live database's safety copy goes through SQLite (checkpoint, then the backup
API), so rows still in its write-ahead log are kept, not dropped with the ``-wal`` file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import StoreError

log = logging.getLogger(__name__)

DB_NAME = "flexbot.db"
BLOB_DIR = "blobs"
MANIFEST = "manifest.json"
SAFETY_SUFFIX = ".before-restore"
_HEX = frozenset("0123456789abcdef")
_CHUNK = 1024 * 1024
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    schema_version: int
    jobs: int
    ledger_rows: int
    blobs_copied: int
    #: entries left out, each "relative/path (why)": links, special files, stray names
    skipped: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Scan:
    blobs: list[tuple[Path, str]]  # (path, the sha256 its name claims)
    skipped: list[str]


def _integrity(path: Path) -> tuple[int, int, int]:
    """(schema version, jobs, ledger rows) of a database that passes integrity_check."""
    conn = sqlite3.connect(_read_only(path), uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StoreError(f"{path} failed integrity_check: {result}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable Flexbot database: {exc}") from exc
    finally:
        conn.close()
    return int(version), int(jobs), int(ledger)


def _read_only(path: Path) -> str:
    """A read-only SQLite URI; ``as_uri`` escapes any ``?`` or ``#`` in the path."""
    return f"{path.resolve().as_uri()}?mode=ro"


def _is_blob_name(name: str) -> bool:
    return len(name) == 64 and set(name) <= _HEX


def _scan_blobs(root: Path) -> _Scan:
    """The regular files under ``root`` named like blobs; links are listed, never followed."""
    scan = _Scan([], [])
    if not os.path.lexists(root):
        return scan
    if root.is_symlink() or not root.is_dir():
        scan.skipped.append(f"{BLOB_DIR} (not a directory)")
        return scan
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames):
            if (here / name).is_symlink():  # os.walk does not descend into it
                scan.skipped.append(f"{(here / name).relative_to(root)} (symbolic link)")
        for name in sorted(filenames):
            path = here / name
            shown = path.relative_to(root)
            mode = os.lstat(path).st_mode
            if name.startswith(".tmp-"):
                continue  # a blob being written while the backup ran
            if stat.S_ISLNK(mode):
                scan.skipped.append(f"{shown} (symbolic link)")
            elif not stat.S_ISREG(mode):
                scan.skipped.append(f"{shown} (not a regular file)")
            elif not _is_blob_name(name) or here.name != name[:2] or here.parent != root:
                scan.skipped.append(f"{shown} (not a blob name)")
            else:
                scan.blobs.append((path, name))
    for entry in scan.skipped:
        log.warning("skipped %s/%s", BLOB_DIR, entry)
    return scan


def _open_regular(path: Path) -> int:
    """A read descriptor for ``path``, refusing a link or special file swapped in meanwhile."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path} is no longer a regular file")
    return fd


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=_DIR_MODE, exist_ok=True)
    os.chmod(path, _DIR_MODE)  # mkdir's mode is filtered by the umask; chmod is not


def _new_private_file(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _FILE_MODE)
    os.fchmod(fd, _FILE_MODE)
    return fd


def _copy_private(src: Path, dest: Path) -> str:
    """Copy ``src`` to a new owner-only ``dest``; returns the sha256 of what was copied."""
    digest = hashlib.sha256()
    with (
        os.fdopen(_open_regular(src), "rb") as fin,
        os.fdopen(_new_private_file(dest), "wb") as out,
    ):
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _sqlite_copy(source: str, dest: Path) -> None:
    """Copy the database at URI ``source`` through SQLite's backup API (WAL contents
    included) to a new 0600 file."""
    dest.unlink(missing_ok=True)
    os.close(_new_private_file(dest))
    src = sqlite3.connect(source, uri=True)
    try:
        src.execute("PRAGMA busy_timeout = 10000")
        out = sqlite3.connect(dest)
        try:
            src.backup(out, pages=1024)  # in steps, so writers are not blocked for long
            # The copy inherits WAL mode; a single self-contained file is what a backup wants,
            # and a read-only open of a WAL file would leave -wal/-shm files behind.
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
    finally:
        src.close()
    os.chmod(dest, _FILE_MODE)


def backup(data_dir: Path, target: Path) -> BackupReport:
    """Copy the live database (online, consistent) and its blobs into ``target``."""
    source = data_dir / DB_NAME
    if not source.exists():
        raise StoreError(f"there is no database at {source}")
    if target.exists() and any(target.iterdir()):
        raise StoreError(f"{target} is not empty; choose a new directory for the backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    _private_dir(target)
    dest = target / DB_NAME
    _sqlite_copy(source.resolve().as_uri(), dest)
    version, jobs, ledger = _integrity(dest)

    scan = _scan_blobs(data_dir / BLOB_DIR)
    if scan.blobs:
        _private_dir(target / BLOB_DIR)
    for path, sha in scan.blobs:
        _private_dir(target / BLOB_DIR / sha[:2])
        _copy_private(path, target / BLOB_DIR / sha[:2] / sha)
    manifest = {
        "created_at": time.time(),
        "schema_version": version,
        "jobs": jobs,
        "ledger_rows": ledger,
        "blobs": len(scan.blobs),
    }
    with os.fdopen(_new_private_file(target / MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2)
    return BackupReport(target, version, jobs, ledger, len(scan.blobs), tuple(scan.skipped))


def _verify(source: Path, scan: _Scan) -> None:
    """Refuse the backup if any blob's bytes do not hash to its name."""
    bad = [path for path, sha in scan.blobs if _sha256_of(path) != sha]
    if bad:
        shown = ", ".join(str(p.relative_to(source)) for p in bad[:3])
        raise StoreError(
            f"{len(bad)} image(s) in {source} do not match their names ({shown}); the backup "
            "is damaged or was altered, so nothing was restored"
        )


def _safety_copy(live: Path) -> None:
    """Keep the live database as ``<name>.before-restore``, committed WAL rows included."""
    conn = sqlite3.connect(live)
    try:
        conn.execute("PRAGMA busy_timeout = 2000")
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.close()
    if busy:
        raise StoreError(f"{live} is in use; stop the bot before restoring")
    keep = live.with_name(live.name + SAFETY_SUFFIX)
    _sqlite_copy(live.resolve().as_uri(), keep)


def restore(source: Path, data_dir: Path, *, force: bool = False) -> BackupReport:
    """Put a backup in place as the data directory's database and blobs (bot stopped).

    Everything in the backup is checked first; a refused backup leaves the live data as it was."""
    db = source / DB_NAME
    if not os.path.lexists(db):
        raise StoreError(f"{source} holds no {DB_NAME}; is it a Flexbot backup?")
    if not stat.S_ISREG(os.lstat(db).st_mode):
        raise StoreError(f"{db} is not a regular file; refusing to restore from it")
    live = data_dir / DB_NAME
    if live.exists() and not force:
        raise StoreError(
            f"{live} exists; stop the bot and pass --force to replace it (a copy of it is kept "
            f"as {live.name}{SAFETY_SUFFIX})"
        )
    version, jobs, ledger = _integrity(db)
    scan = _scan_blobs(source / BLOB_DIR)
    _verify(source, scan)

    data_dir.mkdir(parents=True, exist_ok=True)
    if live.exists():
        _safety_copy(live)
    tmp = live.with_name(live.name + ".restoring")
    _sqlite_copy(_read_only(db), tmp)
    # The live WAL was checkpointed into the safety copy above; left in place it would be
    # replayed onto the restored file.
    for suffix in ("-wal", "-shm"):
        live.with_name(live.name + suffix).unlink(missing_ok=True)
    tmp.replace(live)

    blobs = data_dir / BLOB_DIR
    for path, sha in scan.blobs:
        dest = blobs / sha[:2] / sha
        if os.path.lexists(dest):
            continue
        dest.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        part = dest.with_name(f".tmp-{sha}-{os.getpid()}")
        part.unlink(missing_ok=True)
        if _copy_private(path, part) != sha:  # changed since it was verified
            part.unlink()
            raise StoreError(f"{path} changed during the restore; run it again")
        part.replace(dest)
    return BackupReport(data_dir, version, jobs, ledger, len(scan.blobs), tuple(scan.skipped))
