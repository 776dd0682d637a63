"""``flexbot doctor``: one line per check, with what to do when it fails."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.errors import StoreError
from bot.fal.client import FalClient
from bot.fal.errors import FalAuthError, FalError, FalRequestListForbidden
from bot.reconcile import KEY_SCOPE_FIX
from bot.settings import Settings, redact_url
from bot.store.db import inspect_file, migrations
from bot.store.postgres import PG_MIGRATIONS, inspect_server


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"[{mark}] {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix and not self.ok else "")


def check_config(settings: Settings) -> CheckResult:
    where = str(settings.config_path) if settings.config_path else "no file (defaults + env)"
    return CheckResult("config", True, f"loaded from {where}")


def check_data_dir(settings: Settings) -> CheckResult:
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return CheckResult(
            "data directory",
            False,
            f"{path} is not writable ({exc.strerror})",
            f"create {path} and give the bot's user write access, or set data_dir",
        )
    return CheckResult("data directory", True, f"{path} is writable")


async def check_postgres(settings: Settings) -> CheckResult:
    assert settings.database_url is not None
    where = redact_url(settings.database_url)
    known = len(migrations(PG_MIGRATIONS))
    try:
        version = await inspect_server(settings.database_url)
    except StoreError as exc:
        return CheckResult(
            "database",
            False,
            f"PostgreSQL at {where}: {exc}",
            "check database_url, that the server runs, and PGPASSWORD or ~/.pgpass",
        )
    if version > known:
        return CheckResult(
            "database",
            False,
            f"schema {version} is newer than this Flexbot ({known})",
            "upgrade Flexbot on every process",
        )
    pending = known - version
    note = f", {pending} migration(s) will run at start" if pending else ""
    return CheckResult("database", True, f"PostgreSQL at {where}, schema {version}{note}")


def check_database(settings: Settings) -> CheckResult:
    path = settings.database_path
    known = len(migrations())
    if not path.exists():
        return CheckResult("database", True, f"{path} will be created (schema {known})")
    try:
        version, integrity = inspect_file(path)
    except sqlite3.Error as exc:
        return CheckResult(
            "database",
            False,
            f"{path} cannot be read ({exc})",
            "restore the latest backup with `flexbot restore`",
        )
    if version > known:
        return CheckResult(
            "database",
            False,
            f"schema {version} is newer than this Flexbot ({known})",
            "upgrade Flexbot, or restore a backup of this version",
        )
    if integrity != "ok":
        return CheckResult(
            "database",
            False,
            f"quick_check says: {integrity}",
            "restore the latest backup with `flexbot restore`",
        )
    pending = known - version
    note = f", {pending} migration(s) will run at start" if pending else ""
    return CheckResult("database", True, f"schema {version}{note}")


async def check_fal(settings: Settings, client: FalClient) -> CheckResult:
    if not settings.fal_key:
        return CheckResult(
            "fal key",
            False,
            "FAL_KEY is not set (the bot would run a dry run on the bundled fake)",
            "create a key at https://fal.ai/dashboard/keys and set FAL_KEY",
        )
    try:
        await client.verify_key()
    except FalAuthError:
        return CheckResult(
            "fal key",
            False,
            "fal rejected FAL_KEY",
            "copy the key again from https://fal.ai/dashboard/keys",
        )
    except FalError as exc:
        return CheckResult(
            "fal key",
            False,
            f"fal could not be reached: {exc.user_message}",
            f"check the network and fal_rest_url ({settings.fal_rest_url})",
        )
    return CheckResult("fal key", True, "accepted by fal (checked without spending)")


async def check_request_list(settings: Settings, client: FalClient) -> CheckResult | None:
    """Can this key read fal's request list? Asked for the last five minutes only; None (no
    check) without a key, which ``check_fal`` already reports."""
    if not settings.fal_key:
        return None
    now = datetime.now(UTC)
    try:
        await client.list_requests(start=now - timedelta(minutes=5), end=now)
    except FalRequestListForbidden as exc:
        return CheckResult(
            "fal request list",
            False,
            f"this key cannot read fal's request list (HTTP {exc.status}): ambiguous submits "
            "cannot be reconciled, and `flexbot reconcile` cannot run",
            KEY_SCOPE_FIX,
        )
    except FalError as exc:
        return CheckResult(
            "fal request list",
            False,
            f"fal's request list could not be read: {exc.user_message}",
            f"check the network and fal_api_url ({settings.fal_api_url})",
        )
    return CheckResult(
        "fal request list", True, "readable with this key (`flexbot reconcile` can run)"
    )


DiscordCheck = Callable[[Settings], Awaitable[list[CheckResult]]]


async def run_doctor(
    settings: Settings, client: FalClient, discord_check: DiscordCheck | None
) -> list[CheckResult]:
    database = await check_postgres(settings) if settings.postgres else check_database(settings)
    results = [check_config(settings), check_data_dir(settings), database]
    results.append(await check_fal(settings, client))
    listing = await check_request_list(settings, client)
    if listing is not None:
        results.append(listing)
    if not settings.discord_token:
        results.append(
            CheckResult(
                "discord token",
                False,
                "DISCORD_TOKEN is not set",
                "create a bot token in the Discord developer portal",
            )
        )
    elif discord_check is not None:
        results += await discord_check(settings)
    return results
