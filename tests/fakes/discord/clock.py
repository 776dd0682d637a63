"""A clock the test controls: real time plus an offset that only the test moves."""

from __future__ import annotations

import datetime as dt
import time


class FakeClock:
    """Wall-clock time shifted by `advance()`, used for interaction token expiry and snowflakes."""

    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch on the fake clock."""
        return time.time() + self._offset

    def now(self) -> dt.datetime:
        """The fake clock as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.time(), tz=dt.UTC)

    def advance(self, *, minutes: float = 0, seconds: float = 0) -> None:
        """Move the clock forward; real time keeps running on top of it."""
        self._offset += minutes * 60 + seconds

    def iso(self) -> str:
        """The current fake time as Discord formats timestamps."""
        return self.now().isoformat()
