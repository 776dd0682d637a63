"""What fal would bill for each request the fake completed, priced the way fal prices it.

fal's price for ``flux-2-flex/edit``: "$0.05 per megapixel on both input and output side, rounded
up to the nearest megapixel" (fal.ai/models/fal-ai/flux-2-flex/edit/llms.txt), each image
rounded up on its own (shared/reference/fal-queue-api.md §10). This is written apart from
``bot.pricing`` on purpose: a test that compares the two catches a mistake in either.

Billed: every request that completed with a 2xx result, sync mode included. Not billed:
5xx ("Server errors (HTTP 500+) are never charged", fal.ai/docs/model-apis/faq), requests
cancelled before an output, and 4xx. fal says a 422 "may still be charged if a runner spent GPU
time"; the fake does not bill those, so a ledger that charges nothing for them matches it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: fal's megapixel: 1024 x 1024 pixels (1024x1024 costs exactly $0.05 on fal's page).
MEGAPIXEL = 1024 * 1024
#: $0.05 in micro-dollars.
PRICE_PER_MEGAPIXEL_MICROS = 50_000


def started_megapixels(width: int, height: int) -> int:
    """Megapixels fal bills for one image: every started one, at least one."""
    return max(1, -(-(width * height) // MEGAPIXEL))


@dataclass(frozen=True, slots=True)
class BillingEntry:
    """One request fal would bill, and what for."""

    request_id: str
    input_megapixels: tuple[int, ...]
    output_megapixels: int
    micros: int
    at: float  # the fake's wall clock when the request completed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bill(
    request_id: str,
    input_sizes: list[tuple[int, int]],
    output_size: tuple[int, int],
    *,
    price_per_megapixel_micros: int,
    at: float,
) -> BillingEntry:
    """The entry for one completed request."""
    inputs = tuple(started_megapixels(w, h) for w, h in input_sizes)
    output = started_megapixels(*output_size)
    micros = (sum(inputs) + output) * price_per_megapixel_micros
    return BillingEntry(request_id, inputs, output, micros, at)
