"""Small PNG charts drawn with Pillow. Pure functions: data in, PNG bytes out (run off the loop)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

from PIL import Image, ImageDraw, ImageFont

from bot.model import usd

CHART_SIZE = (600, 220)
_BG = (47, 49, 54)
_BAR = (88, 101, 242)
_TODAY = (87, 242, 135)
_CAP = (237, 66, 69)
_TEXT = (220, 221, 222)
_AXIS = (114, 118, 125)


def spend_chart(
    series: Sequence[tuple[date, int]],
    *,
    daily_cap: int | None = None,
    title: str = "Spend per day (UTC), last 30 days",
    size: tuple[int, int] = CHART_SIZE,
) -> bytes:
    """A bar chart of micro-dollars per day, today highlighted, the daily cap as a red line."""
    width, height = size
    image = Image.new("RGB", size, _BG)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 56, width - 10, 24, height - 22
    draw.text((left, 5), title, fill=_TEXT, font=font)
    peak = max([amount for _, amount in series] + [daily_cap or 0, 1])
    plot_h = bottom - top

    def y_of(amount: int) -> int:
        return bottom - round(plot_h * amount / peak)

    draw.line([(left, top), (left, bottom), (right, bottom)], fill=_AXIS)
    draw.text((4, top - 5), usd(peak) if peak > 1 else "$0", fill=_TEXT, font=font)
    draw.text((4, bottom - 10), "$0", fill=_TEXT, font=font)
    n = max(1, len(series))
    slot = (right - left - 2) / n
    for i, (_day, amount) in enumerate(series):
        x0 = left + 2 + round(i * slot)
        x1 = max(x0, left + 2 + round((i + 1) * slot) - 2)
        if amount > 0:
            color = _TODAY if i == len(series) - 1 else _BAR
            draw.rectangle([(x0, min(y_of(amount), bottom - 1)), (x1, bottom - 1)], fill=color)
    if series:
        draw.text((left, bottom + 5), f"{series[0][0]:%b %d}", fill=_TEXT, font=font)
        last = f"{series[-1][0]:%b %d}"
        draw.text((right - 6 * len(last), bottom + 5), last, fill=_TEXT, font=font)
    if daily_cap:
        y = y_of(daily_cap)
        draw.line([(left, y), (right, y)], fill=_CAP, width=1)
        label = f"daily cap {usd(daily_cap)}"
        draw.text((right - 6 * len(label), max(top, y - 12)), label, fill=_CAP, font=font)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
