"""``flexbot usage``, ``reconcile`` and ``doctor``: reports printed from the database and fal."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from bot.cli_exit import EXIT_FAILED, EXIT_FAL_UNREACHABLE, EXIT_LIST_FORBIDDEN, EXIT_USAGE
from bot.fal.client import FalClient
from bot.fal.errors import FalError, FalRequestListForbidden
from bot.model import usd
from bot.settings import Settings


async def run_usage_cli(settings: Settings, args: argparse.Namespace) -> int:
    from bot.engine import usage
    from bot.store.connect import open_database

    if not settings.postgres and not settings.database_path.exists():
        print(f"flexbot: no database at {settings.database_path} yet", file=sys.stderr)
        return EXIT_FAILED
    now = time.time()
    span = usage.period("month", now)
    if args.since is not None:
        span = usage.Period(args.since.timestamp(), now + 1, f"since {args.since:%Y-%m-%d}")
    async with await open_database(settings) as db:
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
    from bot.store.connect import open_database

    if not settings.fal_key:
        print(
            "flexbot: error: FAL_KEY is not set; reconcile reads fal's request list with it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not settings.postgres and not settings.database_path.exists():
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
        await open_database(settings) as db,
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
