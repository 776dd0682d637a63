"""A result fal made, and billed, that Flexbot could not fetch: what to charge for it.

fal keeps a result 1 hour, or about 6 minutes when it is 10 KB or more (DESIGN §6); after an
outage, or when the output cannot be downloaded or read, the edit is lost, yet fal billed it.
The ledger says so: a ``charge`` row like any other, so usage reports, the caps and
``flexbot reconcile`` all count it.

The price is fal's formula (``bot.pricing``) on the inputs as sent (stored with the job) and the
output's size: the size fal's request list records in the request's output when the key can
read it, else the size fal's result named, else the size the job asked for (for ``auto``, the
estimate's size: the first input's, capped by ``max_output_megapixels``). Only the last is a
guess, and only for an ``auto`` size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.fal.client import FalClient, OutputImage, RequestRecord
from bot.fal.errors import FalError
from bot.model import EditParams
from bot.pricing import PriceList, expected_output_size

log = logging.getLogger(__name__)

LOST_NOTICE = (
    "fal made this edit, but its result was lost before Flexbot could fetch it (fal keeps "
    "results only for a short while, and Flexbot could not get it in time). fal billed it, so "
    "it counts toward your spending. There is nothing to retry: run the edit again if you "
    "still want it."
)


async def fal_record(fal: FalClient, request_id: str) -> RequestRecord | None:
    """fal's request list entry for the request, or None when it cannot be read."""
    try:
        records = await fal.list_requests(request_id=request_id, payloads=True)
    except FalError as exc:  # forbidden, or fal unreachable: price from what we know
        log.info("request=%s not read from fal's request list: %s", request_id, exc)
        return None
    return next((r for r in records if r.request_id == request_id), None)


def _listed_size(record: RequestRecord | None) -> tuple[int, int] | None:
    output = record.json_output if record is not None else None
    images = output.get("images") if isinstance(output, dict) else None
    first = images[0] if isinstance(images, list) and images else None
    if not isinstance(first, dict):
        return None
    width, height = first.get("width"), first.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return (width, height)
    return None


def output_size(
    record: RequestRecord | None,
    output: OutputImage | None,
    params: EditParams,
    input_sizes: Sequence[tuple[int, int]],
    prices: PriceList,
) -> tuple[int, int]:
    """The lost output's size, from the best source there is (see the module docstring)."""
    listed = _listed_size(record)
    if listed is not None:
        return listed
    if output is not None and output.width and output.height:
        return (output.width, output.height)
    return expected_output_size(
        params, input_sizes, max_output_megapixels=prices.max_output_megapixels, unit=prices.unit
    )
