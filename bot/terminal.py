"""``flexbot edit``: one edit from the terminal, through the same engine as the bot.

The terminal is just another :class:`~bot.engine.delivery.Delivery`: progress goes to stderr,
the result is written to a file, a failure is kept for the command to print. So the CLI gets the
bot's budgets, ledger rows and fal handling instead of a parallel pipeline of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.engine.delivery import Progress
from bot.errors import Words, english
from bot.model import EditParams, Job

#: The member id the terminal's jobs are recorded under: nobody on Discord has id 0.
TERMINAL_USER_ID = 0


@dataclass
class StatusLine:
    """Progress on a stream: one rewritten line on a terminal, plain lines otherwise."""

    out: TextIO
    _last: str = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.out.isatty():
            self.out.write("\r\033[K" + text[:200])
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.out.isatty() and self._last:
            self.out.write("\n")
        self._last = ""


def progress_text(progress: Progress) -> str | None:
    """What the status line says for one progress report."""
    if progress.state == "fal_queue":
        return f"Waiting at fal, position {progress.queue_position}"
    if progress.logs:
        return f"Running: {progress.logs[-1]}"
    if progress.state == "running":
        return "Running"
    if progress.state == "queued":
        return "Queued"
    return None


@dataclass
class TerminalDelivery:
    """Writes the result to ``out`` (default ``flexbot-SEED.EXT``), progress on ``status``."""

    out: Path | None
    status: StatusLine
    written: Path | None = field(default=None, init=False)
    failure: str | None = field(default=None, init=False)

    async def progress(self, job: Job, progress: Progress) -> None:
        text = progress_text(progress)
        if text:
            self.status.show(text)

    async def deliver(self, job: Job, image: bytes) -> int | None:
        self.status.done()
        ext = "png" if job.params.output_format == "png" else "jpg"
        self.written = self.out or Path(f"flexbot-{job.seed}.{ext}")
        self.written.write_bytes(image)
        return None

    async def failed(self, job: Job, reason: Words) -> None:
        self.status.done()
        self.failure = english(reason)  # the terminal speaks English


def rerun_command(
    images: Sequence[Path], params: EditParams, seed: int, out: Path, *, fake: bool
) -> str:
    """The command line that makes the same image again (same seed, same inputs)."""
    words = [
        "flexbot",
        "edit",
        *[str(p) for p in images],
        "--prompt",
        params.prompt,
        "--seed",
        str(seed),
        "--size",
        str(params.image_size),
        "--steps",
        str(params.num_inference_steps),
        "--guidance",
        f"{params.guidance_scale:g}",
        "--format",
        params.output_format,
        "--safety-tolerance",
        params.safety_tolerance,
    ]
    if not params.enable_safety_checker:
        words.append("--no-safety-checker")
    if fake:
        words.append("--fake")
    words += ["--out", str(out)]
    return shlex.join(words)
