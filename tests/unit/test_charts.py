"""The /usage chart is a PNG of the expected size, whatever the data."""

from __future__ import annotations

import io
from datetime import date, timedelta

from PIL import Image

from bot.charts import CHART_SIZE, spend_chart


def _series(amounts: list[int]) -> list[tuple[date, int]]:
    start = date(2026, 1, 1)
    return [(start + timedelta(days=i), a) for i, a in enumerate(amounts)]


def test_chart_is_a_png_of_the_expected_size() -> None:
    png = spend_chart(_series([0, 50_000, 120_000] * 10), daily_cap=1_000_000)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.size == CHART_SIZE


def test_chart_draws_bars_for_spend_and_nothing_for_empty_days() -> None:
    empty = Image.open(io.BytesIO(spend_chart(_series([0] * 30)))).convert("RGB")
    busy = Image.open(io.BytesIO(spend_chart(_series([0] * 29 + [500_000])))).convert("RGB")
    assert empty.getcolors(1 << 16) != busy.getcolors(1 << 16)
    # Today's bar (last slot) is painted in the highlight colour near the bottom right.
    assert busy.getpixel((CHART_SIZE[0] - 14, CHART_SIZE[1] - 24)) == (87, 242, 135)


def test_chart_handles_no_data_and_a_custom_size() -> None:
    png = spend_chart([], size=(300, 120))
    assert Image.open(io.BytesIO(png)).size == (300, 120)
