"""``flexbot edit``: one edit from the terminal, through the same engine the bot runs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from bot.cli_exit import EXIT_FAILED, EXIT_USAGE
from bot.core import Core, FalBackend, open_core
from bot.errors import ImageRejected
from bot.images import check_size
from bot.intake import new_input
from bot.model import EditParams, EditRequest, InputImage, JobState, Origin, Requester, usd
from bot.params import ParamLimits, parse_edit_params
from bot.settings import Settings
from bot.terminal import TERMINAL_USER_ID, StatusLine, TerminalDelivery, rerun_command


async def _read_inputs(core: Core, paths: Sequence[Path]) -> list[InputImage]:
    """Normalise each file (submit stores it once the job is admitted); ImageRejected names the
    file."""
    inputs = []
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageRejected(str(path), f"cannot read it ({exc.strerror})") from None
        check_size(str(path), size, core.settings.max_input_bytes)
        image = await core.images.normalize(path.read_bytes(), str(path))
        for note in image.notes:
            print(f"{path}: {note}", file=sys.stderr)
        inputs.append(new_input(image))
    return inputs


def _output_format(args: argparse.Namespace) -> str | None:
    if args.format is None and args.out:
        # `--out night.png` means a PNG: take the format from the file name when not given.
        return {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(Path(args.out).suffix.lower())
    return cast(str | None, args.format)


async def run_edit(args: argparse.Namespace, settings: Settings) -> int:
    params = parse_edit_params(
        prompt=args.prompt,
        num_images=len(args.images),
        limits=ParamLimits.from_settings(settings),
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        size=args.size,
        output_format=_output_format(args),
        safety_tolerance=args.safety_tolerance,
        enable_safety_checker=not args.no_safety_checker,
    )
    if not args.fake and not settings.fal_key:
        print(
            "flexbot: error: FAL_KEY is not set. Create a key at https://fal.ai/dashboard/keys "
            "and export FAL_KEY=..., or add --fake to try the bundled fake fal (no account, "
            "nothing billed).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with contextlib.ExitStack() as scratch:
        if args.fake:
            # A dry run keeps its jobs in a throwaway database: nothing billed, nothing to record.
            tmp = scratch.enter_context(tempfile.TemporaryDirectory(prefix="flexbot-edit-"))
            settings = dataclasses.replace(settings, data_dir=Path(tmp))
        backend = FalBackend.FAKE if args.fake else FalBackend.REAL
        async with open_core(
            settings, fal=backend, fake_processing_time=1.0, reconcile=False, serve_gallery=False
        ) as core:
            return await _edit_through_engine(core, args, params)
    raise AssertionError("unreachable")  # mypy: the with block always returns


async def _edit_through_engine(core: Core, args: argparse.Namespace, params: EditParams) -> int:
    delivery = TerminalDelivery(Path(args.out) if args.out else None, StatusLine(sys.stderr))
    inputs = await _read_inputs(core, args.images)
    await core.engine.start(delivery)
    ticket = await core.engine.submit(
        EditRequest(params, tuple(inputs), Requester(TERMINAL_USER_ID), origin=Origin.CLI)
    )
    dry = " (fake fal: nothing is billed)" if args.fake else ""
    megapixels = core.engine.prices.estimate(params, [(i.width, i.height) for i in inputs])
    print(
        f"Estimated cost: {usd(ticket.estimate_micros)} for {megapixels.total_megapixels} "
        f"megapixels{dry}",
        flush=True,
    )
    job = await core.engine.wait_for_state(
        ticket.job_id, tuple(JobState.FINAL), timeout=core.settings.fal_job_timeout_seconds + 60
    )
    if job.state != JobState.DELIVERED or delivery.written is None:
        reason = delivery.failure or job.failure_reason or job.state
        print(f"flexbot: error: {reason}", file=sys.stderr)
        return EXIT_FAILED
    assert job.seed is not None
    print(f"Wrote {delivery.written} ({job.output_width}x{job.output_height})")
    print(f"Seed: {job.seed}")
    print(f"Cost: {usd(job.cost_micros or 0)}{dry}")
    print(
        f"Rerun: {rerun_command(args.images, params, job.seed, delivery.written, fake=args.fake)}"
    )
    return 0
