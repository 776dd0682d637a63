"""What reconciliation reads from the database: jobs sent to fal in a period, with what the ledger
charged for each, and the sizes of the images they sent (``bot.reconcile`` compares them)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from bot.model import EditParams
from bot.store.db import Reader, fetch_all

#: SQLite's default limit on bound parameters is 32766 (999 before 3.32); stay well under.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SentJob:
    """A job that was sent (or may have been sent) to fal, and its ledger sums."""

    job_id: int
    state: str
    guild_id: int | None
    fal_request_id: str | None
    sent_at: float  # when Flexbot started sending it (started_at; created_at if never stored)
    seed: int | None
    prompt: str
    input_hashes: tuple[str, ...]
    charged_micros: int  # the job's charge rows
    refunded_micros: int  # its refund rows


async def jobs_sent_between(src: Reader, start: float, end: float) -> list[SentJob]:
    """Jobs whose submit started in ``[start, end)``, each with the sum of its charge and refund
    ledger rows (summed from the rows, not the job's cached column)."""
    rows = await fetch_all(
        src,
        "SELECT j.id, j.state, j.guild_id, j.fal_request_id, j.started_at, j.created_at, j.seed,"
        " j.params, j.input_hashes,"
        " COALESCE(SUM(CASE l.kind WHEN 'charge' THEN l.amount_micros ELSE 0 END), 0),"
        " COALESCE(SUM(CASE l.kind WHEN 'refund' THEN l.amount_micros ELSE 0 END), 0)"
        " FROM jobs j LEFT JOIN ledger l ON l.job_id = j.id"
        " WHERE j.started_at IS NOT NULL AND j.started_at >= ? AND j.started_at < ?"
        " GROUP BY j.id ORDER BY j.id",
        (start, end),
    )
    return [
        SentJob(
            job_id=int(r[0]),
            state=str(r[1]),
            guild_id=r[2],
            fal_request_id=r[3],
            sent_at=float(r[4] if r[4] is not None else r[5]),
            seed=r[6],
            prompt=EditParams.from_json(r[7]).prompt,
            input_hashes=tuple(json.loads(r[8])),
            charged_micros=int(r[9]),
            refunded_micros=int(r[10]),
        )
        for r in rows
    ]


async def image_sizes(src: Reader, hashes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Width and height of each known image by sha256 (rows outlive the files)."""
    wanted = sorted(set(hashes))
    sizes: dict[str, tuple[int, int]] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = await fetch_all(
            src,
            f"SELECT sha256, width, height FROM blobs WHERE sha256 IN ({marks})"
            " AND width IS NOT NULL AND height IS NOT NULL",
            chunk,
        )
        sizes.update({str(r[0]): (int(r[1]), int(r[2])) for r in rows})
    return sizes


async def sizes_by_fal_url(src: Reader) -> dict[str, tuple[int, int]]:
    """Width and height of each image by the fal storage URL it was last uploaded as.

    Only the latest upload's URL is kept (``bot.engine.inputs`` refreshes it after 6 hours), so an
    older request's URL may be missing here; callers fall back to the job's own inputs."""
    rows = await fetch_all(
        src,
        "SELECT fal_url, width, height FROM blobs"
        " WHERE fal_url IS NOT NULL AND width IS NOT NULL AND height IS NOT NULL",
    )
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
