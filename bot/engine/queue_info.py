"""How long the queue is likely to take: typical fal run time and a queued job's ETA."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bot.store import jobs as jobs_repo
from bot.store.db import Database

#: Seconds assumed for a run before any has been timed.
DEFAULT_DURATION = 20.0


class QueueInfo:
    """Recent fal run durations, and ETAs from them and the free worker slots."""

    def __init__(self, slots: int, busy: Callable[[], int]) -> None:
        self.slots = slots
        self._busy = busy
        self._durations: list[float] = []

    async def load(self, db: Database) -> None:
        """Start from the stored jobs' recent durations (at engine start)."""
        self._durations = await jobs_repo.recent_durations(db)

    def record(self, seconds: float) -> None:
        """Note how long a fal run took, newest first."""
        self._durations.insert(0, seconds)
        del self._durations[50:]

    def typical_duration(self) -> float:
        recent = self._durations[:20]
        return statistics.median(recent) if recent else DEFAULT_DURATION

    def eta(self, position: int) -> float:
        """Seconds until a job at this queue position starts, from recent fal durations."""
        if position == 0 and self._busy() < self.slots:
            return 0.0
        return (position // self.slots + 1) * self.typical_duration()
