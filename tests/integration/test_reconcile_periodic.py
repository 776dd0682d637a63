"""The bot's periodic reconciliation: /metrics gauges, the log, and what /flexadmin report shows."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest

from bot.core import FalBackend, open_core
from bot.fal.client import FalClient
from bot.fal.fake import FakeFal
from bot.metrics import Metrics
from bot.reconcile import PeriodicCheck
from bot.secret import Secret
from bot.store.db import Database
from cogs.admin.render import render_reconcile
from tests.integration.conftest import FAKE_FAL_KEY
from tests.integration.test_reconcile_cli import delivered_job, submit_without_a_job
from tests.support.engine_kit import make_settings

pytestmark = pytest.mark.usefixtures("instant_retries")


def gauge(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_an_orphan_shows_in_the_gauges_and_only_the_owner_sees_it(
    tmp_path: Path, fake_fal: FakeFal, fal_client: FalClient
) -> None:
    await delivered_job(tmp_path, fake_fal)  # guild 10
    await submit_without_a_job(fal_client)
    settings = make_settings(tmp_path)
    metrics = Metrics()
    async with await Database.open(settings.database_path) as db:
        reconciler = PeriodicCheck(db, fal_client, settings, metrics, time.time)
        report = await reconciler.run_once()
    assert report is not None
    assert len(report.orphans) == 1

    assert gauge(metrics, "flexbot_reconcile_fal_orphans") == 1
    assert gauge(metrics, "flexbot_reconcile_unlisted_charged_jobs") == 0
    assert gauge(metrics, "flexbot_reconcile_price_differences") == 0
    assert gauge(metrics, "flexbot_reconcile_list_readable") == 1
    assert gauge(metrics, "flexbot_reconcile_last_run_timestamp_seconds") > time.time() - 60

    owner = render_reconcile(reconciler.summary(None))
    assert "1 job(s) matched" in owner
    assert "1 request(s) fal ran and billed that no job records ($0.10)" in owner
    server = render_reconcile(reconciler.summary(10))
    assert "this server's jobs" in server
    assert "no differences" in server
    assert "fal ran" not in server
    assert "$0.10" not in server


async def test_a_key_refused_the_list_is_logged_with_the_fix_and_zeroes_the_gauge(
    tmp_path: Path, fake_fal: FakeFal, fal_client: FalClient, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    metrics = Metrics()
    fake_fal.inject("requests", "401")
    async with await Database.open(settings.database_path) as db:
        reconciler = PeriodicCheck(db, fal_client, settings, metrics, time.time)
        with caplog.at_level(logging.ERROR, logger="bot.reconcile"):
            assert await reconciler.run_once() is None
    [record] = [r for r in caplog.records if r.name == "bot.reconcile"]
    assert "cannot read fal's request list (HTTP 401)" in record.getMessage()
    assert "ADMIN-scope key" in record.getMessage()
    assert gauge(metrics, "flexbot_reconcile_list_readable") == 0
    assert "fal refused the request list (401)" in render_reconcile(reconciler.summary(None))
    server = render_reconcile(reconciler.summary(10))
    assert "401" not in server
    assert "the bot owner has the details" in server


async def test_the_bot_checks_at_start_unless_the_interval_is_zero(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    await delivered_job(tmp_path, fake_fal)
    settings = dataclasses.replace(
        make_settings(tmp_path),
        fal_key=Secret(FAKE_FAL_KEY),
        fal_queue_url=fake_fal.url,
        fal_rest_url=fake_fal.url,
        fal_api_url=fake_fal.url,
    )
    async with open_core(settings, fal=FalBackend.REAL) as core:
        await core.reconciler.checked.wait()
        assert core.reconciler.last is not None
        assert core.reconciler.last.matched == 1
        assert gauge(core.engine.metrics, "flexbot_reconcile_list_readable") == 1
    off = dataclasses.replace(settings, reconcile_interval_minutes=0)
    async with open_core(off, fal=FalBackend.REAL) as core:
        assert not core.reconciler.running
