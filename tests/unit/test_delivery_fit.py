"""fit_upload: an output over the upload limit is shrunk or re-encoded, never lost."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from bot.engine.delivery import Undeliverable
from cogs.delivery import fit_upload

MB = 2**20


def noisy_png(size: int) -> bytes:
    """Random pixels: PNG cannot compress them, so the file is close to 3 bytes a pixel."""
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def big_png() -> bytes:
    data = noisy_png(3000)
    assert len(data) > 20 * MB
    return data


def test_a_large_noisy_png_is_reencoded_under_the_limit_and_still_decodes(
    big_png: bytes,
) -> None:
    data, ext = fit_upload(big_png, MB, "png")
    assert len(data) <= MB
    assert ext == "jpg"
    image = decode(data)
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    # Downscaled, keeping the aspect ratio, but not to a thumbnail.
    assert image.width == image.height
    assert 300 <= image.width < 3000


def test_a_small_image_is_left_untouched() -> None:
    small = noisy_png(64)
    assert fit_upload(small, MB, "png") == (small, "png")
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(jpeg, "JPEG")
    assert fit_upload(jpeg.getvalue(), MB, "jpg") == (jpeg.getvalue(), "jpg")


def test_exactly_at_the_limit_is_untouched() -> None:
    data = noisy_png(40)
    assert fit_upload(data, len(data), "png") == (data, "png")


def test_a_png_with_alpha_becomes_an_rgb_jpeg() -> None:
    image = Image.frombytes("RGBA", (400, 400), os.urandom(400 * 400 * 4))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    data, ext = fit_upload(buf.getvalue(), 200_000, "png")
    assert ext == "jpg"
    assert len(data) <= 200_000
    assert decode(data).mode == "RGB"


def test_an_impossible_limit_is_undeliverable_not_a_crash() -> None:
    with pytest.raises(Undeliverable, match="upload limit"):
        fit_upload(noisy_png(200), 100, "png")
