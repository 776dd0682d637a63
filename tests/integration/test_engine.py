"""The job engine against the bundled fake fal over real HTTP, with SQLite on disk."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

import pytest

from bot.engine.quota import LimitSource
from bot.errors import UserError
from bot.fal.fake import FakeFal
from bot.model import ImageSize, JobState, JobTicket, LimitScope, Requester
from bot.store import access as access_repo
from bot.store import credits as credits_repo
from bot.store import jobs as jobs_repo
from bot.store import ledger as ledger_repo
from bot.store import limits as limits_repo
from bot.store import prefs as prefs_repo
from tests.support.engine_kit import Kit, engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")


def ticket(result: JobTicket) -> JobTicket:
    assert isinstance(result, JobTicket), result
    return result


async def refused(submit: Awaitable[JobTicket]) -> UserError:
    with pytest.raises(UserError) as info:
        await submit
    return info.value


async def ledger(kit: Kit, job_id: int) -> dict[str, int]:
    return dict(await ledger_repo.totals_for(kit.db, job_id))


async def test_submitted_job_is_delivered_and_charged_its_actual_price(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        t = ticket(await kit.submit(image_size=ImageSize("landscape_16_9"), seed=7))
        assert t.estimate_micros == 100_000  # one input MP + one output MP at $0.05
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.DELIVERED
        assert job.seed == 7
        assert (job.output_width, job.output_height) == (1024, 576)
        assert kit.delivery.delivered[t.job_id][0][:3] == b"\xff\xd8\xff"  # a JPEG
        assert len(kit.delivery.delivered[t.job_id]) == 1
        assert await ledger(kit, t.job_id) == {
            "reserve": 100_000,
            "release": 100_000,
            "charge": 100_000,
            "refund": 0,
        }
        assert (job.held_micros, job.charged_micros, job.cost_micros) == (0, 100_000, 100_000)
        assert job.result_message_id is not None
        assert fake_fal.submits == 1


async def test_ticket_says_position_eta_and_cost(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.configure(processing_time=5)
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, fal_concurrency=1) as kit:
        first = ticket(await kit.submit(user=1))
        await kit.engine.wait_for_state(first.job_id, [JobState.RUNNING])
        second = ticket(await kit.submit(user=2))
        third = ticket(await kit.submit(user=3))
        assert (second.position, third.position) == (0, 1)
        assert 0 < second.eta_seconds < third.eta_seconds
        assert third.estimate_micros == 100_000


async def test_daily_cap_refusal_names_limit_remaining_and_reset(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, user_daily_cap=150_000
    ) as kit:
        ticket(await kit.submit(user=1))  # holds $0.10 of $0.15
        r = await refused(kit.submit(user=1))
        assert r.limit == "user_daily_cap"
        assert r.remaining == 50_000
        assert "$0.05 is left of your daily budget ($0.15)" in r.message
        assert "UTC" in r.message
        ticket(await kit.submit(user=2))  # another member is not affected


async def test_highest_role_cap_wins_and_user_override_beats_roles(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    # The owner's $1 is the ceiling; the server's own $0.05 is what members without a role get.
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        async with kit.db.transaction() as tx:
            await limits_repo.set_limit(tx, LimitScope.GUILD, 10, 0, "user_daily_cap", 50_000, 9)
            await limits_repo.set_limit(tx, LimitScope.ROLE, 10, 501, "user_daily_cap", 100_000, 9)
            await limits_repo.set_limit(tx, LimitScope.ROLE, 10, 502, "user_daily_cap", 300_000, 9)
        limits = await kit.engine.limits_for(Requester(1, 10, 100, (501, 502)))
        assert limits["user_daily_cap"] == 300_000
        assert limits.sources["user_daily_cap"] == LimitSource(LimitScope.ROLE, 502)
        async with kit.db.transaction() as tx:
            await limits_repo.set_limit(tx, LimitScope.USER, 10, 1, "user_daily_cap", 20_000, 9)
        limits = await kit.engine.limits_for(Requester(1, 10, 100, (501, 502)))
        assert limits["user_daily_cap"] == 20_000
        ticket(await kit.submit(user=2, roles=(501,)))  # $0.10 fits the role's $0.10
        (await refused(kit.submit(user=3)))  # $0.10 does not fit the server's $0.05


async def test_granted_credit_raises_what_a_member_may_spend(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, user_daily_cap=50_000
    ) as kit:
        (await refused(kit.submit(user=1)))
        async with kit.db.transaction() as tx:
            await credits_repo.grant_credit(tx, 10, 1, 100_000, 9, "contest winner")
        ticket(await kit.submit(user=1))


async def test_guild_and_global_caps(tmp_path: Path, fake_fal: FakeFal, db_url: str | None) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, guild_monthly_cap=100_000, global_monthly_cap=200_000
    ) as kit:
        ticket(await kit.submit(user=1, guild=10))
        assert (await refused(kit.submit(user=2, guild=10))).limit == "guild_monthly_cap"
        ticket(await kit.submit(user=3, guild=11))
        assert (await refused(kit.submit(user=4, guild=12))).limit == "global_monthly_cap"


async def test_queue_cap_cooldown_block_and_pause(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.configure(processing_time=5)
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, user_max_queued=2, fal_concurrency=1
    ) as kit:
        first = ticket(await kit.submit(user=1))
        await kit.engine.wait_for_state(first.job_id, [JobState.RUNNING])  # not waiting now
        ticket(await kit.submit(user=1))
        ticket(await kit.submit(user=1))
        assert (await refused(kit.submit(user=1))).limit == "user_max_queued"
        async with kit.db.transaction() as tx:
            await limits_repo.set_limit(tx, LimitScope.GUILD, 10, 0, "user_cooldown_seconds", 60, 9)
        ticket(await kit.submit(user=5))
        r = await refused(kit.submit(user=5))
        assert r.limit == "user_cooldown_seconds"
        assert "1 min" in r.message
        async with kit.db.transaction() as tx:
            await access_repo.set_blocked(tx, 10, 6, True, 9)
        assert (await refused(kit.submit(user=6))).limit == "blocked"
        ticket(await kit.submit(user=6, guild=11))  # blocked on one server only
        async with kit.db.transaction() as tx:
            await access_repo.set_paused(tx, 11, True, 9)
        assert "paused on this server" in (await refused(kit.submit(user=7, guild=11))).message
        async with kit.db.transaction() as tx:
            await access_repo.set_paused(tx, 0, True, 9)
        assert "paused everywhere" in (await refused(kit.submit(user=7, guild=12))).message


async def test_light_users_first_job_is_not_stuck_behind_heavy_user(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path,
        fake_fal.url,
        start=False,
        fal_concurrency=1,
        user_max_queued=100,
        user_daily_cap=None,
        user_monthly_cap=None,
    ) as kit:
        heavy = [ticket(await kit.submit(user=1)).job_id for _ in range(20)]
        light = ticket(await kit.submit(user=2)).job_id
        assert kit.engine.scheduler.position(light) == 1  # after one heavy job, not twenty
        await kit.engine.start()
        await kit.wait_final(heavy[-1], timeout=30)
        order = [
            j.id
            for j in sorted(
                [await kit.job(i) for i in [*heavy, light]], key=lambda j: j.started_at or 0
            )
        ]
        assert order.index(light) <= 1


async def test_cancel_queued_releases_at_once_and_only_owner_or_moderator(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        t = ticket(await kit.submit(user=1))
        assert (await kit.engine.cancel(t.job_id, Requester(2, 10, 100))).outcome == "not_allowed"
        result = await kit.engine.cancel(t.job_id, Requester(2, 10, 100, moderator=True))
        assert result.outcome == "cancelled"
        job = await kit.job(t.job_id)
        assert job.state == JobState.CANCELLED
        assert job.held_micros == 0
        assert await ledger(kit, t.job_id) == {
            "reserve": 100_000,
            "release": 100_000,
            "charge": 0,
            "refund": 0,
        }
        assert t.job_id not in kit.engine.scheduler


async def test_cancel_running_job_cancels_it_at_fal(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.configure(processing_time=30)
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        t = ticket(await kit.submit(user=1))
        await kit.engine.wait_for_state(t.job_id, [JobState.RUNNING])
        assert (await kit.engine.cancel(t.job_id, Requester(1, 10, 100))).outcome == "cancelling"
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.CANCELLED
        assert job.charged_micros == 0
        assert job.held_micros == 0
        assert len(fake_fal.calls("cancel")) == 1


async def test_content_policy_failure_tells_member_and_releases_money(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.inject("submit", "content_policy")
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        t = ticket(await kit.submit())
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.FAILED
        assert "content" in (job.failure_reason or "").lower()
        assert kit.delivery.failures[t.job_id] == [job.failure_reason]
        assert await ledger(kit, t.job_id) == {
            "reserve": 100_000,
            "release": 100_000,
            "charge": 0,
            "refund": 0,
        }


async def test_fal_validation_error_fails_the_job_with_a_reason(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.inject(
        "submit", "validation", loc=["body", "image_size"], msg="too big", type="image_too_large"
    )
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job = await kit.wait_final(ticket(await kit.submit()).job_id)
        assert job.state == JobState.FAILED
        assert job.failure_reason
        assert job.held_micros == 0


async def test_rerun_uses_same_seed_and_inputs_and_gives_same_image(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        first = await kit.wait_final(ticket(await kit.submit(user=1)).job_id)
        again = await kit.wait_final(
            ticket(await kit.engine.rerun(first.id, Requester(2, 10, 100))).job_id
        )
        assert again.seed == first.seed
        assert again.output_hash == first.output_hash
        assert again.parent_job_id == first.id
        assert again.origin == "rerun"
        assert again.user_id == 2  # the clicker pays
        other = await kit.wait_final(
            ticket(await kit.engine.rerun(first.id, Requester(2, 10, 100), {"seed": 99})).job_id
        )
        assert other.seed == 99
        assert other.output_hash != first.output_hash


async def test_remix_uses_the_output_as_reference_and_respects_opt_out(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        first = await kit.wait_final(ticket(await kit.submit(user=1)).job_id)
        remix = await kit.wait_final(
            ticket(await kit.engine.remix(first.id, Requester(2, 10, 100), "add snow")).job_id
        )
        assert remix.input_hashes == (first.output_hash,)
        assert remix.origin == "remix"
        assert remix.params.prompt == "add snow"
        async with kit.db.transaction() as tx:
            await prefs_repo.set_remix_opt_out(tx, 1, True)
        with pytest.raises(Exception, match="opted out"):
            await kit.engine.remix(first.id, Requester(2, 10, 100), "again")
        ticket(await kit.engine.remix(first.id, Requester(1, 10, 100), "my own is fine"))


async def test_rerun_after_retention_says_images_are_gone(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, blob_retention_days=1
    ) as kit:
        first = await kit.wait_final(ticket(await kit.submit(user=1)).job_id)
        purged = await kit.engine.purge_blobs(now=kit.engine.clock() + 2 * 86400)
        assert purged >= 2  # the input and the output
        job = await kit.job(first.id)
        assert job.input_hashes
        assert job.params.prompt
        with pytest.raises(Exception, match="have been deleted"):
            await kit.engine.rerun(first.id, Requester(1, 10, 100))


async def test_restart_resumes_running_job_without_second_submit(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.configure(processing_time=0.5)
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        t = ticket(await kit.submit())
        await kit.engine.wait_for_state(t.job_id, [JobState.RUNNING])
    # The engine stopped with the job running at fal; a new one picks it up.
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.DELIVERED
        assert fake_fal.submits == 1
        assert len(kit.delivery.delivered[t.job_id]) == 1
        assert await ledger(kit, t.job_id) == {
            "reserve": 100_000,
            "release": 100_000,
            "charge": 100_000,
            "refund": 0,
        }


async def test_queued_jobs_survive_restart(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        t = ticket(await kit.submit())
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        assert (await kit.wait_final(t.job_id)).state == JobState.DELIVERED


async def test_transient_delivery_error_is_retried_and_delivers_once(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        kit.delivery.flaky = 1
        t = ticket(await kit.submit())
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.DELIVERED
        assert len(kit.delivery.delivered[t.job_id]) == 1


async def test_undeliverable_result_is_kept_and_still_charged(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        t = ticket(await kit.submit())
        kit.delivery.undeliverable.add(t.job_id)
        await kit.engine.start()
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.UNDELIVERABLE
        assert job.charged_micros == 100_000
        assert job.output_hash is not None
        assert await kit.engine.blobs.exists(job.output_hash)


async def test_shutdown_stops_taking_jobs_and_is_bounded(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    fake_fal.configure(processing_time=60)
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        t = ticket(await kit.submit())
        await kit.engine.wait_for_state(t.job_id, [JobState.RUNNING])
        loop = __import__("asyncio").get_running_loop()
        started = loop.time()
        await kit.engine.stop(timeout=2)
        assert loop.time() - started < 2
        assert (await refused(kit.submit())).limit == "shutdown"
        assert (await kit.job(t.job_id)).state == JobState.RUNNING  # resumes on next start


async def test_job_cancelled_during_a_crashed_submit_is_not_sent_again(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        t = ticket(await kit.submit())
        # The state a crash leaves behind: submit attempted, cancel asked, no request id stored.
        async with kit.db.transaction() as tx:
            await jobs_repo.transition(
                tx,
                t.job_id,
                [JobState.QUEUED],
                JobState.SUBMITTING,
                submit_attempts=1,
                cancel_requested=1,
            )
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job = await kit.wait_final(t.job_id)
        assert job.state == JobState.CANCELLED
        assert job.held_micros == 0
        assert fake_fal.submits == 0
        assert kit.delivery.failures[t.job_id] == ["Cancelled."]
