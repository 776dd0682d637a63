"""Child processes for the crash tests: spawned, read, killed by pid and reaped at teardown."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Children see no FLEXBOT_* settings from the developer's shell.
CHILD_ENV = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBOT_")}


class Procs:
    """Every process this test starts; all are killed by pid and reaped at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.stderr").open("ab") as err:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=CHILD_ENV,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()

    def alive(self) -> list[int]:
        """Pids still running: not yet reaped, or (after a reap) still our child somehow."""
        mine = {p.pid for p in self.started}
        children = {c.pid for c in psutil.Process().children(recursive=True) if c.pid in mine}
        return sorted({p.pid for p in self.started if p.poll() is None} | children)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        assert started.alive() == [], "processes left running"


def read_line(stream: IO[bytes] | None, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The next stdout line of ``proc``, or '' if it exited or said nothing in time."""
    assert stream is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.05)
        if ready:
            return stream.readline().decode().strip()
        if proc.poll() is not None:
            return ""
    return ""


def inject(fal_url: str, faults: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=fal_url, timeout=10) as http:
        for fault in faults:
            http.post("/_fake/faults", json=fault).raise_for_status()


def fake_fal(procs: Procs, processing_time: float, concurrency: int) -> str:
    """The bundled fake fal in a process of its own (its billing log outlives the workers)."""
    fake = procs.spawn(
        "fake-fal",
        ["-m", "bot.cli", "fake-fal", "--port", "0", "--processing-time", str(processing_time)],
    )
    line = read_line(fake.stdout, fake, timeout=30)
    assert line.startswith("fake fal listening on "), f"fake fal did not start: {line!r}"
    url = line.removeprefix("fake fal listening on ")
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/_fake/config", json={"concurrency": concurrency}).raise_for_status()
    return url
