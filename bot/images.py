"""Input images: probe, validate, normalise, downscale and re-encode (Pillow; no Discord).

Every attachment goes through :func:`normalize_image` before it costs anything:

1. byte cap (``len(data)``; :func:`read_capped` enforces it while streaming),
2. open lazily with Pillow, restricted to the formats we take, and read the size from the header,
3. pixel cap on that size, *before* any pixel is decoded (decompression bombs),
4. decode cost from the header (:mod:`bot.decode_cost`): each format gets the pixel cap that fits
   one memory budget, JPEG scans are counted, TIFF tiles must fit the image,
5. decode fully (a truncated file is an error, never padded), using JPEG draft mode so a 24 MP
   photo is decoded at 1/2, 1/4 or 1/8 scale when that still covers the target size,
6. first frame of animations, EXIF orientation, embedded colour profile to sRGB, mode to RGB/RGBA,
7. downscale to ``max_input_megapixels`` keeping the aspect ratio,
8. re-encode: PNG when the image really uses transparency, else JPEG. Metadata (EXIF, GPS,
   comments) is not copied, so the output is deterministic and leaks nothing.

Two layers keep a crafted upload from turning the decoders against the bot (issue 11). The header
checks (4) refuse every known bomb in milliseconds, with a message saying what to do. They are
estimates of C code we do not own, so :class:`ImageProcessor` also runs each decode in its own
short-lived process (:mod:`bot.decode_process`) with a CPU limit (``decode_cpu_seconds``) and a
memory limit (twice the decode budget): whatever the estimates miss is killed and refused, a
stuck decode holds its slot for seconds, not hours, and closing the processor kills running decodes
instead of waiting for them. A process rather than only tighter checks, because only a process can
be stopped in the middle of a C call; a fresh process per decode rather than a long-lived pool,
because CPU limits count per process and one member's image then never shares a heap with the
next. The cost is a fork of the bot (a few milliseconds; see bot.decode_process for why fork).

Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is turned off when this module
is imported: it would fire first, at a fixed 179 MP, with a message meant for developers. Our cap
comes from settings, names the file and the numbers, and is checked from the header of every image
before :meth:`PIL.Image.Image.load`; nothing here decodes an image it has not measured.

:class:`ImageProcessor` waits for the decode processes from a small thread pool, so the event loop
keeps ticking (see ``bench/images.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import struct
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

import pillow_heif
from PIL import AvifImagePlugin, ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.decode_cost import decode_refusal, worst_bytes_per_pixel
from bot.decode_cost import mp as _mp
from bot.decode_process import Budget, DecodeProcesses, Raised, Stopped
from bot.errors import ImageRejected

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()
# Import every Pillow plugin now: a decode process forked while another thread imports one would
# wait forever for that import's lock.
Image.init()
# Our pixel cap replaces Pillow's guard; see the module docstring.
Image.MAX_IMAGE_PIXELS = None

ACCEPTED = "PNG, JPEG, WebP, GIF, BMP, TIFF, HEIC or AVIF"
_ATTACH = f"Attach a {ACCEPTED} file."

# Pillow format ids we open. "JPEG" also opens MPO (camera JPEGs with extra frames).
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# What Pillow raises for data it cannot decode. MemoryError is deliberately not here.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

JPEG_QUALITY = 92
_MB = 1024 * 1024

DECODE_MEMORY = 240_000_000
"""Bytes one decode may use, estimated from the header (see bot.decode_cost)."""
DECODE_CPU_SECONDS = 5.0
"""CPU one decode may use. The slowest accepted image (a 16 MP HEIC with alpha) takes about 3 s."""
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Caps applied to every input image."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_input_megapixels: float = 1.0
    megapixel: int = 1024 * 1024
    decode_memory: int = DECODE_MEMORY
    decode_cpu_seconds: float = DECODE_CPU_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        """The limits the settings ask for; the decode budgets are this module's own."""
        return cls(
            max_bytes=settings.max_input_bytes,
            max_pixels=settings.max_input_pixels,
            max_input_megapixels=settings.max_input_megapixels,
            megapixel=settings.megapixel_pixels,
        )

    @property
    def target_pixels(self) -> int:
        """Largest pixel count an input is sent to fal with."""
        return max(1, math.floor(self.max_input_megapixels * self.megapixel))

    @property
    def decode_budget(self) -> int:
        """Bytes one decode may use: ``decode_memory``, or more when the target size needs it, so
        an image no larger than what is kept is never refused for its cost."""
        return max(self.decode_memory, self.target_pixels * worst_bytes_per_pixel())


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    """An input image ready to store and send: re-encoded, oriented, within the size limit."""

    sha256: str
    data: bytes
    content_type: str
    width: int
    height: int
    source_format: str
    notes: tuple[str, ...]


def normalize_image(data: bytes, filename: str, limits: ImageLimits) -> NormalizedImage:
    """Validate and re-encode one uploaded image, or raise :class:`ImageRejected` saying why."""
    if not data:
        raise ImageRejected(filename, f"the file is empty (0 bytes). {_ATTACH}")
    check_size(filename, len(data), limits.max_bytes)

    notes: list[str] = []
    with _open(data, filename) as im:
        source_format = _format_name(im)
        width, height = im.size
        if width < 1 or height < 1:
            raise ImageRejected(
                filename, f"the image has no pixels ({width}x{height}). It may be damaged."
            )
        if width * height > limits.max_pixels:
            raise ImageRejected(
                filename,
                f"too many pixels: {width}x{height} is {_mp(width * height)} MP, the limit is "
                f"{_mp(limits.max_pixels)} MP. Resize it and try again.",
            )

        if _has_more_frames(im, filename):
            kind = "multi-page" if source_format == "TIFF" else "animated"
            what = "page" if source_format == "TIFF" else "frame"
            notes.append(f"{kind} {source_format}: used the first {what}")

        target = _fit(width, height, limits.target_pixels)
        if im.format in _JPEG_FORMATS and target != (width, height):
            # Decode at 1/2, 1/4 or 1/8 scale, never below the target: the memory and time win.
            im.draft(None, target)
        refusal = decode_refusal(im, data, (width, height), limits.decode_budget)
        if refusal is not None:
            raise ImageRejected(filename, refusal)
        try:
            im.load()
        except _DECODE_ERRORS as e:
            log.info("image %r failed to decode: %s", filename, e)
            raise ImageRejected(filename, _damaged(source_format)) from e

        try:
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            ImageOps.exif_transpose(im, in_place=True)
        except _DECODE_ERRORS as e:  # unreadable EXIF: the pixels are fine, keep them as stored
            log.info("image %r has unusable EXIF: %s", filename, e)
            orientation = 1
        # The note speaks of what the member sees: dimensions after EXIF orientation.
        if orientation in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        out = _to_rgb_or_rgba(im)

    new_size = _fit(width, height, limits.target_pixels)
    if new_size != out.size:
        out = out.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if new_size != (width, height):
        notes.append(f"downscaled from {width}x{height} to {new_size[0]}x{new_size[1]}")

    encoded, content_type = _encode(out)
    return NormalizedImage(
        sha256=hashlib.sha256(encoded).hexdigest(),
        data=encoded,
        content_type=content_type,
        width=out.width,
        height=out.height,
        source_format=source_format,
        notes=tuple(notes),
    )


async def read_capped(chunks: AsyncIterator[bytes], max_bytes: int, filename: str) -> bytes:
    """Collect a download, refusing it as soon as it passes ``max_bytes``."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            raise ImageRejected(filename, _too_large(None, max_bytes))
        parts.append(chunk)
    return b"".join(parts)


# What intake takes, as uploads name it: every format in _FORMATS, by extension and MIME type.
_UPLOAD_EXTENSIONS = frozenset(
    {
        "png", "apng",
        "jpg", "jpeg", "jpe", "jfif", "pjpeg", "pjp", "mpo",
        "webp",
        "gif",
        "bmp",
        "tif", "tiff",
        "heic", "heif", "hif",
        "avif",
    }
)  # fmt: skip
_UPLOAD_TYPES = frozenset(
    {
        "image/png", "image/apng",
        "image/jpeg", "image/jpg", "image/pjpeg", "image/mpo",
        "image/webp",
        "image/gif",
        "image/bmp", "image/x-bmp", "image/x-ms-bmp",
        "image/tiff",
        "image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence",
        "image/avif", "image/avif-sequence",
    }
)  # fmt: skip


def is_supported_upload(filename: str, content_type: str | None) -> bool:
    """Whether an attachment looks like an image intake takes, by its MIME type or extension.

    Either is enough: Discord sends no type, or ``application/octet-stream``, for some HEIC files,
    and any name for a pasted image. The content decides in the end (normalize_image).
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in _UPLOAD_TYPES:
        return True
    _stem, dot, extension = filename.rpartition(".")
    return bool(dot) and extension.lower() in _UPLOAD_EXTENSIONS


def check_size(filename: str, size: int, max_bytes: int) -> None:
    """Refuse a file by its (declared or actual) size, before anything reads or decodes it."""
    if size > max_bytes:
        raise ImageRejected(filename, _too_large(size, max_bytes))


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from an image's header, without decoding it.

    Raises ``ValueError`` when the data is not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except _DECODE_ERRORS as e:
        raise ValueError(f"not a readable image: {e}") from e


class ImageProcessor:
    """Runs normalize_image in limited, killable processes, off the event loop.

    At most ``workers`` images are decoded at once, each in its own process under a CPU and memory
    limit (see the module docstring), which bounds memory and time. Use it as
    ``async with ImageProcessor(limits) as images:``, ``with ImageProcessor(limits) as images:``,
    or call :meth:`close`; closing kills running decodes rather than waiting for them.
    """

    def __init__(self, limits: ImageLimits, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.limits = limits
        self._budget = Budget(
            cpu_seconds=limits.decode_cpu_seconds,
            # Twice the header estimate: the limit catches what the estimate missed, never a
            # decode the estimate allowed.
            memory_bytes=2 * limits.decode_budget + 64 * _MB,
        )
        self._processes = DecodeProcesses()
        # Threads only wait for the processes; one per decode slot.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flexbot-images")
        self._slots = asyncio.Semaphore(workers)
        self._usage_lock = threading.Lock()
        self.peak_decode_rss_kib = 0
        """Largest peak RSS of one decode process so far (for the benchmark and metrics)."""
        self.peak_decode_cpu_seconds = 0.0
        """Most CPU one decode process used so far."""

    async def normalize(self, data: bytes, filename: str) -> NormalizedImage:
        """Normalise one image in a decode process; raises :class:`ImageRejected` like
        normalize_image, and when the decode overruns its CPU or memory limit."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._isolated, data, filename)

    def close(self) -> None:
        """Drop queued work, kill running decodes and wait for their threads (milliseconds)."""
        self._processes.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _isolated(self, data: bytes, filename: str) -> NormalizedImage:
        try:
            done = self._processes.run(
                _normalize_or_refuse, (data, filename, self.limits), self._budget
            )
        except Stopped as e:
            if e.why == "closed":
                raise RuntimeError("the image processor is closed") from e
            log.warning("image %r: decode process stopped (%s): %s", filename, e.why, e.detail)
            raise ImageRejected(filename, self._stopped_reason(e)) from e
        except Raised as e:
            raise RuntimeError(
                f"normalising {filename!r} failed in its decode process:\n{e}"
            ) from None
        with self._usage_lock:
            self.peak_decode_rss_kib = max(self.peak_decode_rss_kib, done.peak_rss_kib)
            self.peak_decode_cpu_seconds = max(self.peak_decode_cpu_seconds, done.cpu_seconds)
        log.debug(
            "image %r decoded in %.2f s CPU, peak %d MB",
            filename,
            done.cpu_seconds,
            done.peak_rss_kib // 1024,
        )
        if isinstance(done.value, str):
            raise ImageRejected(filename, done.value)
        return done.value

    def _stopped_reason(self, stopped: Stopped) -> str:
        if stopped.why in ("cpu", "wall"):
            return (
                f"it takes too long to decode (over {self.limits.decode_cpu_seconds:g} s). "
                "Resize it, or save it again as JPEG or PNG, and attach that."
            )
        return (
            "it could not be decoded within Flexbot's limits; it may be damaged. "
            "Save or export it again as JPEG or PNG and attach that."
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)


def _normalize_or_refuse(data: bytes, filename: str, limits: ImageLimits) -> NormalizedImage | str:
    """normalize_image as run in a decode process: a refusal comes back as its reason."""
    # One decoder thread: the CPU limit is then also wall time, and thread stacks and arenas do
    # not eat the memory limit.
    pillow_heif.options.DECODE_THREADS = 1
    AvifImagePlugin.DEFAULT_MAX_THREADS = 1
    try:
        return normalize_image(data, filename, limits)
    except ImageRejected as e:
        return e.reason
    except MemoryError:
        return (
            "it needs more memory to decode than Flexbot allows for one image. "
            "Resize it, or save it again as JPEG, and attach that."
        )


def _open(data: bytes, filename: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError as e:
        # Only when something re-enabled Pillow's guard; ours normally speaks first.
        raise ImageRejected(filename, "too many pixels. Resize it and try again.") from e
    except UnidentifiedImageError as e:
        raise ImageRejected(filename, _not_an_image(data)) from e
    except _DECODE_ERRORS as e:
        log.info("image %r failed to open: %s", filename, e)
        raise ImageRejected(filename, _damaged(_sniff_image(data) or "image")) from e


def _has_more_frames(im: Image.Image, filename: str) -> bool:
    # is_animated looks one frame ahead only; n_frames would walk (and for GIF decode) them all.
    try:
        animated = bool(getattr(im, "is_animated", False))
        if animated:
            im.seek(0)
    except _DECODE_ERRORS as e:
        raise ImageRejected(filename, _damaged(_format_name(im))) from e
    return animated


def _format_name(im: Image.Image) -> str:
    return {"MPO": "JPEG", None: "image"}.get(im.format, im.format or "image")


def _fit(width: int, height: int, target_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``target_pixels`` pixels."""
    if width * height <= target_pixels:
        return width, height
    scale = math.sqrt(target_pixels / (width * height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if w * h > target_pixels:
        w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return w, h


def _to_rgb_or_rgba(im: Image.Image) -> Image.Image:
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


def _encode(im: Image.Image) -> tuple[bytes, str]:
    im.info = {}  # encoders copy comments, profiles and text chunks from here
    buf = io.BytesIO()
    if im.mode == "RGBA":
        im.save(buf, format="PNG", compress_level=6)
        return buf.getvalue(), "image/png"
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return buf.getvalue(), "image/jpeg"


def _mb(n: int) -> str:
    value = n / _MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _too_large(size: int | None, max_bytes: int) -> str:
    limit = _mb(max_bytes)
    if size is None:  # streaming: we stopped reading, so the real size is unknown
        return f"the file is larger than {limit} MB, the limit. Attach a smaller image."
    return f"the file is {_mb(size)} MB, larger than the {limit} MB limit. Attach a smaller image."


def _damaged(kind: str) -> str:
    return (
        f"the {kind} file is truncated or damaged, so it cannot be read. "
        "Save or export it again and attach the new file."
    )


def _not_an_image(data: bytes) -> str:
    image_kind = _sniff_image(data)
    if image_kind is not None:
        return _damaged(image_kind)
    other = _sniff_other(data)
    if other is None:
        return f"not an image Flexbot can read. {_ATTACH}"
    kind, advice = other
    return f"not an image (looks like {kind}). {advice}"


# Magic bytes of the formats we take, to tell "damaged PNG" from "not an image at all".
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def _sniff_image(data: bytes) -> str | None:
    for magic, name in _IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF"
        if brand in _AVIF_BRANDS:
            return "AVIF"
    return None


def _sniff_other(data: bytes) -> tuple[str, str] | None:
    """Name what a non-image upload looks like, and what to do instead."""
    still = "Attach a still image instead, e.g. a screenshot of the frame you want."
    export = "Export it as PNG or JPEG and attach that."
    head = data[:512]
    if head.startswith(b"%PDF"):
        return "a PDF", "Export the page as PNG or JPEG and attach that."
    if head[4:8] == b"ftyp":
        return ("a MOV video" if head[8:12] == b"qt  " else "an MP4 video"), still
    if head[4:8] in (b"moov", b"mdat", b"wide"):
        return "a MOV video", still
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a WebM video", still
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "an AVI video", still
    if head.startswith(b"8BPS"):
        return "a Photoshop file", export
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
        return "a JPEG XL image, which is not supported", export
    if head.startswith((b"PK\x03\x04", b"Rar!", b"\x1f\x8b", b"7z\xbc\xaf")):
        return "an archive", _ATTACH
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if "<svg" in lowered or (lowered.startswith("<?xml") and "svg" in lowered):
            return "an SVG drawing", "Export it as PNG and attach that."
        if lowered.startswith(("<!doctype html", "<html")):
            return "a web page", f"Save the image itself, not the page. {_ATTACH}"
        return "text", _ATTACH
    return None


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        # A multi-byte character may be cut at the end of the sample.
        return head.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3:
            return head[: e.start].decode("utf-8")
        return None
