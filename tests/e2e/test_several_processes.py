"""Several processes, one PostgreSQL database, two shards (issue 13), end to end: two real
``flexbot run`` processes against the fake Discord and the fake fal.

Process A runs shard 0 (``discord.guild``; it registers the commands), process B shard 1
(``discord.guild_b``); each has its own data_dir, both share the database and claim jobs from its
one queue. The process running a job of its own guild is SIGKILLed while fal works on it; the
other takes the job over once the lease ran out, follows the stored fal request (never submitting
again), posts the result once in a guild whose shard it does not run (REST needs no gateway) and
charges it once. Once the killed process is back, the result's button is answered by it (the
process of that guild's shard, which did not post it), and a result's button in the other guild by
the other process. Run for each process as the one killed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from bot.fal.fake import FakeFal
from bot.store.postgres import WRITE_LOCK
from tests.e2e.conftest import BotProcess, StartBot
from tests.e2e.flexbot_fixtures import FLEXBOT_CMD, flexbot_settings, slash_edit
from tests.fakes.discord import FakeChannel, FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.discord.gateway import GatewaySession
from tests.fakes.discord.state import FakeUser, shard_of

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

LEASE_S = 3  # the least worker_lease_seconds: a dead process's job is taken over after it
#: fal works on a job this long: the kill lands well inside it (about 0.1 s after it started).
PROCESSING_S = 4.0
#: Takeover waits out the lease (3 s) plus at most a heartbeat (1 s); fal, up to 4 s more.
TAKEOVER_TIMEOUT_S = 20.0


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": PROCESSING_S}


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the database both processes share."""
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


async def wait_until(
    discord: FakeDiscord, check: Callable[[], Awaitable[Any]], what: str, timeout: float
) -> Any:
    """Wait until `await check()` is truthy and return its value. The database and fal change
    without telling the fake Discord, so this re-checks every 50 ms (or on its traffic)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        if loop.time() > deadline:
            raise TimeoutError(f"not reached in {timeout} s: {what}")
        with contextlib.suppress(TimeoutError):
            await discord.wait_for(lambda: False, timeout=0.05)
    return value


async def _logged(process: BotProcess, line: str) -> bool:
    return line in process.log()


async def job_row(pg: asyncpg.Connection, job_id: int) -> dict[str, Any] | None:
    row = await pg.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return None if row is None else dict(row)


async def wait_for_state(
    discord: FakeDiscord, pg: asyncpg.Connection, job_id: int, state: str, timeout: float = 15
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        row = await job_row(pg, job_id)
        return row if row is not None and row["state"] == state else None

    result: dict[str, Any] = await wait_until(
        discord, reached, f"job #{job_id} {state}: {await job_row(pg, job_id)}", timeout
    )
    return result


@contextlib.asynccontextmanager
async def paused_off_the_lock(process: BotProcess, pg: asyncpg.Connection) -> AsyncIterator[None]:
    """`process` paused (SIGSTOP) for the block, at a moment it holds no bot-wide write lock: a
    process paused inside a write transaction would hold up every other process's writes."""
    while True:
        with process.paused():
            async with pg.transaction():
                free = await pg.fetchval("SELECT pg_try_advisory_xact_lock($1)", WRITE_LOCK)
            if free:
                yield
                return
        # Caught inside a transaction (or another one was): let the lock's holder finish.
        async with pg.transaction():
            await pg.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)


def results(channel: FakeChannel) -> list[FakeMessage]:
    """The result messages (with an image) visible in the channel."""
    return [m for m in channel.visible_messages if m.author.bot and m.files]


def interaction_ids(session: GatewaySession) -> set[int]:
    return {int(d["id"]) for d in session.events("INTERACTION_CREATE")}


async def start_shard(
    discord: FakeDiscord,
    start_bot: StartBot,
    fal: FakeFal,
    pg_url: str,
    shard: int,
    name: str,
) -> BotProcess:
    """`flexbot run` for one of two shards on the shared database; only shard 0 registers."""
    env = {
        **flexbot_settings(fal),
        "FLEXBOT_DATABASE_URL": pg_url,
        "FLEXBOT_WORKER_NAME": name,
        "FLEXBOT_WORKER_LEASE_SECONDS": str(LEASE_S),
        "FLEXBOT_SHARD_COUNT": "2",
        "FLEXBOT_SHARD_IDS": str(shard),
    }
    return await start_bot(
        cmd=FLEXBOT_CMD, env=env, sync_guilds=discord.guilds, wait_commands=shard == 0
    )


def live_session(discord: FakeDiscord, shard: int) -> GatewaySession:
    (session,) = [s for s in discord.gateway.shard_sessions(shard) if s.connected]
    return session


async def click_delivers(
    discord: FakeDiscord,
    pg: asyncpg.Connection,
    result: FakeMessage,
    label: str,
    user: FakeUser,
) -> tuple[FakeInteraction, FakeMessage]:
    """Click `label` on `result`; wait for the new job's result in the channel, delivered."""
    channel = result.channel
    earlier = {m.id for m in channel.messages}
    newest = await pg.fetchval("SELECT COALESCE(MAX(id), 0) FROM jobs")
    click = await discord.click(result, label, user=user)
    answer = await click.wait_for_original()
    assert answer.ephemeral
    assert f"job #{newest + 1}" in answer.content, answer.content
    posted = await channel.wait_for_message(
        lambda m: bool(m.files) and m.id not in earlier, timeout=15
    )
    row = await wait_for_state(discord, pg, newest + 1, "delivered")
    assert row["parent_job_id"] == int(result.buttons()[0]["custom_id"].split(":")[-1])
    assert row["result_message_id"] == posted.id
    return click, posted


@pytest.mark.parametrize(
    "victim_shard", [0, 1], ids=["shard-0-process-killed", "shard-1-process-killed"]
)
async def test_a_killed_process_job_is_delivered_once_by_the_other_and_buttons_work_in_both(
    pg_url: str,
    pg: asyncpg.Connection,
    discord: FakeDiscord,
    start_bot: StartBot,
    fal: FakeFal,
    victim_shard: int,
) -> None:
    # pg_url comes first: set up first, its database is dropped only after the bots stopped.
    assert shard_of(discord.guild.id, 2) == 0
    assert shard_of(discord.guild_b.id, 2) == 1
    guild_channel = {0: discord.general, 1: discord.general_b}
    member = {0: discord.alice, 1: discord.carol}
    a = await start_shard(discord, start_bot, fal, pg_url, 0, "worker-a")  # registers commands
    b = await start_shard(discord, start_bot, fal, pg_url, 1, "worker-b")
    assert {s.shard for s in discord.gateway.sessions if s.connected} == {(0, 2), (1, 2)}
    victim, survivor = (a, b) if victim_shard == 0 else (b, a)
    channel = guild_channel[victim_shard]

    async def at_fal() -> dict[str, Any] | None:
        row = await job_row(pg, 1)
        if row is None or row["fal_request_id"] is None or row["owner"] is None:
            return None
        fal_job = fal.jobs.get(row["fal_request_id"])
        return row if fal_job is not None and fal_job.state == "IN_PROGRESS" else None

    # Which process claims a job is a race; the other one is paused until the victim holds it.
    async with paused_off_the_lock(survivor, pg):
        await slash_edit(discord, user=member[victim_shard], channel=channel)
        row = await wait_until(discord, at_fal, "job #1 running at fal", timeout=15)
    request_id = row["fal_request_id"]
    assert row["owner"] == victim.env["FLEXBOT_WORKER_NAME"]
    await victim.kill()
    assert fal.jobs[request_id].state == "IN_PROGRESS", "fal finished before the kill"
    assert results(channel) == []

    # The survivor takes the job over after the lease, follows the same fal request, and posts
    # the result in the victim's guild, whose shard it does not run.
    delivered = await wait_for_state(discord, pg, 1, "delivered", timeout=TAKEOVER_TIMEOUT_S)
    (result,) = results(channel)
    assert delivered["result_message_id"] == result.id
    assert delivered["fal_request_id"] == request_id
    assert "job=1 taken over in state running" in survivor.log()
    # The log line follows the stored state: the survivor may not have written it yet.
    line = f"job=1 delivered message={result.id}"
    await wait_until(discord, lambda: _logged(survivor, line), line, timeout=5)
    assert fal.submits == 1
    ledger = await pg.fetch("SELECT kind, amount_micros FROM ledger WHERE job_id = 1 ORDER BY id")
    (billed,) = [e for e in fal.billing if e.request_id == request_id]
    assert [r["amount_micros"] for r in ledger if r["kind"] == "charge"] == [billed.micros]
    assert [r["kind"] for r in ledger if r["kind"] in ("reserve", "refund")] == ["reserve"]
    assert (delivered["charged_micros"], delivered["held_micros"]) == (billed.micros, 0)

    # The killed process comes back (the same command); fal gets fast for the reruns.
    await victim.restart(kill=True, wait_commands=victim is a)
    fal.configure(processing_time=0.2)
    sessions = {shard: live_session(discord, shard) for shard in (0, 1)}

    # The taken-over result's button: answered by the process of its guild's shard, the one
    # that was killed and did not post it.
    click, rerun = await click_delivers(discord, pg, result, "Rerun", member[victim_shard])
    assert click.id in interaction_ids(sessions[victim_shard])
    assert click.id not in interaction_ids(sessions[1 - victim_shard])

    # A result in the other guild, and its button: answered by the survivor.
    other = guild_channel[1 - victim_shard]
    earlier = {m.id for m in other.messages}
    await slash_edit(discord, user=member[1 - victim_shard], channel=other)
    result_other = await other.wait_for_message(
        lambda m: bool(m.files) and m.id not in earlier, timeout=15
    )
    click_other, _ = await click_delivers(
        discord, pg, result_other, "Reroll", member[1 - victim_shard]
    )
    assert click_other.id in interaction_ids(sessions[1 - victim_shard])
    assert click_other.id not in interaction_ids(sessions[victim_shard])

    # Still one result for the job fal worked on when its process died; one submit per job.
    assert results(channel) == [result, rerun]
    jobs = await pg.fetch("SELECT state, fal_request_id FROM jobs ORDER BY id")
    assert [j["state"] for j in jobs] == ["delivered"] * 4
    assert fal.submits == len({j["fal_request_id"] for j in jobs}) == 4
