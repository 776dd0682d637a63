"""A real, throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.

API (everything else is private):

    cluster = PgCluster()            # or PgCluster(settings={"log_statement": "all"})
    cluster.start(base_dir)          # initdb + pg_ctl start -w; listens on 127.0.0.1:<free port>
    url = cluster.url("postgres")    # postgresql://flexbot@127.0.0.1:<port>/postgres (trust auth)
    url = await cluster.create_database("t1")   # a fresh, empty database; returns its URL
    await cluster.drop_database("t1")            # WITH (FORCE): open connections are ended
    cluster.stop()                   # pg_ctl stop -m immediate (then -m fast); idempotent

    with PgCluster.running(base_dir) as cluster:   # start, and stop on exit (bench scripts)
        ...

Pytest tests use the ``pg_cluster`` and ``pg_url`` fixtures of ``tests/support/pg_fixtures.py``.

The server is tuned for speed, not durability (fsync, synchronous_commit and full_page_writes off):
its data is thrown away. Binaries come from ``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin``, else PATH; when none has initdb, start() fails with the apt-get
command to install them rather than letting PG tests skip.

initdb and postgres refuse to run as root, so under root the server runs as the ``postgres`` system
user through ``runuser``. The data directory and unix socket live in a directory of the cluster's
own, in /dev/shm when it has 2 GiB free (a fresh database then takes ~0.02 s instead of ~0.2 s on
ext4), else in the system temp dir; stop() removes it. Not in ``base_dir``: under root, postgres
could not reach into pytest's 0700 temp dirs. ``base_dir`` keeps ``postgres.log`` (initdb, start-up
and server log) after stop(); any start failure shows its tail.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import asyncpg

USER = "flexbot"
HOST = "127.0.0.1"
INSTALL_HINT = "install PostgreSQL, e.g. `apt-get install postgresql` (Debian/Ubuntu, as root)"

_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    # Checkpoints are cheap without fsync; a small WAL keeps a tmpfs data directory small.
    "max_wal_size": "128MB",
    "min_wal_size": "32MB",
}
# Creating the ~300 files of a database costs ~0.2 s on ext4 (its inode allocator scans past
# recently deleted inodes) and ~0.02 s on tmpfs, so data goes to /dev/shm when it has room.
_SHM = Path("/dev/shm")  # noqa: S108 (only mkdtemp, which makes a fresh 0700 dir, uses it)
_SHM_MIN_FREE_BYTES = 2 << 30
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_START_ATTEMPTS = 3  # the free port we picked may be taken before the server binds it
_PG_CTL_TIMEOUT_S = 60
_LOG_TAIL_CHARS = 4000


class PgClusterError(RuntimeError):
    """The server could not be found, started or stopped; the message says why."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl (pg_config, then /usr/lib/postgresql, then PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versioned), key=_major_version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if _has_server_binaries(bindir):
            return bindir
    raise PgClusterError(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else -1


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))


def _fast_temp_dir() -> Path | None:
    """The shared-memory tmpfs when it has room to spare, else None (the system temp dir)."""
    try:
        stats = os.statvfs(_SHM)
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= _SHM_MIN_FREE_BYTES
    return _SHM if roomy and os.access(_SHM, os.W_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One PostgreSQL server (initdb'd fresh) on 127.0.0.1, owned by the process that started it."""

    def __init__(
        self, bindir: Path | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        """``bindir`` overrides the lookup of initdb/pg_ctl; ``settings`` add to (or override) the
        postgresql.conf settings of the server."""
        self._bindir = bindir
        self._settings = {**_SERVER_SETTINGS, **(settings or {})}
        self._port: int | None = None
        self._data_dir: Path | None = None
        self._run_dir: Path | None = None  # outside base_dir: ours to delete
        self._log_path: Path | None = None
        # As root the server runs as `postgres`; otherwise as whoever runs the tests.
        self._as_postgres = os.geteuid() == 0

    @classmethod
    @contextmanager
    def running(
        cls, base_dir: Path, *, settings: Mapping[str, str] | None = None
    ) -> Iterator[PgCluster]:
        """Start a cluster in ``base_dir`` and stop it on exit, even when the body raises."""
        cluster = cls(settings=settings)
        try:
            cluster.start(base_dir)
            yield cluster
        finally:
            cluster.stop()

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 the server listens on."""
        if self._port is None:
            raise PgClusterError("PgCluster is not running")
        return self._port

    @property
    def log_path(self) -> Path:
        """The file with initdb's and the server's output."""
        if self._log_path is None:
            raise PgClusterError("PgCluster was never started")
        return self._log_path

    def url(self, dbname: str = "postgres") -> str:
        """The connection URL of database ``dbname`` (user flexbot, no password)."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{dbname}"

    def start(self, base_dir: Path) -> None:
        """initdb a fresh data directory and start the server; returns once it takes connections."""
        if self._port is not None:
            raise PgClusterError("PgCluster is already running")
        bindir = self._bindir or find_bindir()
        if not _has_server_binaries(bindir):
            raise PgClusterError(f"no initdb/pg_ctl in {bindir}: {INSTALL_HINT}")
        base_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = base_dir / "postgres.log"
        try:
            self._init_and_start(bindir, self._make_run_dir())
        except BaseException:
            self.stop()  # leave no server or data directory behind a failed start
            raise

    def _init_and_start(self, bindir: Path, run_dir: Path) -> None:
        data_dir = run_dir / "data"
        socket_dir = run_dir / "sockets"
        socket_dir.mkdir()
        self._chown_to_server(socket_dir)
        initdb_args = ["-D", str(data_dir), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"]
        self._run(bindir / "initdb", [*initdb_args, "--locale=C"], what="initdb")
        settings = {"unix_socket_directories": str(socket_dir), **self._settings}
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# PgCluster (tests): fast and throwaway\n")
            conf.writelines(f"{key} = '{value}'\n" for key, value in settings.items())
        self._data_dir = data_dir
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            try:
                self._pg_ctl(bindir, "start", "-w", "-o", f"-p {port}", what="pg_ctl start")
            except PgClusterError:
                self._stop_server(bindir)  # a start that timed out may have left a postmaster
                if attempt < _START_ATTEMPTS and "could not bind" in self._log_tail():
                    continue
                raise
            self._port = port
            return

    def stop(self) -> None:
        """Stop the server (immediate, else fast shutdown); a no-op when it is not running."""
        if self._data_dir is not None:
            self._stop_server(self._bindir or find_bindir())
        self._port = None
        self._data_dir = None
        self._remove_run_dir()

    async def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (lowercase letters, digits, _) and return its URL."""
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {_quoted(name)}")
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending any connection still open to it."""
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        finally:
            await conn.close()

    def _make_run_dir(self) -> Path:
        # Its own directory under a world-traversable temp dir: under root, postgres could not
        # reach into pytest's 0700 base temp dirs; and unix socket paths must stay short.
        run_dir = Path(tempfile.mkdtemp(prefix="flexbot-pg-", dir=_fast_temp_dir()))
        self._run_dir = run_dir
        self._chown_to_server(run_dir)
        with self.log_path.open("a") as log:
            log.write(f"PgCluster: data directory and sockets in {run_dir}\n")
        return run_dir

    def _remove_run_dir(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def _chown_to_server(self, path: Path) -> None:
        if self._as_postgres:
            shutil.chown(path, user="postgres", group="postgres")

    def _stop_server(self, bindir: Path) -> None:
        for mode in ("immediate", "fast"):
            try:
                self._pg_ctl(bindir, "stop", "-w", "-m", mode, what=f"pg_ctl stop -m {mode}")
            except PgClusterError:
                continue
            return
        if self._server_pid_file_exists():
            raise PgClusterError(f"PostgreSQL would not stop:\n{self._log_tail()}")

    def _server_pid_file_exists(self) -> bool:
        return self._data_dir is not None and (self._data_dir / "postmaster.pid").exists()

    def _pg_ctl(self, bindir: Path, *args: str, what: str) -> None:
        assert self._data_dir is not None
        timeout = ["-t", str(_PG_CTL_TIMEOUT_S)]
        self._run(bindir / "pg_ctl", [*args, *timeout, "-D", str(self._data_dir)], what=what)

    def _run(self, tool: Path, args: list[str], *, what: str) -> None:
        command = [str(tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # Output goes to a file, never a pipe: the postmaster inherits pg_ctl's stdout and keeps
        # it open, so reading a pipe to its end would wait for the server to exit. An fd we opened
        # also lets the `postgres` user write into our (possibly 0700) base_dir.
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tempfile.gettempdir(),  # postgres must be able to stand in its cwd
                check=False,
            )
        if result.returncode != 0:
            raise PgClusterError(
                f"{what} failed (exit {result.returncode}); end of {self.log_path}:\n"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        return self._log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]


def _quoted(name: str) -> str:
    # CREATE/DROP DATABASE take no parameters; the name is checked, then quoted.
    if not _DB_NAME.fullmatch(name):
        raise ValueError(f"database name must match {_DB_NAME.pattern}: {name!r}")
    return f'"{name}"'
