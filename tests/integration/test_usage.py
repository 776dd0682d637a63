"""Usage queries against real SQLite: numbers members and admins see match the ledger."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.admin import Admin
from bot.engine import usage
from bot.fal.fake import FakeFal
from bot.model import MICROS_PER_USD, JobState, JobTicket, Requester
from bot.store.db import Database, execute, fetch_one
from tests.support.engine_kit import Kit, engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")

GUILD = 10


async def ledger_total(db: Database, user_id: int | None = None) -> int:
    sql = (
        "SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_micros WHEN 'refund' THEN"
        " -amount_micros WHEN 'reserve' THEN amount_micros ELSE -amount_micros END), 0)"
        " FROM ledger"
    )
    args: tuple[int, ...] = ()
    if user_id is not None:
        sql += " WHERE user_id = ?"
        args = (user_id,)
    row = await fetch_one(db, sql, args)
    assert row is not None
    return int(row[0])


async def finished(kit: Kit, user: int, channel: int = 100, **params: object) -> int:
    ticket = await kit.submit(user=user, **params)  # type: ignore[arg-type]
    assert isinstance(ticket, JobTicket)
    await kit.wait_final(ticket.job_id)
    if channel != 100:
        async with kit.db.transaction() as tx:
            await execute(
                tx, "UPDATE jobs SET channel_id = ? WHERE id = ?", (channel, ticket.job_id)
            )
    return ticket.job_id


async def test_member_usage_matches_the_ledger_and_every_cap(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        await finished(kit, 1)
        await finished(kit, 1)
        await finished(kit, 2)
        await Admin(kit.db, kit.settings).grant_credit(9, GUILD, 1, 250_000, None)
        mu = await usage.member_usage(kit.engine, Requester(1, GUILD, 100, ()))
        spent = await ledger_total(kit.db, user_id=1)
        assert spent > 0
        assert mu.today_micros == spent
        assert mu.month_micros == spent
        assert mu.credit_micros == 250_000
        caps = {c.name: c for c in mu.caps}
        assert set(caps) == {
            "user_daily_cap",
            "user_monthly_cap",
            "guild_monthly_cap",
            "global_monthly_cap",
        }
        daily = caps["user_daily_cap"]
        assert daily.cap_micros == kit.settings.user_daily_cap
        assert daily.remaining_micros == kit.settings.user_daily_cap + 250_000 - spent
        assert caps["guild_monthly_cap"].spent_micros == await ledger_total(kit.db)
        assert daily.resets_at.timestamp() > time.time()
        assert mu.series[-1][1] == spent
        assert len(mu.series) == usage.SERIES_DAYS
        assert [j.id for j in mu.recent] == [2, 1]


async def test_held_money_of_running_jobs_counts_and_csv_sums_to_the_ledger(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        for user in (1, 2, 1):
            await finished(kit, user)
        async with (
            FakeFal(processing_time=30) as slow,
            # a deployment of its own: on PostgreSQL too, its own (SQLite) database
            engine_kit(tmp_path / "slow", slow.url) as slow_kit,
        ):
            ticket = await slow_kit.submit(user=3)
            assert isinstance(ticket, JobTicket)
            await slow_kit.engine.wait_for_state(ticket.job_id, JobState.RUNNING, timeout=5)
            admin = Admin(slow_kit.db, slow_kit.settings)
            text = await admin.export_csv(GUILD, "month")
            rows = list(csv.DictReader(io.StringIO(text)))
            assert len(rows) == 1
            assert Decimal(rows[0]["held_usd"]) * MICROS_PER_USD == ticket.estimate_micros
        admin = Admin(kit.db, kit.settings)
        text = await admin.export_csv(GUILD, "month")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["job_id"] for r in rows] == ["1", "2", "3"]
        total = sum(Decimal(r["amount_usd"]) for r in rows) * MICROS_PER_USD
        assert total == await ledger_total(kit.db)
        assert all(r["state"] == "delivered" for r in rows)


async def test_usage_report_totals_top_members_and_channels(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        await finished(kit, 1)
        await finished(kit, 1, channel=101)
        await finished(kit, 2)
        report = await Admin(kit.db, kit.settings).usage_report(GUILD, "today")
        assert report.totals.jobs == 3
        assert report.totals.delivered == 3
        assert report.totals.spent_micros == await ledger_total(kit.db)
        assert report.ledger_total_micros == report.totals.spent_micros
        assert report.top_members[0].key == 1
        assert report.top_members[0].jobs == 2
        assert {b.key: b.jobs for b in report.channels} == {100: 2, 101: 1}
        other = await Admin(kit.db, kit.settings).usage_report(11, "all")
        assert other.totals.jobs == 0


async def test_daily_series_places_older_spend_on_its_day(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        old = await finished(kit, 1)
        await finished(kit, 1)
        async with kit.db.transaction() as tx:
            await execute(
                tx, "UPDATE jobs SET created_at = created_at - 3 * 86400 WHERE id = ?", (old,)
            )
        job = await kit.job(old)
        series = await usage.daily_series(kit.db, time.time(), user_id=1)
        assert series[-4][1] == job.charged_micros
        assert series[-1][1] == (await kit.job(2)).charged_micros
        assert sum(a for _, a in series) == await ledger_total(kit.db)


async def test_queue_lists_positions_and_jobs_per_state(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        for _ in range(3):
            assert isinstance(await kit.submit(user=1), JobTicket)
        assert isinstance(await kit.submit(user=2), JobTicket)
        entries = await usage.queue_for(kit.engine, 1)
        assert [e.job.id for e in entries] == [1, 2, 3]
        assert entries[0].position == 0
        assert [e.position for e in entries] == sorted(e.position or 0 for e in entries)
        assert all(e.eta_seconds is not None for e in entries)
        await kit.engine.cancel(2, Requester(1, GUILD, 100))
        assert [e.job.id for e in await usage.queue_for(kit.engine, 1)] == [1, 3]
        states = await usage.jobs_per_state(kit.db, guild_id=GUILD)
        assert states == {"queued": 3, "cancelled": 1}
        history = await usage.recent_history(kit.db, 1)
        assert [j.id for j in history] == [3, 2, 1]
