"""Rerun and remix: new edit requests built from a stored job's parameters and images.

A member may reuse a job's images only when neither its requester nor the author of the message
it edited opted out of remixing; the opt-out follows the images into the new job.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.engine.inputs import Inputs
from bot.errors import UserError
from bot.model import EditRequest, Job, Origin, Requester
from bot.store import prefs
from bot.store.db import Database


class Reuse:
    """Builds rerun and remix requests from jobs the requester may already see."""

    def __init__(self, db: Database, inputs: Inputs) -> None:
        self.db = db
        self.inputs = inputs

    async def rerun_request(
        self, job: Job, requester: Requester, overrides: dict[str, Any] | None, origin: Origin
    ) -> EditRequest:
        """The job again with its stored parameters and inputs (same seed unless overridden)."""
        await self._check_opt_out(job, requester)
        params = replace(job.params, seed=job.seed if job.seed is not None else job.params.seed)
        if overrides:
            params = replace(params, **overrides)
        inputs = await self.inputs.inputs_of(job.input_hashes, job.id)
        return EditRequest(
            params,
            inputs,
            requester,
            origin=origin,
            parent_job_id=job.id,
            source_author_id=_author_of_images(job, requester),
        )

    async def remix_request(
        self, job: Job, requester: Requester, prompt: str, overrides: dict[str, Any]
    ) -> EditRequest:
        """A new edit that uses the job's output as its reference image."""
        await self._check_opt_out(job, requester)
        if job.output_hash is None:
            raise UserError.of("Job #{job} has no result to remix yet.", job=job.id)
        inputs = await self.inputs.inputs_of([job.output_hash], job.id)
        params = replace(job.params, prompt=prompt, seed=None, **overrides)
        return EditRequest(
            params,
            inputs,
            requester,
            origin=Origin.REMIX,
            parent_job_id=job.id,
            source_author_id=_author_of_images(job, requester),
        )

    async def _check_opt_out(self, job: Job, requester: Requester) -> None:
        owners = {job.user_id, job.source_author_id} - {requester.user_id, None}
        for owner in owners:
            if owner is not None and await prefs.remix_opted_out(self.db, owner):
                raise UserError.of(
                    "The author of the images of job #{job} has opted out of others "
                    "reusing their images.",
                    limit="remix_opt_out",
                    job=job.id,
                )


def _author_of_images(job: Job, requester: Requester) -> int | None:
    """Whose images a rerun or remix of ``job`` reuses, so their opt-out follows them."""
    if job.source_author_id is not None:
        return job.source_author_id
    return job.user_id if job.user_id != requester.user_id else None
