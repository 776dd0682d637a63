"""/flexadmin end to end: permission check, caps the engine obeys, reports and the CSV export."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.flexbot_fixtures import (  # noqa: F401 (fixtures are found by name)
    FlexbotRun,
    fal,
    flexbot,
    flexbot_env,
    png,
    slash_edit,
)
from tests.fakes.discord import FakeDiscord


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.2}


async def edit(discord: FakeDiscord, prompt: str) -> Any:
    it = await slash_edit(discord, prompt, filename="a.png")
    return await it.wait_for_original()


async def test_flexadmin_is_refused_without_manage_server(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    it = await discord.slash("flexadmin usage", user=discord.alice)
    msg = await it.wait_for_original()
    assert msg.ephemeral
    assert "Manage Server" in msg.content
    assert it.followups == []  # one answer, not a second generic one
    it = await discord.slash(
        "flexadmin limit set",
        user=discord.alice,
        options={"limit": "user_daily_cap", "value": "100"},
    )
    assert "Manage Server" in (await it.wait_for_original()).content
    assert it.followups == []  # a subgroup too is answered once
    assert flexbot.query("SELECT * FROM limits") == []
    assert flexbot.query("SELECT * FROM audit") == []


async def test_admin_daily_cap_refuses_the_members_next_edit_and_is_audited(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    await edit(discord, "first")
    await flexbot.wait_for_job_state(1, "delivered")
    it = await discord.slash(
        "flexadmin limit set",
        user=discord.owner_user,
        options={"limit": "user_daily_cap", "value": "0.01"},
    )
    answer = await it.wait_for_original()
    assert answer.ephemeral
    assert "$0.01" in answer.content
    refused = await edit(discord, "second")
    assert "daily budget" in refused.content
    assert len(flexbot.jobs()) == 1
    (row,) = flexbot.query("SELECT actor_id, action FROM audit")
    assert row == {"actor_id": discord.owner_user.id, "action": "set_limit"}


async def test_csv_export_parses_and_sums_to_the_ledger_total(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    for prompt in ("one", "two"):
        await edit(discord, prompt)
    await flexbot.wait_for_job_state(1, "delivered")
    await flexbot.wait_for_job_state(2, "delivered")
    it = await discord.slash(
        "flexadmin export", user=discord.owner_user, options={"period": "month"}
    )
    msg = await it.wait_for_original(lambda m: bool(m.files))
    assert msg.ephemeral
    (data,) = msg.files.values()
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [r["job_id"] for r in rows] == ["1", "2"]
    (ledger,) = flexbot.query(
        "SELECT SUM(CASE kind WHEN 'charge' THEN amount_micros WHEN 'refund' THEN -amount_micros"
        " WHEN 'reserve' THEN amount_micros ELSE -amount_micros END) AS total FROM ledger"
    )
    assert sum(Decimal(r["amount_usd"]) for r in rows) * 1_000_000 == ledger["total"] > 0

    it = await discord.slash("flexadmin usage", user=discord.owner_user)
    report = await it.wait_for_original()
    assert "2 jobs: 2 delivered" in report.embeds[0]["description"]
    assert f"<@{discord.alice.id}>" in report.embeds[0]["fields"][0]["value"]

    it = await discord.slash("flexadmin settings", user=discord.owner_user)
    settings = await it.wait_for_original()
    text = settings.content + "".join(b.decode() for b in settings.files.values())
    assert "user_daily_cap = $1.00  (default)" in text
    # Only what concerns this server: no secrets, paths, proxy URLs or other servers' ids.
    for hidden in ("fal_key", "discord_token", "data_dir", "secrets_file", "fal_queue_url"):
        assert hidden not in text


async def test_a_limit_on_everyone_is_the_one_edit_obeys_and_usage_shows(
    discord: FakeDiscord,
    flexbot: FlexbotRun,  # noqa: F811 (the fixture)
) -> None:
    it = await discord.slash(
        "flexadmin limit set",
        user=discord.owner_user,
        options={"limit": "user_daily_cap", "value": "0.01", "role": discord.everyone_role},
    )
    assert "$0.01" in (await it.wait_for_original()).content

    refused = await edit(discord, "blue")
    assert "daily budget" in refused.content
    assert flexbot.jobs() == []
    it = await discord.slash("usage", user=discord.alice)
    usage = await it.wait_for_original(lambda m: bool(m.files))
    fields = {f["name"]: f["value"] for f in usage.embeds[0]["fields"]}
    daily = next(v for k, v in fields.items() if k.startswith("Your daily budget"))
    assert "of $0.01" in daily
