"""When a shard may IDENTIFY: Discord's session start limit, per bucket instead of per process.

Discord allows ``max_concurrency`` IDENTIFYs per 5 seconds, one for each bucket
``shard_id % max_concurrency`` (gateway docs, "Session Start Limit Object" and "Sharding for
Large Bots"). discord.py's default ``before_identify_hook`` waits 5 s before every IDENTIFY but
the process's first, whatever the bucket; pacing per bucket starts a bot whose
``max_concurrency`` is above 1 without those waits, and still waits 5 s between two shards of one
bucket (every shard, for most bots).
"""

from __future__ import annotations

from collections.abc import Callable

#: Seconds between two IDENTIFYs of one bucket.
IDENTIFY_INTERVAL_S = 5.0


class IdentifyPacer:
    """Hands out IDENTIFY times: each bucket's at least ``IDENTIFY_INTERVAL_S`` apart."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._next: dict[int, float] = {}

    def reserve(self, shard_id: int, max_concurrency: int) -> float:
        """Book this shard's next IDENTIFY; the seconds to wait before sending it.

        The slot is taken before the caller waits, so two shards of one bucket asking at once
        get slots 5 s apart.
        """
        bucket = shard_id % max(1, max_concurrency)
        now = self._clock()
        at = max(now, self._next.get(bucket, now))
        self._next[bucket] = at + IDENTIFY_INTERVAL_S
        return at - now
