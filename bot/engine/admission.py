"""Admission: may this member queue this edit now, and at what estimate? (DESIGN §3, §5)

Access (blocked, paused), per-member counts (queued, cooldown) and money caps are checked and the
job is inserted with its ``reserve`` ledger row in ONE write transaction, so two submits can never
both fit under a cap that has room for one. A refusal is a raised ``UserError`` that names the
limit, what is left and when it resets.

The prompt filter (issue 14: the server's blocked words and patterns and the bot-wide ones) is
the first check of both ``precheck`` and ``admit``, which every entry point passes; a refusal is
recorded in the audit table for the server's moderators.

``precheck`` makes the same checks earlier, from the sizes the uploads declare, so a refused edit
costs no download, no decode and no disk (issue 11); it writes nothing, and submit still decides.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bot.engine import quota
from bot.errors import UserError
from bot.images import check_size
from bot.model import MAX_IMAGES, EditParams, EditRequest, InputImage, Job, Requester
from bot.pricing import PriceList
from bot.prompt_filter import PromptBlocked, find_blocked
from bot.settings import Settings
from bot.store import access as access_repo
from bot.store import audit as audit_repo
from bot.store import filters as filters_repo
from bot.store import jobs as jobs_repo
from bot.store import limits as limits_repo
from bot.store import prefs as prefs_repo
from bot.store.db import Database, Reader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A job that passed every check and is stored as queued, holding its estimate."""

    job_id: int
    estimate_micros: int
    max_running: int | None


class Admission:
    """The checks in front of the queue, and the insert that follows them."""

    def __init__(
        self, db: Database, settings: Settings, prices: PriceList, clock: Callable[[], float]
    ) -> None:
        self.db = db
        self.settings = settings
        self.prices = prices
        self.clock = clock

    def estimate(self, params: EditParams, inputs: Sequence[InputImage]) -> int:
        return self.prices.estimate(params, [(i.width, i.height) for i in inputs]).micros

    async def limits_for(self, requester: Requester, src: Reader | None = None) -> quota.Limits:
        rows = await limits_repo.overrides_for(
            src or self.db, requester.guild_id, requester.user_id, requester.role_ids
        )
        overrides = [(r.scope, r.target_id, r.name, r.value) for r in rows]
        return quota.resolve_limits(quota.default_limits(self.settings), overrides)

    async def usage_for(
        self, requester: Requester, now: float, src: Reader | None = None
    ) -> quota.Usage:
        return _usage(await self._facts(requester, now, src or self.db))

    async def _facts(self, requester: Requester, now: float, src: Reader) -> jobs_repo.MemberFacts:
        day = quota.day_start(now).timestamp()
        month = quota.month_start(now).timestamp()
        return await jobs_repo.member_facts(src, requester.user_id, requester.guild_id, day, month)

    async def check_access(self, requester: Requester, src: Reader | None = None) -> None:
        """Raise UserError for blocked members and paused servers, before any work is done."""
        src = src or self.db
        if await access_repo.is_blocked(src, requester.guild_id, requester.user_id):
            raise UserError("You are not allowed to use Flexbot here.", limit="blocked")
        paused = await access_repo.paused_scopes(src, requester.guild_id)
        if paused:
            where = "everywhere" if limits_repo.GLOBAL in paused else "on this server"
            raise UserError(
                f"Flexbot is paused {where} by an admin; try again later.", limit="paused"
            )

    async def check_prompt(self, requester: Requester, prompt: str) -> None:
        """Refuse a prompt holding a blocked term (PromptBlocked), and record the refusal."""
        terms = await filters_repo.blocking_terms(
            self.db,
            requester.guild_id,
            self.settings.blocked_terms,
            self.settings.blocked_patterns,
        )
        hit = find_blocked(prompt, terms)
        if hit is None:
            return
        log.info("user=%s guild=%s refused: prompt_filter", requester.user_id, requester.guild_id)
        async with self.db.transaction() as tx:
            await audit_repo.record(
                tx,
                requester.guild_id,
                requester.user_id,
                "prompt_blocked",
                {
                    "channel": requester.channel_id,
                    "kind": hit.term.kind,
                    "term": hit.term.text,
                    "everywhere": hit.term.everywhere,
                    "prompt": prompt[:200],
                },
            )
        raise PromptBlocked(hit)

    async def check_source_author(
        self, requester: Requester, author_id: int | None, src: Reader | None = None
    ) -> None:
        """Refuse editing another member's message images when they opted out of remixing."""
        if author_id is None or author_id == requester.user_id:
            return
        if await prefs_repo.remix_opted_out(src or self.db, author_id):
            raise UserError(
                "The member who posted these images has asked that others not edit or remix "
                "them, so Flexbot won't. Try it on your own images instead.",
                limit="remix_opt_out",
            )

    async def _gate(self, who: Requester) -> quota.Limits:
        """Access, then the limits that apply: what admins set, read before the write lock (an
        admin's change racing an edit is unordered either way)."""
        try:
            await self.check_access(who)
        except UserError as exc:
            _refused(who, exc)
            raise
        return await self.limits_for(who)

    async def _fits(
        self, who: Requester, estimate: int, limits: quota.Limits, now: float, src: Reader
    ) -> None:
        """Counts, cooldown and money, in that order, from one read: raises the first refusal.
        In ``admit`` this runs under the write lock, so two edits cannot both fit one slot."""
        facts = await self._facts(who, now, src)
        refusal = quota.check_counts(limits, facts.queued, facts.running, facts.last_submit, now)
        if refusal is None:
            refusal = quota.check_budget(estimate, limits, _usage(facts), now)
        if refusal is not None:
            _refused(who, refusal)
            raise refusal

    async def precheck(
        self,
        requester: Requester,
        params: EditParams,
        declared: Sequence[tuple[int, int] | None],
        declared_bytes: Sequence[int],
        *,
        source_author_id: int | None = None,
    ) -> int:
        """Every check submit makes, from the sizes the uploads declare, before any download.

        Reads only. Returns the estimate, an upper bound of submit's (see
        ``declared_estimate``); submit checks again with the real images, atomically.
        """
        if not 1 <= len(declared) <= MAX_IMAGES:
            raise UserError("An edit takes 1 to 8 images.", limit="images")
        await self.check_prompt(requester, params.prompt)
        for number, size in enumerate(declared_bytes, 1):
            check_size(f"Image {number}", size, self.settings.max_input_bytes)
        await self.check_source_author(requester, source_author_id)
        estimate = self.declared_estimate(params, declared)
        limits = await self._gate(requester)
        await self._fits(requester, estimate, limits, self.clock(), self.db)
        return estimate

    def declared_estimate(
        self, params: EditParams, declared: Sequence[tuple[int, int] | None]
    ) -> int:
        """The most an edit of images of these (declared) sizes can be estimated at.

        Inputs are downscaled to ``max_input_megapixels`` before they are priced, so each input
        counts as its declared pixels or that limit, whichever is smaller; an unknown size counts
        as the limit. For an ``auto`` output (the first input's size, within the output limit)
        the same bound applies to the output. Fal bills by area only, so an area as a 1-pixel-high
        size prices exactly like the real image would at most.
        """
        cap = max(1, math.floor(self.settings.max_input_megapixels * self.prices.unit))
        areas = [cap if size is None else min(size[0] * size[1], cap) for size in declared]
        explicit = params.image_size.pixels()
        if explicit is not None:
            output = explicit
        else:
            out_cap = int(self.prices.max_output_megapixels * self.prices.unit)
            output = (max(1, min(areas[0], out_cap)), 1)
        return self.prices.quote([(area, 1) for area in areas], output).micros

    async def admit(self, request: EditRequest, endpoint: str) -> Admitted:
        """Check every limit and insert the queued job with its reservation, atomically."""
        if not 1 <= len(request.inputs) <= MAX_IMAGES:
            raise UserError("An edit takes 1 to 8 images.", limit="images")
        await self.check_prompt(request.requester, request.params.prompt)
        estimate = self.estimate(request.params, request.inputs)
        who = request.requester
        await self.check_source_author(who, request.source_author_id)
        limits = await self._gate(who)
        async with self.db.transaction() as tx:
            # Read the clock once the write lock is held: a job another task or process inserted
            # while this one waited must not look like it came from the future (a cooldown of 0
            # would then refuse "for 0 s").
            now = self.clock()
            await self._fits(who, estimate, limits, now, tx)
            new = _new_job(request, endpoint, estimate, limits["user_max_running"])
            job_id = await jobs_repo.insert_job(tx, new, now)
        return Admitted(job_id, estimate, limits["user_max_running"])

    async def budget_at_dispatch(
        self, job: Job, src: Reader | None = None, limits: quota.Limits | None = None
    ) -> UserError | None:
        """Does a queued job still fit its budgets now that jobs before it were charged?

        Submit checked the estimate, but a job charged more than its estimate (the actual output
        was larger) spends money the jobs queued after it were admitted against. Re-checking the
        caps before a job starts keeps any cap from being overrun by more than the estimate error
        of the jobs running at once, instead of by the sum over a member's whole queue.
        """
        if limits is None:  # admin-set: the caller may read them before taking the lock
            limits = await self.limits_for(job.requester)
        if all(limits[name] is None for name in quota.MONEY_LIMITS):
            return None
        now = self.clock()
        usage = await self.usage_for(job.requester, now, src)
        # The job's own reservation is in the usage; check it the way submit did, as new.
        held = job.held_micros
        in_day = job.created_at >= quota.day_start(now).timestamp()
        in_month = job.created_at >= quota.month_start(now).timestamp()
        usage = replace(
            usage,
            user_day=usage.user_day - (held if in_day else 0),
            user_month=usage.user_month - (held if in_month else 0),
            guild_month=usage.guild_month - (held if in_month and job.guild_id else 0),
            global_month=usage.global_month - (held if in_month else 0),
        )
        return quota.check_budget(job.estimate_micros, limits, usage, now)


def _usage(facts: jobs_repo.MemberFacts) -> quota.Usage:
    return quota.Usage(
        user_day=facts.user_day,
        user_month=facts.user_month,
        guild_month=facts.guild_month,
        global_month=facts.global_month,
        user_credit=facts.credit,
    )


def _refused(who: Requester, refusal: UserError) -> None:
    log.info("user=%s guild=%s refused: %s", who.user_id, who.guild_id, refusal.limit)


def _new_job(
    request: EditRequest, endpoint: str, estimate: int, max_running: int | None
) -> jobs_repo.NewJob:
    who = request.requester
    return jobs_repo.NewJob(
        user_id=who.user_id,
        guild_id=who.guild_id,
        channel_id=who.channel_id,
        role_ids=who.role_ids,
        origin=request.origin,
        parent_job_id=request.parent_job_id,
        endpoint=endpoint,
        params=request.params,
        input_hashes=tuple(i.sha256 for i in request.inputs),
        estimate_micros=estimate,
        channel_nsfw=who.channel_nsfw,
        source_message_id=request.source_message_id,
        source_author_id=request.source_author_id,
        max_running=max_running,
    )
