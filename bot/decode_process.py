"""Run one function call in a fresh, resource-limited process that can be killed.

Image decoders are C code fed with bytes from strangers. However carefully the header is checked
first (:mod:`bot.decode_cost`), a decoder can still loop or allocate in ways nobody predicted, and a
thread stuck in C code cannot be stopped: it holds its pool slot, and interpreter shutdown waits
for it. A process can be stopped. Each call here gets its own process, forked from the bot
itself, so it starts with Pillow already imported: a fork costs milliseconds, an interpreter with
Pillow a third of a second. One process per call also means one member's upload never shares a
heap with the next member's, and CPU limits (which count per process) need no bookkeeping.

Why ``fork`` and not ``forkserver`` or ``spawn``: those two re-import the ``__main__`` module in
every child (``python -m bot.cli`` would import the whole CLI per image, and a script without a
``__main__`` guard would recurse). Forking a process that has threads is safe only if the child
takes no lock another thread may have held; the child here runs Pillow on bytes it was given and
writes one answer to a pipe, the interpreter re-creates its import and logging locks after a
fork, and Pillow's plugins are imported before the first fork (:mod:`bot.images`). Should a child
still hang, its CPU timer cannot fire but the parent's wall-clock limit kills it.

Inside the process, before the call:

* ``ITIMER_PROF`` sends ``SIGPROF`` after ``cpu_seconds`` of CPU (all threads); its default
  action ends the process from inside any C call. ``RLIMIT_CPU`` one second later is the backstop.
* ``RLIMIT_DATA`` caps heap and anonymous mappings at what the process uses now plus
  ``memory_bytes``: a larger allocation fails, and Pillow turns that into ``MemoryError``.
  (Not ``RLIMIT_AS``: glibc reserves 64 MB of address space per thread arena, so a limit on address
  space fails for reasons unrelated to the image.)
* ``RLIMIT_CORE`` is 0: a decoder killed for overrunning leaves no core file of someone's photo.

The parent waits for the answer at most ``wall_seconds`` (the CPU timer cannot fire while the
process is not running, e.g. on an overloaded host), then kills it. :meth:`DecodeProcesses.close`
kills every running call, so shutting down never waits for a decode.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATUS = Path("/proc/self/status")


@dataclass(frozen=True, slots=True)
class Budget:
    """What one call may use."""

    cpu_seconds: float
    memory_bytes: int

    @property
    def wall_seconds(self) -> float:
        """How long the parent waits before killing: generous, the CPU timer is the real bound."""
        return 2 * self.cpu_seconds + 5.0


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """A call that returned, with what its process used."""

    value: T
    cpu_seconds: float
    peak_rss_kib: int


class Stopped(Exception):
    """The call's process ended without an answer.

    ``why`` is ``"cpu"`` (CPU timer or limit), ``"wall"`` (parent timeout), ``"closed"`` (the pool
    was closed), ``"crashed"`` (any other signal or exit, e.g. a segfault in a decoder).
    """

    def __init__(self, why: Literal["cpu", "wall", "closed", "crashed"], detail: str) -> None:
        self.why = why
        self.detail = detail
        super().__init__(f"decode process stopped ({why}): {detail}")


class Raised(Exception):
    """The call raised an exception in its process; ``str()`` carries the child's traceback."""


_CPU_SIGNALS = frozenset({signal.SIGPROF, signal.SIGXCPU})


class DecodeProcesses:
    """Starts a process per call; thread-safe; each :meth:`run` blocks its calling thread."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("fork")
        self._lock = threading.Lock()
        self._live: set[BaseProcess] = set()
        self._closed = False

    def run(self, fn: Callable[..., T], args: tuple[Any, ...], budget: Budget) -> Finished[T]:
        """Call ``fn(*args)`` in a new process; raises :class:`Stopped` or :class:`Raised`."""
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_child,
            args=(send, fn, args, budget),
            name="flexbot-decode",
            daemon=True,
        )
        try:
            self._check_open()
            process.start()  # never under the lock: close() must not wait for a fork
            send.close()
            with self._lock:
                self._live.add(process)
            self._check_open()
            return self._collect(process, receive, budget)
        finally:
            with self._lock:
                self._live.discard(process)
            receive.close()
            send.close()
            if process.pid is not None:
                with contextlib.suppress(ValueError):  # a process that never started
                    process.kill()
                    process.join()
                    process.close()

    def close(self) -> None:
        """Refuse new calls and kill the running ones (their callers get ``Stopped("closed")``)."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for process in live:
            with contextlib.suppress(ValueError):  # already reaped by its caller
                process.kill()

    def _check_open(self) -> None:
        with self._lock:
            if self._closed:
                raise Stopped("closed", "the image processor is closed")

    def _collect(self, process: BaseProcess, receive: Connection, budget: Budget) -> Finished[Any]:
        deadline = time.monotonic() + budget.wall_seconds
        message: tuple[str, Any, float, int] | None = None
        if receive.poll(budget.wall_seconds):
            with contextlib.suppress(EOFError):  # ended without a word: see the exit code
                message = receive.recv()
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()
            if message is None:
                why: Literal["wall", "closed"] = "closed" if self._is_closed() else "wall"
                raise Stopped(why, f"no answer within {budget.wall_seconds:.0f} s")
        if message is not None:
            kind, value, cpu, peak = message
            if kind == "raised":
                raise Raised(value)
            return Finished(value, cpu, peak)
        code = process.exitcode
        assert code is not None
        if self._is_closed():
            raise Stopped("closed", "the image processor is closed")
        if -code in _CPU_SIGNALS:
            raise Stopped("cpu", f"over {budget.cpu_seconds:g} s of CPU")
        name = signal.Signals(-code).name if code < 0 else f"exit code {code}"
        raise Stopped("crashed", name)

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed


def _child(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...], budget: Budget) -> None:
    _limit_self(budget)
    try:
        message: tuple[str, Any, float, int] = ("value", fn(*args), *_usage())
    except BaseException as e:  # every failure goes back to the parent, as text
        message = ("raised", "".join(traceback.format_exception(e)), *_usage())
    send.send(message)
    send.close()


def _limit_self(budget: Budget) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_PROF, budget.cpu_seconds)
    cpu_cap = math.ceil(budget.cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_cap, cpu_cap + 1))
    in_use = _status_kib("VmData")
    if in_use is not None:  # Linux; elsewhere the header checks are the only memory bound
        cap = in_use * 1024 + budget.memory_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))


def _usage() -> tuple[float, int]:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime, _status_kib("VmHWM") or 0


def _status_kib(field: str) -> int | None:
    try:
        status = _STATUS.read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None
