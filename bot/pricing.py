"""Megapixel pricing (pure): fal bills each input and the output per started megapixel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import isqrt

from bot.model import EditParams
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """What a job costs and why: billed megapixels per input and for the output."""

    input_megapixels: tuple[int, ...]
    output_megapixels: int
    micros: int

    @property
    def total_megapixels(self) -> int:
        return sum(self.input_megapixels) + self.output_megapixels


def billed_megapixels(width: int, height: int, unit: int) -> int:
    """Megapixels fal bills for one image: rounded up, at least one."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return max(1, -(-(width * height) // unit))


def quote(
    input_sizes: Sequence[tuple[int, int]],
    output_size: tuple[int, int],
    *,
    price_per_megapixel: int,
    unit: int,
) -> PriceQuote:
    """Price of one edit in micro-dollars, each image rounded up separately."""
    inputs = tuple(billed_megapixels(w, h, unit) for w, h in input_sizes)
    output = billed_megapixels(*output_size, unit)
    return PriceQuote(inputs, output, (sum(inputs) + output) * price_per_megapixel)


def expected_output_size(
    params: EditParams,
    input_sizes: Sequence[tuple[int, int]],
    *,
    max_output_megapixels: float,
    unit: int,
) -> tuple[int, int]:
    """The output size to estimate with: the requested size, or for ``auto`` the first input's,
    scaled down to ``max_output_megapixels`` keeping its aspect ratio."""
    explicit = params.image_size.pixels()
    if explicit is not None:
        return explicit
    if not input_sizes:
        raise ValueError("an auto-sized edit needs at least one input")
    width, height = input_sizes[0]
    limit = int(max_output_megapixels * unit)
    if width * height <= limit:
        return (width, height)
    # Largest size with the same aspect ratio whose area fits the limit.
    scale_num, scale_den = isqrt(limit * 10**12 // (width * height)), 10**6
    return (
        max(1, width * scale_num // scale_den),
        max(1, height * scale_num // scale_den),
    )


@dataclass(frozen=True, slots=True)
class PriceList:
    """The operator's prices, so callers quote without passing the settings around."""

    price_per_megapixel: int
    unit: int
    max_output_megapixels: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceList:
        return cls(
            settings.price_per_megapixel, settings.megapixel_pixels, settings.max_output_megapixels
        )

    def quote(
        self, input_sizes: Sequence[tuple[int, int]], output_size: tuple[int, int]
    ) -> PriceQuote:
        return quote(
            input_sizes, output_size, price_per_megapixel=self.price_per_megapixel, unit=self.unit
        )

    def estimate(self, params: EditParams, input_sizes: Sequence[tuple[int, int]]) -> PriceQuote:
        """The price before running: inputs as normalised, the output as requested."""
        output = expected_output_size(
            params, input_sizes, max_output_megapixels=self.max_output_megapixels, unit=self.unit
        )
        return self.quote(input_sizes, output)
