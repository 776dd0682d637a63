"""Pixels after decoding: size to fit, colour mode and profile to sRGB, re-encode (Pillow).

Each step keeps what a member would see (aspect ratio, transparency that is really used, the
colours a phone's Display P3 profile means) and drops what they would not want sent on (EXIF,
GPS, comments), so the output is deterministic and leaks nothing.
"""

from __future__ import annotations

import io
import logging
import math

from PIL import Image, ImageCms

log = logging.getLogger(__name__)

JPEG_QUALITY = 92
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def fit(width: int, height: int, target_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``target_pixels`` pixels."""
    if width * height <= target_pixels:
        return width, height
    scale = math.sqrt(target_pixels / (width * height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if w * h > target_pixels:
        w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return w, h


def to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB, or to RGBA when transparency is actually used."""
    source = im
    if im.mode in _HIGH_DEPTH_MODES:
        im = _high_depth_to_l(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        out = im.convert("RGBA")
        if _band_range(out.getchannel("A"))[0] == 255:  # an alpha channel nobody drew on
            out = out.convert("RGB")
    else:
        out = im if im.mode == "RGB" else im.convert("RGB")
    icc = source.info.get("icc_profile")
    if icc and isinstance(icc, bytes):
        out = _to_srgb(out, icc, source)
    return out


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8-bit, scaling rather than clipping."""
    if im.mode != "F":
        im = im.convert("I")
    high = _band_range(im)[1]
    if im.mode == "F" and high <= 1.0:
        factor = 255.0
    elif high > 255:
        factor = 1 / 256
    else:
        return im.convert("L")
    return im.point(lambda v: v * factor).convert("L")


def _band_range(band: Image.Image) -> tuple[float, float]:
    low, high = band.getextrema()
    assert isinstance(low, int | float)
    assert isinstance(high, int | float)
    return low, high


def _to_srgb(out: Image.Image, icc: bytes, source: Image.Image) -> Image.Image:
    """Apply an embedded colour profile (Display P3 from phones, CMYK press profiles)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.mode == "CMYK":
            # Convert from the CMYK pixels the profile describes, not from Pillow's naive RGB.
            return ImageCms.profileToProfile(source, profile, _SRGB, outputMode="RGB") or out
        if profile.profile.xcolor_space.strip() != "RGB" or out.mode not in ("RGB", "RGBA"):
            return out
        return ImageCms.profileToProfile(out, profile, _SRGB, outputMode=out.mode) or out
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        log.info("ignoring an unusable colour profile: %s", e)
        return out


def encode(im: Image.Image) -> tuple[bytes, str]:
    """PNG when the image has alpha, else JPEG; no metadata is written. (data, MIME type)."""
    im.info = {}  # encoders copy comments, profiles and text chunks from here
    buf = io.BytesIO()
    if im.mode == "RGBA":
        im.save(buf, format="PNG", compress_level=6)
        return buf.getvalue(), "image/png"
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return buf.getvalue(), "image/jpeg"
