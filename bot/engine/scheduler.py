"""Fair order of queued jobs: round-robin between guilds, and between users within a guild.

The jobs table is the source of truth; this is an in-memory index over its queued rows, rebuilt at
start-up. A pick takes the next guild in turn, the next user in turn inside it who is below their
running cap, and that user's oldest job; both then move to the back of their rotation. So a
member's first job waits at most one job per other active member, however many others have queued.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    job_id: int
    user_id: int
    guild_id: int
    max_running: int | None


class FairScheduler:
    """Round-robin over guilds, then users, honouring per-user running caps."""

    def __init__(self) -> None:
        self._guilds: OrderedDict[int, OrderedDict[int, deque[_Entry]]] = OrderedDict()
        self._entries: dict[int, _Entry] = {}
        self.running: dict[int, int] = {}  # user_id -> jobs running now

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._entries

    def add(self, job_id: int, user_id: int, guild_id: int | None, max_running: int | None) -> None:
        entry = _Entry(job_id, user_id, guild_id or 0, max_running)
        users = self._guilds.setdefault(entry.guild_id, OrderedDict())
        users.setdefault(user_id, deque()).append(entry)
        self._entries[job_id] = entry

    def remove(self, job_id: int) -> bool:
        """Drop a queued job (cancelled); False if it was not queued here."""
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return False
        users = self._guilds[entry.guild_id]
        jobs = users[entry.user_id]
        jobs.remove(entry)
        if not jobs:
            del users[entry.user_id]
            if not users:
                del self._guilds[entry.guild_id]
        return True

    def _eligible(self, user_id: int, jobs: deque[_Entry]) -> bool:
        cap = jobs[0].max_running
        return cap is None or self.running.get(user_id, 0) < cap

    def pick(self) -> int | None:
        """The next job to run, or None when nothing queued may run now. Marks it running."""
        for guild_id in list(self._guilds):
            users = self._guilds[guild_id]
            for user_id in list(users):
                jobs = users[user_id]
                if not self._eligible(user_id, jobs):
                    continue
                entry = jobs.popleft()
                del self._entries[entry.job_id]
                if jobs:
                    users.move_to_end(user_id)
                else:
                    del users[user_id]
                if users:
                    self._guilds.move_to_end(guild_id)
                else:
                    del self._guilds[guild_id]
                self.running[user_id] = self.running.get(user_id, 0) + 1
                return entry.job_id
        return None

    def finished(self, user_id: int) -> None:
        """A job of this user stopped running."""
        left = self.running.get(user_id, 0) - 1
        if left > 0:
            self.running[user_id] = left
        else:
            self.running.pop(user_id, None)

    def position(self, job_id: int) -> int | None:
        """How many queued jobs will start before this one (0 = next), if nothing else arrives.

        Within a guild, each other user ahead contributes min(their queue, my depth [+1 if they
        come before me in the rotation]); other guilds interleave the same way at guild level.
        """
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        users = self._guilds[entry.guild_id]
        depth = users[entry.user_id].index(entry)
        user_order = list(users)
        my_user_turn = user_order.index(entry.user_id)
        ahead_in_guild = depth
        for turn, (uid, jobs) in enumerate(users.items()):
            if uid == entry.user_id:
                continue
            ahead_in_guild += min(len(jobs), depth + (1 if turn < my_user_turn else 0))
        # My job is the (ahead_in_guild)-th pick of my guild; guilds alternate picks.
        guild_order = list(self._guilds)
        my_guild_turn = guild_order.index(entry.guild_id)
        ahead = ahead_in_guild
        for turn, (gid, others) in enumerate(self._guilds.items()):
            if gid == entry.guild_id:
                continue
            size = sum(len(j) for j in others.values())
            ahead += min(size, ahead_in_guild + (1 if turn < my_guild_turn else 0))
        return ahead
