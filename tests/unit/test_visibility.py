"""The one rule for who sees and uses a job from where (bot.visibility)."""

from __future__ import annotations

import pytest

from bot.model import EditParams, Job, JobState, Origin, Requester
from bot.visibility import may_manage, moderates, visible


def job(guild: int | None = 10, user: int = 1, *, nsfw: bool = False) -> Job:
    return Job(
        id=7, state=JobState.DELIVERED, user_id=user, guild_id=guild, channel_id=100, role_ids=(),
        origin=Origin.COMMAND, parent_job_id=None, endpoint="e", params=EditParams("p"),
        input_hashes=(), seed=1, estimate_micros=0, cost_micros=0, held_micros=0,
        charged_micros=0, cancel_requested=False, fal_request_id=None, submit_attempts=1,
        output_hash=None, output_width=None, output_height=None, failure_reason=None,
        status_message_id=None, result_message_id=None, source_message_id=None, created_at=0.0,
        started_at=None, finished_at=None, updated_at=0.0, channel_nsfw=nsfw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("the_job", "who", "seen"),
    [
        (job(10), Requester(2, 10, 100), True),
        (job(10), Requester(1, 11, 100), False),  # its own requester, from another server
        (job(10), Requester(1, None, 5), False),
        (job(None), Requester(1, None, 5), True),
        (job(None), Requester(2, None, 6), False),
        (job(None), Requester(1, 10, 100), False),
        (job(10, nsfw=True), Requester(1, 10, 100), False),
        (job(10, nsfw=True), Requester(2, 10, 200, channel_nsfw=True), True),
        (job(10), Requester(2, 10, 200, channel_nsfw=True), True),
    ],
)
def test_visible_only_from_its_own_server_and_through_its_channels_age_restriction(
    the_job: Job, who: Requester, seen: bool
) -> None:
    assert visible(the_job, who) is seen


def test_a_moderator_is_one_of_the_jobs_own_server() -> None:
    assert moderates(job(10), Requester(9, 10, 100, moderator=True))
    assert not moderates(job(10), Requester(9, 11, 100, moderator=True))
    assert not moderates(job(None), Requester(9, None, 5, moderator=True))
    assert not moderates(job(10), Requester(9, 10, 100))
    assert may_manage(job(10), Requester(1, 10, 100))
    assert may_manage(job(10), Requester(9, 10, 100, moderator=True))
    assert not may_manage(job(10), Requester(9, 10, 100))
    assert not may_manage(job(10), Requester(1, 11, 100))
