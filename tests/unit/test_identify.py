"""IDENTIFY pacing: Discord's session start limit, one IDENTIFY per bucket per 5 seconds."""

from __future__ import annotations

from cogs.identify import IDENTIFY_INTERVAL_S, IdentifyPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_with_max_concurrency_1_every_shard_waits_5_s_after_the_one_before() -> None:
    clock = Clock()
    pacer = IdentifyPacer(clock)
    assert [pacer.reserve(shard, 1) for shard in range(3)] == [0.0, 5.0, 10.0]


def test_shards_of_different_buckets_identify_at_once() -> None:
    pacer = IdentifyPacer(Clock())
    assert [pacer.reserve(shard, 2) for shard in range(4)] == [0.0, 0.0, 5.0, 5.0]


def test_a_reconnect_after_the_interval_does_not_wait() -> None:
    clock = Clock()
    pacer = IdentifyPacer(clock)
    assert pacer.reserve(0, 1) == 0.0
    clock.now += 2.0
    assert pacer.reserve(0, 1) == IDENTIFY_INTERVAL_S - 2.0
    clock.now += 60.0
    assert pacer.reserve(0, 1) == 0.0
