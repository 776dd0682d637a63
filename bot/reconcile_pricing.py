"""fal's price for one request from its list (``bot.reconcile`` compares it with the ledger).

fal's list carries no price, so a request is priced here from its payloads, as fal prices this
endpoint and as ``bot.pricing`` quotes it: every input and the output per started megapixel. The
output size is in ``json_output``; the inputs are URLs, so their sizes come from our blobs (by the
job's own inputs, or by fal storage URL). An input we do not know is assumed to be one of our
uploads, at most ``max_input_megapixels`` (the price is then an upper bound, and says so).
Only 2xx results are billed (fal: "Server errors (HTTP 500+) are never charged"; a 4xx is taken as
unbilled too, which fal says "may" not hold for a 422 that used GPU time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.fal.client import RequestRecord
from bot.model import PRESET_SIZES
from bot.pricing import PriceList
from bot.settings import Settings

Size = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FalPrice:
    """What fal billed for one request, as priced from its payloads; None when it cannot say."""

    micros: int | None
    assumed: str = ""  # what the price rests on beyond fal's record, for people


@dataclass(frozen=True, slots=True)
class Pricing:
    """How to price a request from fal's list: the operator's prices and what we know of inputs."""

    prices: PriceList
    max_input_megapixels: float
    sizes_by_url: Mapping[str, Size] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, sizes_by_url: Mapping[str, Size]) -> Pricing:
        return cls(PriceList.from_settings(settings), settings.max_input_megapixels, sizes_by_url)


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _size(value: Any) -> Size | None:
    """``{"width": w, "height": h}`` as (w, h); None for anything else."""
    if not isinstance(value, dict):
        return None
    width, height = _positive(value.get("width")), _positive(value.get("height"))
    return (width, height) if width and height else None


def _output_sizes(record: RequestRecord) -> list[Size]:
    output = record.json_output
    images = output.get("images") if isinstance(output, dict) else None
    sizes = [_size(image) for image in images] if isinstance(images, list) else []
    return [s for s in sizes if s is not None]


def price_request(
    record: RequestRecord, pricing: Pricing, own_inputs: Sequence[Size | None] = ()
) -> FalPrice:
    """fal's price for ``record``: 0 unless it succeeded; None while running or unknowable.

    ``own_inputs``: the sizes of the job's inputs in order (None: unknown), when it is ours."""
    if record.outcome is None:
        return FalPrice(None, "still running at fal")
    if record.outcome != "success":
        return FalPrice(0)
    urls = (record.json_input or {}).get("image_urls")
    if not isinstance(urls, list):
        return FalPrice(None, "fal listed no input")
    assumed: list[str] = []
    unit = pricing.prices.unit
    inputs: list[Size] = []
    for i, url in enumerate(urls):
        known = pricing.sizes_by_url.get(url) if isinstance(url, str) else None
        if known is None and i < len(own_inputs):
            known = own_inputs[i]
        if known is None:
            # Area as a 1-pixel-high strip: priced by area alone, like bot.engine.admission.
            known = (max(1, int(pricing.max_input_megapixels * unit)), 1)
            assumed.append(f"input {i + 1} at most {pricing.max_input_megapixels:g} MP")
        inputs.append(known)
    outputs = _output_sizes(record)
    if not outputs:
        requested = (record.json_input or {}).get("image_size")
        size = _size(requested)
        if size is None and isinstance(requested, str):
            size = PRESET_SIZES.get(requested)
        if size is None:
            limit = pricing.prices.max_output_megapixels
            size = (max(1, math.ceil(limit * unit)), 1)
            assumed.append(f"output at most {limit:g} MP (fal's record has no size)")
        outputs = [size]
    # The inputs are billed once per request, each output image on its own.
    micros = pricing.prices.quote(inputs, outputs[0]).micros
    micros += sum(pricing.prices.quote([], out).micros for out in outputs[1:])
    return FalPrice(micros, "; ".join(assumed))
