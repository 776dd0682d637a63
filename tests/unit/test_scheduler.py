"""The fair queue's order: who gets a free fal slot, as the dispatcher asks for them."""

from __future__ import annotations

import itertools
import random

from bot.engine.scheduler import FairScheduler
from bot.settings import load_settings

GUILD = 10
SHIPPED_CAP = load_settings(config_path=None, environ={}).user_max_running


class Queue:
    """A FairScheduler driven like the dispatcher drives it: fill free slots, end jobs."""

    def __init__(self, slots: int) -> None:
        self.scheduler = FairScheduler()
        self.slots = slots
        self.owner: dict[int, int] = {}
        self.running: list[int] = []
        self._ids = itertools.count(1)

    def add(
        self, user: int, jobs: int = 1, *, guild: int = GUILD, cap: int | None = None
    ) -> list[int]:
        added = []
        for _ in range(jobs):
            job_id = next(self._ids)
            self.scheduler.add(job_id, user, guild, SHIPPED_CAP if cap is None else cap)
            self.owner[job_id] = user
            added.append(job_id)
        return added

    def fill(self) -> list[int]:
        """Members whose jobs started, in order, until the slots are full or nobody may start."""
        started = []
        while len(self.running) < self.slots:
            job_id = self.scheduler.pick()
            if job_id is None:
                break
            self.running.append(job_id)
            started.append(self.owner[job_id])
        return started

    def end(self, job_id: int) -> list[int]:
        """A running job ends; who takes the freed slot."""
        self.running.remove(job_id)
        self.scheduler.finished(self.owner[job_id])
        return self.fill()

    def end_oldest(self) -> list[int]:
        return self.end(self.running[0])


def test_shipped_cap_lets_a_lone_member_fill_every_free_slot() -> None:
    q = Queue(slots=4)
    q.add(user=1, jobs=20)
    assert q.fill() == [1, 1, 1, 1]
    assert q.end_oldest() == [1]  # and the freed slot goes straight back to them


def test_two_waiting_members_alternate_slot_by_slot() -> None:
    q = Queue(slots=2)
    q.add(user=1, jobs=6)
    q.add(user=2, jobs=6)
    order = q.fill()
    while q.running:
        order += q.end_oldest()
    assert order == [1, 2] * 6


def test_two_servers_alternate_whatever_their_member_counts() -> None:
    q = Queue(slots=1)
    q.add(user=1, jobs=3, guild=10)
    q.add(user=2, jobs=3, guild=10)
    q.add(user=3, jobs=6, guild=11)
    order = q.fill()
    while q.running:
        order += q.end_oldest()
    assert order[:6] == [1, 3, 2, 3, 1, 3]


def test_newcomers_first_job_takes_the_next_free_slot_from_a_member_filling_them() -> None:
    q = Queue(slots=2)
    q.add(user=1, jobs=30)
    assert q.fill() == [1, 1]
    (light,) = q.add(user=2)
    assert q.scheduler.position(light) == 0
    assert q.end_oldest() == [2]
    # Once theirs is running, the heavy member gets the freed slots again.
    assert q.end_oldest() == [1]


def test_newcomer_goes_before_a_member_whose_job_just_ended() -> None:
    q = Queue(slots=2)
    q.add(user=1, jobs=10, guild=10)
    q.add(user=2, jobs=10, guild=11)
    assert q.fill() == [1, 2]
    (light,) = q.add(user=3, guild=11)
    assert q.scheduler.position(light) == 0
    # Member 1 now has nothing running either, and their server is next in turn; still the
    # newcomer's first job takes the slot.
    assert q.end_oldest() == [3]
    assert q.end_oldest() == [1]  # member 1, who gave way, before member 2
    assert q.end_oldest() == [2]


def test_each_newcomer_waits_for_at_most_the_newcomers_before_them() -> None:
    q = Queue(slots=2)
    q.add(user=1, jobs=50)
    q.fill()
    newcomers = [q.add(user=u)[0] for u in (2, 3, 4)]
    assert [q.scheduler.position(j) for j in newcomers] == [0, 1, 2]
    assert [q.end_oldest() for _ in newcomers] == [[2], [3], [4]]


def test_member_who_queues_more_while_theirs_runs_is_not_a_newcomer() -> None:
    q = Queue(slots=1)
    q.add(user=1)
    assert q.fill() == [1]
    q.add(user=1)  # their queue was empty, but they are being served
    (light,) = q.add(user=2)
    assert q.scheduler.position(light) == 0
    assert q.end_oldest() == [2]


def test_admin_cap_holds_even_with_slots_free() -> None:
    q = Queue(slots=4)
    q.add(user=1, jobs=10, cap=1)
    assert q.fill() == [1]  # three slots stay free: the admin said one at a time
    q.add(user=2, jobs=10, cap=2)
    assert q.fill() == [2, 2]
    assert q.end(q.running[0]) == [1]  # member 1's next job, still one at a time


def test_member_with_fewer_running_goes_before_one_with_more() -> None:
    q = Queue(slots=4)
    q.add(user=1, jobs=10)
    assert q.fill() == [1, 1, 1, 1]
    q.add(user=2, jobs=10)
    assert q.end_oldest() == [2]
    assert q.end_oldest() == [2]  # 1 has 2 running, 2 has 1: member 2 again
    assert q.end_oldest() == [1]  # now 1 has 1 running, 2 has 2


def test_position_is_zero_for_the_next_job_and_grows_with_a_members_depth() -> None:
    rng = random.Random(3)
    for _ in range(300):
        q = Queue(slots=1000)
        for user in rng.sample(range(1, 9), rng.randint(1, 6)):
            q.add(user=user, jobs=rng.randint(1, 5), guild=10 + user % 3, cap=100)
            for _ in range(rng.randint(0, 2)):
                q.scheduler.pick()  # some of theirs (or others') running now
        queued = [j for j in q.owner if j in q.scheduler]
        if not queued:
            continue
        where = {j: q.scheduler.position(j) for j in queued}
        for user in {q.owner[j] for j in queued}:
            mine = [where[j] or 0 for j in queued if q.owner[j] == user]
            assert mine == sorted(set(mine)), (user, mine)
        assert all(0 <= (p or 0) < len(queued) for p in where.values())
        next_job = q.scheduler.pick()
        assert next_job is not None
        assert where[next_job] == 0


def test_cancelled_job_leaves_the_queue() -> None:
    q = Queue(slots=1)
    first, second = q.add(user=1, jobs=2)
    assert q.scheduler.remove(first)
    assert not q.scheduler.remove(first)
    assert first not in q.scheduler
    assert q.scheduler.position(second) == 0
    assert q.scheduler.pick() == second
    assert len(q.scheduler) == 0
