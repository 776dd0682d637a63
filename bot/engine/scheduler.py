"""Fair, work-conserving order of queued jobs: fewest running first, newcomers next, in turn.

The jobs table is the source of truth; this is an in-memory index over its queued rows, rebuilt at
start-up. The dispatcher calls :meth:`FairScheduler.pick` whenever a fal slot is free. The policy:

- **Work-conserving.** A pick returns a job whenever any member with a queued job is below their
  running cap, so no slot idles while someone waits. A lone member fills every free slot.
- **Fewest running first.** Among the members who may start a job, the one with the fewest jobs
  running now goes first; a member's turn never waits for those who already hold more slots.
- **Newcomers next.** Among members with as many running, one new to the queue (who had
  nothing running or queued, and has not started a job since) goes before those already
  served. So when a slot frees, a member whose first job waits takes it, even before the member
  whose job just ended: that first job waits at most one job's turn (behind other newcomers
  only).
- **Round-robin breaks ties**: over guilds first, then over members within the guild. The picked
  member and their guild move to the back of their rotations, so two members with work waiting
  alternate slot by slot, and so do two servers' members.
- **The running cap is an admin limit** (``user_max_running``; a server can set it below the
  owner's), not the brake that makes the queue fair: a member at their cap is skipped, and the
  slot goes to the next member in order, until one of their jobs ends.

Fairness is per member: a server with more members waiting gets more slots than a server with
one, though none of its members gets more than anyone else.

A pick walks the rotation and stops at the first newcomer with nothing running (or, with no
newcomer waiting, the first member with nothing running); the members it passes hold slots or
were served, so a pick is cheap next to the fal call it starts.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    job_id: int
    user_id: int
    guild_id: int
    max_running: int | None


@dataclass(slots=True)
class _Member:
    """One member's queued jobs in one guild, oldest first."""

    jobs: deque[_Entry] = field(default_factory=deque)
    #: False until one of these jobs starts, for a member who had nothing running when they
    #: queued: a member new to the queue goes before those already served.
    started: bool = False


class FairScheduler:
    """Fewest running first, newcomers next, then round-robin over guilds and members."""

    def __init__(self) -> None:
        self._guilds: OrderedDict[int, OrderedDict[int, _Member]] = OrderedDict()
        self._entries: dict[int, _Entry] = {}
        self._fresh = 0  # members who have not started a job since they joined the queue
        self.running: dict[int, int] = {}  # user_id -> jobs running now

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._entries

    def add(self, job_id: int, user_id: int, guild_id: int | None, max_running: int | None) -> None:
        """Queue a job behind the member's earlier ones; ``max_running`` is their cap (None: no
        cap), read from their oldest queued job when they are picked."""
        entry = _Entry(job_id, user_id, guild_id or 0, max_running)
        users = self._guilds.setdefault(entry.guild_id, OrderedDict())
        member = users.get(user_id)
        if member is None:
            # With a job running they are being served already, not new.
            member = users[user_id] = _Member(started=self.running.get(user_id, 0) > 0)
            self._fresh += 0 if member.started else 1
        member.jobs.append(entry)
        self._entries[job_id] = entry

    def remove(self, job_id: int) -> bool:
        """Drop a queued job (cancelled); False if it was not queued here."""
        entry = self._entries.pop(job_id, None)
        if entry is None:
            return False
        users = self._guilds[entry.guild_id]
        member = users[entry.user_id]
        member.jobs.remove(entry)
        if not member.jobs:
            self._leave(entry.guild_id, entry.user_id)
        return True

    def _leave(self, guild_id: int, user_id: int) -> None:
        users = self._guilds[guild_id]
        if not users.pop(user_id).started:
            self._fresh -= 1
        if not users:
            del self._guilds[guild_id]

    def _eligible(self, user_id: int, member: _Member) -> bool:
        cap = member.jobs[0].max_running
        return cap is None or self.running.get(user_id, 0) < cap

    def _choose(self) -> tuple[int, int] | None:
        """(guild, member) to pick from: the eligible member with the fewest jobs running, a
        newcomer before the others among equals, then the first in rotation order; None when
        every waiting member is at their cap."""
        best: tuple[int, int] | None = None
        best_rank = (0, False)
        for guild_id, users in self._guilds.items():
            for user_id, member in users.items():
                if not self._eligible(user_id, member):
                    continue
                rank = (self.running.get(user_id, 0), member.started)
                if rank == (0, False) or (rank == (0, True) and not self._fresh):
                    return guild_id, user_id  # nobody can come before this member
                if best is None or rank < best_rank:
                    best, best_rank = (guild_id, user_id), rank
        return best

    def pick(self) -> int | None:
        """The next job to run, or None when nothing queued may run now. Marks it running."""
        chosen = self._choose()
        if chosen is None:
            return None
        guild_id, user_id = chosen
        users = self._guilds[guild_id]
        member = users[user_id]
        entry = member.jobs.popleft()
        del self._entries[entry.job_id]
        if not member.started:
            member.started = True
            self._fresh -= 1
        if member.jobs:
            users.move_to_end(user_id)
            self._guilds.move_to_end(guild_id)
        else:
            self._leave(guild_id, user_id)
            if users:
                self._guilds.move_to_end(guild_id)
        self.running[user_id] = self.running.get(user_id, 0) + 1
        return entry.job_id

    def finished(self, user_id: int) -> None:
        """A job of this user stopped running."""
        left = self.running.get(user_id, 0) - 1
        if left > 0:
            self.running[user_id] = left
        else:
            self.running.pop(user_id, None)

    def position(self, job_id: int) -> int | None:
        """About how many queued jobs will start before this one (0 = next), if nothing else
        arrives and nothing running ends (caps aside: they delay a member's turn, not the order).

        A member with ``r`` jobs running starts their queued jobs at "levels" r, r+1, ...; picks
        go level by level (fewest running first). My job at depth ``d`` is at level
        ``L = r + d``: every pick at a lower level comes first; at level L the newcomers whose
        first job it is go first, then the others, each group with guilds taking turns. The
        rotation is read as it is now (it moves as jobs start), so deeper jobs are estimates;
        the job that starts next is always at 0, and a member's jobs keep their order.
        """
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        me = self._guilds[entry.guild_id][entry.user_id]
        level = self.running.get(entry.user_id, 0) + me.jobs.index(entry)
        below = 0  # picks at levels under mine, mine included
        groups: tuple[dict[int, list[int]], dict[int, list[int]]] = ({}, {})  # newcomers, others
        for guild_id, users in self._guilds.items():
            for user_id, member in users.items():
                running = self.running.get(user_id, 0)
                below += min(len(member.jobs), max(0, level - running))
                if running <= level < running + len(member.jobs):
                    newcomer = not member.started and running == level
                    groups[0 if newcomer else 1].setdefault(guild_id, []).append(user_id)
        mine = 0 if not me.started and self.running.get(entry.user_id, 0) == level else 1
        ahead = below + (sum(len(u) for u in groups[0].values()) if mine else 0)
        return ahead + _turns_before(groups[mine], entry.guild_id, entry.user_id)


def _turns_before(at_level: dict[int, list[int]], guild_id: int, user_id: int) -> int:
    """Picks before ``user_id`` among these members (by guild, in rotation order) when guilds
    take turns and members take turns within their guild."""
    my_turn = at_level[guild_id].index(user_id)
    my_guild_turn = list(at_level).index(guild_id)
    ahead = my_turn
    for turn, (other, members) in enumerate(at_level.items()):
        if other != guild_id:
            ahead += min(len(members), my_turn + (1 if turn < my_guild_turn else 0))
    return ahead
