"""What decoding an image will cost, judged from its header before any pixel is decoded.

The pixel cap (``max_input_pixels``) alone does not bound a decode: the cost of a pixel depends on
the format. Measured peaks while Pillow decodes a whole image and :func:`bot.images.normalize_image`
converts and shrinks it (Pillow 13, pillow-heif 1.x, growth of VmHWM over pixels):

* JPEG with one scan (baseline): decoded at 1/2, 1/4 or 1/8 scale (``draft``), a few bytes per
  *kept* pixel, whatever the file's size. The only format that decodes reduced.
* JPEG with several scans (progressive): libjpeg keeps every DCT coefficient of the whole image
  (128 bytes per 8x8 block per component) and walks all of them once per scan. A 187 KB file
  with 3,000 scans of 31 bytes each took 33 s of CPU. So the scans are counted (SOS markers) and
  ``scans x pixels`` is capped, and the coefficient memory counts against the budget.
* PNG, GIF, BMP, TIFF: 6-7 bytes per pixel, 10-11 for CMYK and 16-bit, 14 with alpha (the
  decoded pixels, the converted copy, the alpha check).
* WebP: 17 (23 with alpha), HEIF/HEIC: 10 (15), AVIF: 10 (18) bytes per pixel: the decoder's
  buffers plus Pillow's copy. None of them can decode reduced through Pillow.

So one memory budget (``ImageLimits.decode_memory``, 240 MB: with the interpreter that stays
under 300 MB) gives each format its own pixel cap: WebP 13 MP, HEIC 21 MP (a 12 MP phone photo
fits, a 24 MP one does not), PNG 30 MP (16 MP with alpha), and a 28-byte WebP declaring 8000x8000
is refused before it allocates 1 GB. A baseline JPEG keeps the 64 MP ``max_input_pixels`` cap.
TIFF tiles larger than the image are refused outright: libtiff allocates a whole tile, so a 16x16
image with 32752x32752 tiles asked for 1 GB.

Whatever these estimates miss is caught by the limits of the decode process
(:mod:`bot.decode_process`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

from bot.i18n import Text

MB = 1_000_000

# Peak bytes per decoded pixel (opaque, with alpha), rounded up from measurements (see above).
_BYTES_PER_PIXEL: dict[str, tuple[int, int]] = {
    "PNG": (8, 15),
    "GIF": (8, 15),
    "BMP": (8, 15),
    "TIFF": (8, 15),
    "WEBP": (18, 24),
    "HEIF": (11, 16),
    "AVIF": (11, 19),
    "JPEG": (5, 5),  # per pixel after draft(); the coefficient buffer is counted separately
}
_WORST_BYTES_PER_PIXEL = max(max(costs) for costs in _BYTES_PER_PIXEL.values())
# 16-bit, float and CMYK pixels go through a 4-byte-per-pixel conversion on the way to RGB.
_WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F", "CMYK"})
_WIDE_BYTES_PER_PIXEL = 12
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

MAX_JPEG_SCANS = 100
"""Scans in one JPEG. libjpeg's progressive scripts use 10 (YCbCr) to 18 (CMYK); mozjpeg a few
more. 100 is far beyond any encoder and far below what an attack needs."""

JPEG_SCAN_WORK = 2_500_000_000
"""Scans x pixels: each scan walks the whole image, about 0.75 ns per pixel (2 s at this cap)."""

# Any marker but a stuffed 0xFF00 or a restart marker ends a scan's entropy-coded data.
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


@dataclass(frozen=True, slots=True)
class JpegLayout:
    """What the markers of a JPEG's first image say about decoding it."""

    scans: int
    progressive: bool
    coefficient_bytes: int

    @property
    def buffers_coefficients(self) -> bool:
        """libjpeg keeps the whole image's coefficients when it must read several scans."""
        return self.progressive or self.scans > 1


def jpeg_layout(data: bytes, stop_after: int = MAX_JPEG_SCANS + 1) -> JpegLayout:
    """Count the scans of the first image (MPO files hold more) without decoding it."""
    scans, progressive, coefficients = 0, False, 0
    i, size = 2, len(data)
    while i + 4 <= size and scans < stop_after:
        if data[i] != 0xFF:  # garbage between segments: libjpeg skips it, so do we
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = data[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill, TEM, RSTn, SOI
            i += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            break
        end = i + 2 + (data[i + 2] << 8 | data[i + 3])
        if marker in _SOF:
            progressive = progressive or marker in _PROGRESSIVE_SOF
            coefficients = max(coefficients, _coefficient_bytes(data[i + 4 : end]))
        elif marker == 0xDA:
            scans += 1
            found = _END_OF_SCAN.search(data, end)
            end = found.start() if found else size
        i = end
    return JpegLayout(scans, progressive, coefficients)


def _coefficient_bytes(sof: bytes) -> int:
    """libjpeg's whole-image coefficient buffer: 64 coefficients of 2 bytes per block."""
    if len(sof) < 6:
        return 0
    height, width = sof[1] << 8 | sof[2], sof[3] << 8 | sof[4]
    count = min(sof[5], (len(sof) - 6) // 3)
    factors = [(sof[7 + 3 * c] >> 4, sof[7 + 3 * c] & 15) for c in range(count)]
    factors = [(h, v) for h, v in factors if h and v]
    if not factors:
        return 0
    h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
    mcu_cols, mcu_rows = -(-width // (8 * h_max)), -(-height // (8 * v_max))
    return sum(mcu_cols * h * mcu_rows * v * 128 for h, v in factors)


TOO_MANY_PIXELS_A = (
    "too many pixels for a {kind} file: {width}x{height} is {megapixels} MP, and Flexbot reads "
    "{kind} files up to {limit} MP. Resize it (or save it as JPEG) and try again."
)
TOO_MANY_PIXELS_AN = (
    "too many pixels for an {kind} file: {width}x{height} is {megapixels} MP, and Flexbot reads "
    "{kind} files up to {limit} MP. Resize it (or save it as JPEG) and try again."
)


def decode_refusal(
    im: Image.Image, data: bytes, full_size: tuple[int, int], budget: int
) -> Text | None:
    """Why decoding ``im`` would cost too much (a sentence for the member), or None.

    ``full_size`` is the size in the header; ``im.size`` may be smaller after ``draft()``.
    ``budget`` is the memory one decode may use, in bytes.
    """
    width, height = full_size
    kind = _kind(im)
    if kind == "JPEG":
        return _jpeg_refusal(im, data, width * height, budget)
    if kind == "TIFF":
        refusal = _tiff_refusal(im)
        if refusal:
            return refusal
    cost = bytes_per_pixel(im)
    if width * height * cost <= budget:
        return None
    limit = mp(budget // cost)
    # English's article depends on the name; other languages read both msgids the same way.
    template = TOO_MANY_PIXELS_AN if kind.startswith("A") else TOO_MANY_PIXELS_A
    return Text(
        template,
        {
            "kind": kind,
            "width": width,
            "height": height,
            "megapixels": mp(width * height),
            "limit": limit,
        },
    )


def _jpeg_refusal(im: Image.Image, data: bytes, pixels: int, budget: int) -> Text | None:
    layout = jpeg_layout(data)
    most = max(1, min(MAX_JPEG_SCANS, JPEG_SCAN_WORK // max(1, pixels)))
    save_again = Text(
        "Save it again as a standard (baseline, not progressive) JPEG or as PNG and attach that."
    )
    if layout.scans > most:
        counted: object = layout.scans
        if layout.scans > MAX_JPEG_SCANS:
            counted = Text("more than {count}", {"count": MAX_JPEG_SCANS})
        return Text(
            "the JPEG is stored in {scans} passes (scans); Flexbot reads at most {most} for an "
            "image of {megapixels} MP. {save_again}",
            {"scans": counted, "most": most, "megapixels": mp(pixels), "save_again": save_again},
        )
    decoded = im.width * im.height * _BYTES_PER_PIXEL["JPEG"][0]
    held = layout.coefficient_bytes if layout.buffers_coefficients else 0
    if decoded + held <= budget:
        return None
    return Text(
        "too many pixels for a progressive JPEG: {megapixels} MP would take {memory} MB to "
        "decode, over the {limit} MB limit. {save_again}",
        {
            "megapixels": mp(pixels),
            "memory": (decoded + held) // MB,
            "limit": budget // MB,
            "save_again": save_again,
        },
    )


def _tiff_refusal(im: Image.Image) -> Text | None:
    tags = getattr(im, "tag_v2", {})
    tile_w, tile_h = tags.get(322), tags.get(323)  # TileWidth, TileLength
    if tile_w is None and tile_h is None:
        return None
    # Tiles are multiples of 16 pixels, so the last row and column may overhang the image.
    if int(tile_w or 0) <= _round16(im.width) and int(tile_h or 0) <= _round16(im.height):
        return None
    return Text(
        "the TIFF file is damaged: its tiles ({tile_width}x{tile_height}) are larger than the "
        "image ({width}x{height}). Save or export it again as PNG or JPEG and attach that.",
        {"tile_width": tile_w, "tile_height": tile_h, "width": im.width, "height": im.height},
    )


def bytes_per_pixel(im: Image.Image) -> int:
    """Peak memory per pixel of decoding and converting ``im`` (a whole-image decoder)."""
    costs = _BYTES_PER_PIXEL.get(_kind(im))
    if costs is None:
        return _WORST_BYTES_PER_PIXEL
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return costs[1]
    if im.mode in _WIDE_MODES:
        return max(costs[0], _WIDE_BYTES_PER_PIXEL)
    return costs[0]


def worst_bytes_per_pixel() -> int:
    """The most any accepted format costs per pixel."""
    return _WORST_BYTES_PER_PIXEL


def _round16(n: int) -> int:
    return -(-n // 16) * 16


def _kind(im: Image.Image) -> str:
    return {"MPO": "JPEG", None: "image"}.get(im.format, im.format or "image")


def mp(pixels: int) -> str:
    """Millions of pixels, as people say it: 1600, 64, 24.5, 0.25."""
    value = pixels / 1_000_000
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2g}"
