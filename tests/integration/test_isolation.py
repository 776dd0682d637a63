"""Servers kept apart and limits before work (issue 11), against the real engine: SQLite on disk,
real HTTP to the bundled fake fal."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from bot.engine import usage
from bot.errors import NoSuchJob, UserError
from bot.fal.fake import FakeFal
from bot.model import (
    EditParams,
    EditRequest,
    ImageSize,
    JobState,
    JobTicket,
    LedgerKind,
    Origin,
    Requester,
)
from bot.store import jobs as jobs_repo
from bot.store import ledger as ledger_repo
from bot.store import prefs as prefs_repo
from bot.store.db import Database, migrations
from tests.support.engine_kit import Kit, engine_kit

pytestmark = pytest.mark.usefixtures("instant_retries")

GUILD_A, GUILD_B = 10, 11
CHANNEL, NSFW_CHANNEL = 100, 200


async def no_such_job(call: Awaitable[Any]) -> NoSuchJob:
    with pytest.raises(NoSuchJob) as info:
        await call
    return info.value


async def refused(call: Awaitable[Any]) -> UserError:
    with pytest.raises(UserError) as info:
        await call
    return info.value


async def job_count(kit: Kit) -> int:
    return sum((await jobs_repo.count_by_state(kit.db)).values())


async def delivered(kit: Kit, **submit: Any) -> int:
    ticket = await kit.submit(**submit)
    job = await kit.wait_final(ticket.job_id)
    assert job.state == JobState.DELIVERED
    return job.id


# -- servers kept apart ----------------------------------------------------------------------


async def test_job_of_another_server_is_no_such_job_for_show_rerun_and_remix(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job_id = await delivered(kit, user=1, guild=GUILD_A)
        missing = await no_such_job(kit.engine.job_for(999, Requester(2, GUILD_B, CHANNEL)))
        for who in (Requester(2, GUILD_B, CHANNEL), Requester(1, GUILD_B, CHANNEL)):
            for call in (
                kit.engine.job_for(job_id, who),
                kit.engine.rerun(job_id, who),
                kit.engine.remix(job_id, who, "add snow"),
            ):
                err = await no_such_job(call)
                # The same words as for a job that does not exist: the id tells nothing.
                assert str(err).replace(str(job_id), "N") == str(missing).replace("999", "N")
        assert await job_count(kit) == 1  # no rerun or remix was queued
        same_server = Requester(2, GUILD_A, CHANNEL)
        assert (await kit.engine.job_for(job_id, same_server)).id == job_id
        assert isinstance(await kit.engine.rerun(job_id, same_server), JobTicket)


async def test_dm_job_is_visible_only_to_its_requester_in_dms(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job_id = await delivered(kit, user=1, guild=None)
        assert (await kit.engine.job_for(job_id, Requester(1, None, 55))).id == job_id
        await no_such_job(kit.engine.job_for(job_id, Requester(2, None, 56)))
        await no_such_job(kit.engine.job_for(job_id, Requester(1, GUILD_A, CHANNEL)))
        await no_such_job(kit.engine.rerun(job_id, Requester(2, None, 56)))


async def test_age_restricted_job_never_reappears_in_an_ordinary_channel(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job_id = await delivered(
            kit, user=1, guild=GUILD_A, channel=NSFW_CHANNEL, channel_nsfw=True
        )
        ordinary = Requester(1, GUILD_A, CHANNEL)
        await no_such_job(kit.engine.job_for(job_id, ordinary))
        await no_such_job(kit.engine.rerun(job_id, ordinary))
        await no_such_job(kit.engine.remix(job_id, ordinary, "again"))
        restricted = Requester(2, GUILD_A, 201, channel_nsfw=True)
        assert (await kit.engine.job_for(job_id, restricted)).channel_nsfw
        # An ordinary job may be looked at from an age-restricted channel of its server.
        plain = await delivered(kit, user=3, guild=GUILD_A)
        assert (await kit.engine.job_for(plain, restricted)).id == plain


async def test_cancel_only_by_a_moderator_of_the_jobs_own_server(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        job_id = (await kit.submit(user=1, guild=GUILD_A)).job_id
        elsewhere = await kit.engine.cancel(job_id, Requester(9, GUILD_B, 300, moderator=True))
        assert elsewhere.outcome == "not_found"
        assert elsewhere.message == str(NoSuchJob(job_id))
        assert (await kit.job(job_id)).state == JobState.QUEUED
        member = await kit.engine.cancel(job_id, Requester(9, GUILD_A, CHANNEL))
        assert member.outcome == "not_allowed"
        here = await kit.engine.cancel(job_id, Requester(9, GUILD_A, CHANNEL, moderator=True))
        assert here.outcome == "cancelled"
        assert (await kit.job(job_id)).state == JobState.CANCELLED


async def test_context_menu_edit_of_an_opted_out_authors_images_is_refused(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        async with kit.db.transaction() as tx:
            await prefs_repo.set_remix_opt_out(tx, 5, True)
        request = EditRequest(
            EditParams(prompt="make it night"),
            (kit.upload(),),
            Requester(1, GUILD_A, CHANNEL),
            origin=Origin.CONTEXT_MENU,
            source_author_id=5,
        )
        err = await refused(kit.engine.submit(request))
        assert err.limit == "remix_opt_out"
        assert "asked that others not edit or remix" in err.message
        early = await refused(
            kit.engine.precheck(
                Requester(1, GUILD_A, CHANNEL),
                request.params,
                [(64, 48)],
                [500],
                source_author_id=5,
            )
        )
        assert early.limit == "remix_opt_out"
        assert await job_count(kit) == 0
        assert await kit.stored_blobs() == []
        # Their own message's images are theirs to edit.
        own = EditRequest(
            request.params, request.inputs, Requester(5, GUILD_A, CHANNEL), source_author_id=5
        )
        assert isinstance(await kit.engine.submit(own), JobTicket)


async def test_rerun_of_a_context_menu_job_keeps_the_source_authors_opt_out(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:
        job_id = await delivered(kit, user=1, guild=GUILD_A, source_author_id=5)
        async with kit.db.transaction() as tx:
            await prefs_repo.set_remix_opt_out(tx, 5, True)
        err = await refused(kit.engine.rerun(job_id, Requester(1, GUILD_A, CHANNEL)))
        assert err.limit == "remix_opt_out"


# -- limits before work ------------------------------------------------------------------------


async def test_precheck_estimates_from_declared_sizes_as_an_upper_bound(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        who = Requester(1, GUILD_A, CHANNEL)
        auto = EditParams(prompt="p")
        # Inputs are downscaled to 1 MP, so a 12 MP photo costs what a 1 MP one does.
        assert await kit.engine.precheck(who, auto, [(4000, 3000)], [1000]) == 100_000
        assert await kit.engine.precheck(who, auto, [None], [1000]) == 100_000
        assert await kit.engine.precheck(who, auto, [None] * 8, [1000] * 8) == 450_000
        wide = EditParams(prompt="p", image_size=ImageSize(None, 2048, 2048))
        assert await kit.engine.precheck(who, wide, [(64, 48)], [1000]) == 250_000
        # The estimate submit makes with the real images never exceeds it.
        for size in ((64, 48), (3000, 2000), (1024, 1024)):
            real = await kit.engine.estimate(auto, [kit.upload(*size)])
            assert real <= await kit.engine.precheck(who, auto, [size], [1000])
        assert await job_count(kit) == 0
        assert await kit.stored_blobs() == []


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({"user_daily_cap": 150_000}, "user_daily_cap"),
        ({"user_cooldown_seconds": 3600.0}, "user_cooldown_seconds"),
        ({"user_max_queued": 1, "user_cooldown_seconds": 0.0}, "user_max_queued"),
    ],
)
async def test_precheck_refuses_before_any_download_and_writes_nothing(
    tmp_path: Path, fake_fal: FakeFal, settings: dict[str, Any], limit: str, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, start=False, **settings
    ) as kit:
        first = await kit.submit(user=1, inputs=(kit.upload(seed=1),))  # holds $0.10
        files, jobs = await kit.stored_blobs(), await job_count(kit)
        err = await refused(
            kit.engine.precheck(
                Requester(1, GUILD_A, CHANNEL), EditParams(prompt="p"), [None], [1000]
            )
        )
        assert err.limit == limit
        assert (await kit.stored_blobs(), await job_count(kit)) == (files, jobs)
        assert first.job_id == 1
        other = await kit.engine.precheck(
            Requester(2, GUILD_A, CHANNEL), EditParams(prompt="p"), [None], [1000]
        )
        assert other == 100_000  # another member is not held back


async def test_precheck_refuses_a_declared_file_over_the_byte_cap(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, start=False, max_input_bytes=10_000
    ) as kit:
        who = Requester(1, GUILD_A, CHANNEL)
        err = await refused(
            kit.engine.precheck(who, EditParams(prompt="p"), [None, None], [10, 10_001])
        )
        assert "Image 2" in err.message
        err = await refused(kit.engine.precheck(who, EditParams(prompt="p"), [None] * 9, [1] * 9))
        assert err.limit == "images"


async def test_refused_submit_writes_no_image_and_an_accepted_one_does(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, user_daily_cap=150_000
    ) as kit:
        accepted = await kit.submit(user=1, inputs=(kit.upload(seed=1),))
        assert len(await kit.stored_blobs()) == 1
        before = await kit.stored_blobs()
        err = await refused(kit.submit(user=1, inputs=(kit.upload(seed=2), kit.upload(seed=3))))
        assert err.limit == "user_daily_cap"
        job = await kit.wait_final(accepted.job_id)
        assert job.state == JobState.DELIVERED
        assert job.output_hash is not None
        assert [p for p in await kit.stored_blobs() if p not in before] == [job.output_hash]


async def test_job_admitted_but_crashed_before_its_images_were_stored_fails_and_frees_money(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url, start=False) as kit:
        # What a crash between the admission commit and the blob write leaves behind.
        request = EditRequest(
            EditParams(prompt="make it night"), (kit.upload(),), Requester(1, GUILD_A, CHANNEL)
        )
        admitted = await kit.engine.admission.admit(request, kit.settings.fal_app_id)
        assert await kit.stored_blobs() == []
    async with engine_kit(tmp_path, fake_fal.url, database_url=db_url) as kit:  # the restart
        job = await kit.wait_final(admitted.job_id)
        assert job.state == JobState.FAILED
        assert (job.held_micros, job.charged_micros) == (0, 0)
        totals = dict(await ledger_repo.totals_for(kit.db, job.id))
        assert totals[LedgerKind.RESERVE] == totals[LedgerKind.RELEASE] == 100_000
        assert kit.delivery.failures[job.id]  # the member is told
        assert fake_fal.submits == 0


async def test_jobs_from_before_the_migration_count_as_age_restricted_except_dms(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path)
    for version, _name, sql in migrations()[:3]:
        raw.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    for guild in (GUILD_A, None):
        raw.execute(
            "INSERT INTO jobs (state, user_id, guild_id, channel_id, origin, endpoint, params,"
            " input_hashes, estimate_micros, created_at, updated_at)"
            " VALUES ('delivered', 1, ?, 100, 'command', 'e', ?, '[]', 0, 0, 0)",
            (guild, EditParams(prompt="old").to_json()),
        )
    raw.commit()
    raw.close()
    async with await Database.open(path) as db:
        in_server, in_dm = await jobs_repo.get_job(db, 1), await jobs_repo.get_job(db, 2)
    assert in_server is not None
    assert in_server.channel_nsfw is True
    assert in_dm is not None
    assert in_dm.channel_nsfw is False


async def test_queue_seen_from_a_server_lists_only_that_servers_jobs(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with engine_kit(
        tmp_path, fake_fal.url, database_url=db_url, start=False, user_cooldown_seconds=0.0
    ) as kit:
        here = (await kit.submit(user=1, guild=GUILD_A)).job_id
        await kit.submit(user=1, guild=GUILD_B)
        entries = await usage.queue_for(kit.engine, 1, visible_to=Requester(1, GUILD_A, CHANNEL))
        assert [e.job.id for e in entries] == [here]
