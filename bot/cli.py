"""``flexbot``: run the bot, run one edit from the terminal, reconcile the ledger with fal, run the
fake fal, print settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.cli_edit import run_edit
from bot.cli_exit import EXIT_FAILED, EXIT_FAL_UNREACHABLE, EXIT_LIST_FORBIDDEN, EXIT_USAGE
from bot.cli_reports import reconcile_period, run_doctor_cli, run_reconcile_cli, run_usage_cli
from bot.errors import ConfigError, InvalidParameter, StoreError, UserError
from bot.fal.errors import FalError
from bot.logs import configure_logging
from bot.settings import Settings, load_settings, render_example

log = logging.getLogger(__name__)

# The commands' own modules: `edit` in bot.cli_edit, the reports in bot.cli_reports. Their
# entry points and the exit codes stay importable from here.
__all__ = [
    "EXIT_FAILED",
    "EXIT_FAL_UNREACHABLE",
    "EXIT_LIST_FORBIDDEN",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "reconcile_period",
    "run_bot",
    "run_doctor_cli",
    "run_edit",
    "run_reconcile_cli",
    "run_usage_cli",
]


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

    mig = sub.add_parser(
        "migrate-db",
        help="copy this SQLite deployment (database and images) into an empty PostgreSQL database",
    )
    mig.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://user@host/db (password: PGPASSWORD)",
    )
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


def _not_on_postgresql(command: str) -> int:
    print(
        f"flexbot: error: `flexbot {command}` copies a SQLite deployment; this one uses "
        "PostgreSQL (database_url), whose images are in the database too: back it up with "
        "pg_dump and restore it with pg_restore",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store import backup

    if settings.postgres:
        return _not_on_postgresql("backup")

    report = backup.backup(settings.data_dir, args.path)
    print(
        f"Backed up {report.jobs} jobs, {report.ledger_rows} ledger rows and "
        f"{report.blobs_copied} images to {report.path}"
    )
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store import backup

    if settings.postgres:
        return _not_on_postgresql("restore")

    report = backup.restore(args.path, settings.data_dir, force=args.force)
    print(
        f"Restored {report.jobs} jobs, {report.ledger_rows} ledger rows and "
        f"{report.blobs_copied} images into {report.path}"
    )
    return 0


def _migrate_db(args: argparse.Namespace, settings: Settings) -> int:
    from bot.migrate_db import migrate_db

    return asyncio.run(migrate_db(settings, args.to))


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
    "migrate-db": _migrate_db,
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
