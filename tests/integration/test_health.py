"""/healthz and /metrics over real HTTP; metrics count what the engine really did."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.fal.fake import FakeFal
from bot.health import HealthServer
from bot.metrics import Snapshot
from tests.support.engine_kit import engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")


async def test_healthz_is_503_with_the_reason_until_every_check_passes(
    tmp_path: Path, fake_fal: FakeFal
) -> None:
    gateway: dict[str, str | None] = {"reason": "Discord gateway disconnected"}

    async def gateway_check() -> str | None:
        return gateway["reason"]

    async def db_check() -> str | None:
        return None

    async with engine_kit(tmp_path, fake_fal.url) as kit:
        server = HealthServer(
            "127.0.0.1",
            0,
            checks={"discord": gateway_check, "database": db_check},
            metrics=kit.engine.metrics,
            snapshot=lambda: _empty(),
        )
        await server.start()
        try:
            async with httpx.AsyncClient() as http:
                down = await http.get(server.url + "/healthz")
                assert down.status_code == 503
                assert down.json()["checks"]["discord"] == "Discord gateway disconnected"
                gateway["reason"] = None
                up = await http.get(server.url + "/healthz")
                assert up.status_code == 200
                assert up.json() == {"status": "ok", "checks": {"discord": "ok", "database": "ok"}}
        finally:
            await server.stop()


async def _empty() -> Snapshot:
    return Snapshot()


async def test_metrics_parse_and_count_a_finished_job(tmp_path: Path, fake_fal: FakeFal) -> None:
    fake_fal.inject("submit", "content_policy")
    async with engine_kit(tmp_path, fake_fal.url) as kit:
        failed = await kit.submit()
        ok = await kit.submit(user=2)
        for ticket in (failed, ok):
            await kit.wait_final(ticket.job_id)  # type: ignore[union-attr]

        async def snapshot() -> Snapshot:
            return Snapshot(
                jobs_by_state={"delivered": 1, "failed": 1},
                queue_depth=0,
                spend_by_guild={"10": 100_000},
            )

        server = HealthServer(
            "127.0.0.1", 0, checks={}, metrics=kit.engine.metrics, snapshot=snapshot
        )
        await server.start()
        try:
            async with httpx.AsyncClient() as http:
                text = (await http.get(server.url + "/metrics")).text
        finally:
            await server.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("flexbot_jobs_finished_total", (("state", "delivered"),))] == 1
    assert samples[("flexbot_jobs_finished_total", (("state", "failed"),))] == 1
    assert samples[("flexbot_fal_job_seconds_count", ())] == 1
    assert samples[("flexbot_fal_errors_total", (("type", "content_policy_violation"),))] == 1
    assert samples[("flexbot_jobs", (("state", "delivered"),))] == 1
    assert samples[("flexbot_spend_micros", (("guild", "10"),))] == 100_000
