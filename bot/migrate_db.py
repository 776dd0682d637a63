"""``flexbot migrate-db --to postgresql://...``: move a SQLite deployment to PostgreSQL.

Reads the SQLite database and the image files of the deployment the settings name (``--config``,
``data_dir``), copies them into an empty PostgreSQL database and prints what was copied and how it
was verified (:mod:`bot.store.copy` does the work). Exit 0 only when every check matched and every
image file was copied. The URL's password never appears in what is printed.
"""

from __future__ import annotations

import sys
from typing import TextIO
from urllib.parse import unquote, urlsplit

from bot.cli_exit import EXIT_FAILED, EXIT_USAGE
from bot.errors import StoreError
from bot.model import usd
from bot.settings import Settings, redact_url
from bot.store.copy import CopyReport, MigrationRefused, copy_deployment

_POSTGRES = ("postgresql://", "postgres://")


async def migrate_db(
    settings: Settings, target_url: str, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """Copy the settings' SQLite deployment into the PostgreSQL database at ``target_url``."""
    shown = redact_url(target_url)

    def fail(message: str, code: int) -> int:
        print(f"flexbot: migrate-db: {_scrub(message, target_url)}", file=err)
        return code

    if not target_url.startswith(_POSTGRES):
        return fail(f"--to must be a postgresql://user@host/db URL, not {shown}", EXIT_USAGE)
    if settings.postgres:
        return fail(
            "the settings already name a PostgreSQL database; migrate-db copies the SQLite "
            "deployment of these settings (leave database_url unset or a file path)",
            EXIT_USAGE,
        )
    source = settings.database_path
    if not source.is_file():
        return fail(f"no SQLite database at {source} (check --config and data_dir)", EXIT_USAGE)
    print(f"Copying {source} and the images in {settings.blob_dir} into {shown}", file=out)
    try:
        report = await copy_deployment(
            source, settings.blob_dir, target_url, progress=lambda line: print(line, file=err)
        )
    except MigrationRefused as exc:
        return fail(f"refused, no row was written: {exc}", EXIT_USAGE)
    except (StoreError, ValueError) as exc:  # ValueError: asyncpg on a URL it cannot parse
        return fail(f"failed, no row was written: {exc}", EXIT_FAILED)
    for line in report_lines(report, shown):
        print(line, file=out)
    return 0 if report.committed and not report.bad_blobs else EXIT_FAILED


def report_lines(report: CopyReport, target: str) -> list[str]:
    """The printed report: rows per table, the checks, skipped files, the verdict."""
    lines = [f"{'table':<24}{'SQLite':>12}{'PostgreSQL':>12}"]
    for t in report.tables:
        lines.append(f"{t.name:<24}{t.source:>12}{t.target:>12}  {_verdict(t.ok)}")
    lines.append(f"{'image files copied':<24}{report.blob_files:>12}")
    lines += ["", f"{'check':<40}{'SQLite':>14}{'PostgreSQL':>14}"]
    for c in report.checks:
        was, now = (usd(c.source), usd(c.target)) if c.money else (c.source, c.target)
        lines.append(f"{c.what:<40}{was:>14}{now:>14}  {_verdict(c.ok)}")
    if report.bad_blobs:
        lines += ["", f"Skipped {len(report.bad_blobs)} image file(s), not copied:"]
        lines += [f"  {b.path}: {b.reason}" for b in report.bad_blobs]
    if report.missing_images:
        lines.append(
            f"Note: {report.missing_images} image(s) the jobs refer to had no file in the SQLite "
            "deployment either (not deleted by retention)."
        )
    lines.append("")
    if not report.committed:
        lines.append("Verification FAILED: rolled back, nothing was written.")
    elif report.bad_blobs:
        lines.append(
            f"Copied and verified into {target}, EXCEPT the image file(s) listed above. "
            "Their jobs' images are lost; the rest is ready."
        )
    else:
        lines.append(
            f"Copied and verified: {target} is ready. Set database_url to it (password in "
            "PGPASSWORD or ~/.pgpass) and start the bot."
        )
    return lines


def _verdict(ok: bool) -> str:
    return "ok" if ok else "DIFFERS"


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL's password, in either spelling (a driver may echo it)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        assert secret is not None
        text = text.replace(secret, "***")
    return text
