"""``flexbot``: run the bot, run one edit from the terminal, reconcile the ledger with fal, run the
fake fal, print settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from bot.core import Core, FalBackend, open_core
from bot.errors import ConfigError, ImageRejected, InvalidParameter, StoreError, UserError
from bot.fal.client import FalClient
from bot.fal.errors import FalError, FalRequestListForbidden
from bot.images import check_size
from bot.intake import new_input
from bot.logs import configure_logging
from bot.model import EditParams, EditRequest, InputImage, JobState, Origin, Requester, usd
from bot.params import ParamLimits, parse_edit_params
from bot.settings import Settings, load_settings, render_example
from bot.terminal import TERMINAL_USER_ID, StatusLine, TerminalDelivery, rerun_command

log = logging.getLogger(__name__)

EXIT_FAILED = 1  # for `reconcile`: something differs
EXIT_USAGE = 2
EXIT_LIST_FORBIDDEN = 3  # `reconcile`: the fal key cannot read fal's request list
EXIT_FAL_UNREACHABLE = 4  # `reconcile`: fal's request list could not be read for another reason


# -- flexbot edit --------------------------------------------------------------------------------


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
            settings, fal=backend, fake_processing_time=1.0, reconcile=False
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


# -- flexbot run / fake-fal ----------------------------------------------------------------------

LOGIN_HELP = """\
flexbot: DISCORD_TOKEN is not set, so the bot cannot log in.

To get a token: open https://discord.com/developers/applications, create an application, open
"Bot", press "Reset Token" and copy it. Then:

    export DISCORD_TOKEN=...      # never commit it; or name a secrets_file in the settings
    export FAL_KEY=...            # from https://fal.ai/dashboard/keys (omit for a dry run)
    flexbot run

To try an edit without any account first:

    flexbot edit samples/photo.jpg --prompt "make it night" --fake --out out.png
"""


async def run_bot(settings: Settings) -> int:
    if not settings.discord_token:
        print(LOGIN_HELP, file=sys.stderr, end="")
        return EXIT_USAGE
    from bot.app import run  # imports discord; only the bot needs it

    return await run(settings)


def _utc_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


async def run_usage_cli(settings: Settings, args: argparse.Namespace) -> int:
    from bot.engine import usage
    from bot.store.db import Database

    if not settings.database_path.exists():
        print(f"flexbot: no database at {settings.database_path} yet", file=sys.stderr)
        return EXIT_FAILED
    now = time.time()
    span = usage.period("month", now)
    if args.since is not None:
        span = usage.Period(args.since.timestamp(), now + 1, f"since {args.since:%Y-%m-%d}")
    async with await Database.open(settings.database_path) as db:
        if args.csv:
            print(await usage.export_csv(db, args.guild, span), end="")
            return 0
        report = await usage.usage_report(db, args.guild, span)
    t = report.totals
    where = f"server {args.guild}" if args.guild else "all servers"
    print(f"Usage for {where}, {span.label}")
    print(f"  jobs {t.jobs}: {t.delivered} delivered, {t.failed} failed, {t.cancelled} cancelled")
    print(f"  spent {usd(t.charged_micros)}, held for running jobs {usd(t.held_micros)}")
    for title, rows, label in (
        ("Top members", report.top_members, "user"),
        ("Channels", report.channels, "channel"),
    ):
        if rows:
            print(f"{title}:")
            for row in rows:
                print(f"  {label} {row.key}: {row.jobs} jobs, {usd(row.spent_micros)}")
    return 0


def reconcile_period(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """``[since, the end of until's day)``, never past now; default: this UTC month so far."""
    start = since or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = min(now, until + timedelta(days=1)) if until else now
    return start, end


async def run_reconcile_cli(settings: Settings, args: argparse.Namespace) -> int:
    from bot.reconcile import KEY_SCOPE_FIX, reconcile
    from bot.reconcile_text import report_lines
    from bot.store.db import Database

    if not settings.fal_key:
        print(
            "flexbot: error: FAL_KEY is not set; reconcile reads fal's request list with it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not settings.database_path.exists():
        print(
            f"flexbot: error: no database at {settings.database_path} (check data_dir)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    start, end = reconcile_period(args.since, args.until, datetime.now(UTC))
    if start >= end:
        print("flexbot: error: --since must be before --until and today", file=sys.stderr)
        return EXIT_USAGE
    async with (
        await Database.open(settings.database_path) as db,
        FalClient.from_settings(settings, settings.fal_key) as fal,
    ):
        try:
            report = await reconcile(db, fal, settings, start, end)
        except FalRequestListForbidden as exc:
            print(
                f"flexbot: error: fal refused this key its request list (HTTP {exc.status}), so "
                f"nothing can be reconciled: {KEY_SCOPE_FIX}",
                file=sys.stderr,
            )
            return EXIT_LIST_FORBIDDEN
        except FalError as exc:
            print(
                f"flexbot: error: could not read fal's request list: {exc.user_message} ({exc})",
                file=sys.stderr,
            )
            return EXIT_FAL_UNREACHABLE
    for line in report_lines(report, settings.fal_app_id):
        print(line)
    return 0 if report.ok else EXIT_FAILED


async def run_doctor_cli(settings: Settings) -> int:
    from bot.app import check_discord
    from bot.doctor import run_doctor

    async with FalClient.from_settings(settings, settings.fal_key) as client:
        results = await run_doctor(settings, client, check_discord)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} ok, {len(failed)} failed")
    return EXIT_FAILED if failed else 0


# -- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flexbot", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="settings file (default: FLEXBOT_CONFIG or config/flexbot.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the Discord bot")

    edit = sub.add_parser("edit", help="run one edit from the terminal")
    edit.add_argument("images", nargs="+", type=Path, help="1 to 8 reference images")
    edit.add_argument("--prompt", required=True)
    edit.add_argument("--seed")
    edit.add_argument("--steps")
    edit.add_argument("--guidance")
    edit.add_argument("--size", help="auto, a preset such as landscape_16_9, or WIDTHxHEIGHT")
    edit.add_argument("--format", help="jpeg (default) or png")
    edit.add_argument("--safety-tolerance", help="1 (strictest) to 5; default 2")
    edit.add_argument("--no-safety-checker", action="store_true")
    edit.add_argument("--out", help="where to write the image (default flexbot-SEED.EXT)")
    edit.add_argument(
        "--fake", action="store_true", help="use the bundled fake fal: no key, nothing billed"
    )

    fake = sub.add_parser("fake-fal", help="serve the bundled fake fal over HTTP")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument(
        "--processing-time", type=float, default=1.0, help="seconds each request spends in progress"
    )
    fake.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")

    sub.add_parser("config-example", help="print config/flexbot.example.toml")
    sub.add_parser("doctor", help="check settings, storage, the fal key and Discord access")

    use = sub.add_parser("usage", help="spend report from the database")
    use.add_argument("--guild", type=int, help="one server's id (default: the whole bot)")
    use.add_argument("--since", type=_utc_date, help="YYYY-MM-DD, UTC (default: this month)")
    use.add_argument("--csv", action="store_true", help="one row per job, as CSV")

    rec = sub.add_parser(
        "reconcile",
        help="compare the ledger with fal's request list; exit 1 when anything differs",
    )
    rec.add_argument("--since", type=_utc_date, help="YYYY-MM-DD, UTC (default: this month)")
    rec.add_argument(
        "--until", type=_utc_date, help="YYYY-MM-DD, UTC, that whole day included (default: now)"
    )

    bak = sub.add_parser("backup", help="copy the live database and images to a directory")
    bak.add_argument("path", type=Path, help="a new, empty directory")
    res = sub.add_parser("restore", help="restore a backup into the data directory (bot stopped)")
    res.add_argument("path", type=Path, help="a directory written by `flexbot backup`")
    res.add_argument("--force", action="store_true", help="replace an existing database")
    return parser


def _edit(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_edit(args, settings))


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_bot(settings))


def _usage(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_usage_cli(settings, args))


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_reconcile_cli(settings, args))


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(run_doctor_cli(settings))


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store import backup

    report = backup.backup(settings.data_dir, args.path)
    print(
        f"Backed up {report.jobs} jobs, {report.ledger_rows} ledger rows and "
        f"{report.blobs_copied} images to {report.path}"
    )
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store import backup

    report = backup.restore(args.path, settings.data_dir, force=args.force)
    print(
        f"Restored {report.jobs} jobs, {report.ledger_rows} ledger rows and "
        f"{report.blobs_copied} images into {report.path}"
    )
    return 0


def _fake_fal(args: argparse.Namespace, settings: Settings) -> int:
    from bot.fal.fake import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.port,
                processing_time=args.processing_time,
                latency=args.latency,
            )
        )
    return 0


# Every command but config-example, which needs no settings.
_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "edit": _edit,
    "run": _run,
    "usage": _usage,
    "doctor": _doctor,
    "reconcile": _reconcile,
    "backup": _backup,
    "restore": _restore,
    "fake-fal": _fake_fal,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config-example":
        print(render_example(), end="")
        return 0
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"flexbot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        settings.log_level,
        json_lines=settings.log_format == "json",
        secrets=[s for s in (settings.discord_token, settings.fal_key) if s],
    )
    if args.command == "edit" and not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("bot").setLevel(logging.WARNING)  # the terminal shows progress itself
    command = _COMMANDS.get(args.command)
    if command is None:
        raise AssertionError(f"unhandled command {args.command}")
    try:
        return command(args, settings)
    except InvalidParameter as exc:
        print(f"flexbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:  # an image refused, a budget or limit that says no
        print(f"flexbot: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FalError as exc:
        print(f"flexbot: error: {exc.user_message} ({exc})", file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        print(f"flexbot: database error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
