"""Input images: probe, validate, normalise, downscale and re-encode (Pillow; no Discord).

Every attachment goes through :func:`normalize_image` before it costs anything:

1. byte cap (``len(data)``; :func:`bot.image_formats.read_capped` enforces it while streaming),
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

The formats taken and the words of a refusal are in :mod:`bot.image_formats`; steps 6 to 8 on
decoded pixels are in :mod:`bot.image_pixels`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

import pillow_heif
from PIL import AvifImagePlugin, ExifTags, Image, ImageOps, UnidentifiedImageError

from bot.decode_cost import decode_refusal, worst_bytes_per_pixel
from bot.decode_cost import mp as _mp
from bot.decode_process import Budget, DecodeProcesses, Raised, Stopped
from bot.errors import ImageRejected
from bot.i18n import Text
from bot.image_formats import ATTACH, FORMATS, damaged, not_an_image, sniff_image

# Re-exported: intake, the cogs and the CLI check uploads through this module.
from bot.image_formats import check_size as check_size
from bot.image_formats import is_supported_upload as is_supported_upload
from bot.image_pixels import encode, fit, to_rgb_or_rgba

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()
# Import every Pillow plugin now: a decode process forked while another thread imports one would
# wait forever for that import's lock.
Image.init()
# Our pixel cap replaces Pillow's guard; see the module docstring.
Image.MAX_IMAGE_PIXELS = None

_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# What Pillow raises for data it cannot decode. MemoryError is deliberately not here.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

_MB = 1024 * 1024

DECODE_MEMORY = 240_000_000
"""Bytes one decode may use, estimated from the header (see bot.decode_cost)."""
DECODE_CPU_SECONDS = 5.0
"""CPU one decode may use. The slowest accepted image (a 16 MP HEIC with alpha) takes about 3 s."""


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
        raise ImageRejected(
            filename, Text("the file is empty (0 bytes). {attach}", {"attach": Text(ATTACH)})
        )
    check_size(filename, len(data), limits.max_bytes)

    notes: list[str] = []
    with _open(data, filename) as im:
        source_format = _format_name(im)
        width, height = _measure(im, filename, limits)
        if _has_more_frames(im, filename):
            kind = "multi-page" if source_format == "TIFF" else "animated"
            what = "page" if source_format == "TIFF" else "frame"
            notes.append(f"{kind} {source_format}: used the first {what}")
        _decode(im, data, filename, source_format, (width, height), limits)
        width, height = _orient(im, filename, width, height)
        out = to_rgb_or_rgba(im)

    new_size = fit(width, height, limits.target_pixels)
    if new_size != out.size:
        out = out.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if new_size != (width, height):
        notes.append(f"downscaled from {width}x{height} to {new_size[0]}x{new_size[1]}")

    encoded, content_type = encode(out)
    return NormalizedImage(
        sha256=hashlib.sha256(encoded).hexdigest(),
        data=encoded,
        content_type=content_type,
        width=out.width,
        height=out.height,
        source_format=source_format,
        notes=tuple(notes),
    )


def _measure(im: Image.Image, filename: str, limits: ImageLimits) -> tuple[int, int]:
    """The size from the header, refused when empty or over the pixel cap (nothing decoded)."""
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageRejected(
            filename,
            Text(
                "the image has no pixels ({width}x{height}). It may be damaged.",
                {"width": width, "height": height},
            ),
        )
    if width * height > limits.max_pixels:
        raise ImageRejected(
            filename,
            Text(
                "too many pixels: {width}x{height} is {megapixels} MP, the limit is {limit} MP. "
                "Resize it and try again.",
                {
                    "width": width,
                    "height": height,
                    "megapixels": _mp(width * height),
                    "limit": _mp(limits.max_pixels),
                },
            ),
        )
    return width, height


def _decode(
    im: Image.Image,
    data: bytes,
    filename: str,
    source_format: str,
    size: tuple[int, int],
    limits: ImageLimits,
) -> None:
    """Decode the pixels of an image of the header's ``size``, once the cost fits the budget."""
    target = fit(*size, limits.target_pixels)
    if im.format in _JPEG_FORMATS and target != size:
        # Decode at 1/2, 1/4 or 1/8 scale, never below the target: the memory and time win.
        im.draft(None, target)
    refusal = decode_refusal(im, data, size, limits.decode_budget)
    if refusal is not None:
        raise ImageRejected(filename, refusal)
    try:
        im.load()
    except _DECODE_ERRORS as e:
        log.info("image %r failed to decode: %s", filename, e)
        raise ImageRejected(filename, damaged(source_format)) from e


def _orient(im: Image.Image, filename: str, width: int, height: int) -> tuple[int, int]:
    """Apply the EXIF orientation in place; the size as the member sees it."""
    try:
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
        ImageOps.exif_transpose(im, in_place=True)
    except _DECODE_ERRORS as e:  # unreadable EXIF: the pixels are fine, keep them as stored
        log.info("image %r has unusable EXIF: %s", filename, e)
        orientation = 1
    # The note speaks of what the member sees: dimensions after EXIF orientation.
    if orientation in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


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
        if isinstance(done.value, Text):
            raise ImageRejected(filename, done.value)
        return done.value

    def _stopped_reason(self, stopped: Stopped) -> Text:
        if stopped.why in ("cpu", "wall"):
            return Text(
                "it takes too long to decode (over {seconds} s). "
                "Resize it, or save it again as JPEG or PNG, and attach that.",
                {"seconds": f"{self.limits.decode_cpu_seconds:g}"},
            )
        return Text(
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


def _normalize_or_refuse(data: bytes, filename: str, limits: ImageLimits) -> NormalizedImage | Text:
    """normalize_image as run in a decode process: a refusal comes back as its reason."""
    # One decoder thread: the CPU limit is then also wall time, and thread stacks and arenas do
    # not eat the memory limit.
    pillow_heif.options.DECODE_THREADS = 1
    AvifImagePlugin.DEFAULT_MAX_THREADS = 1
    try:
        return normalize_image(data, filename, limits)
    except ImageRejected as e:
        return e.reason_text
    except MemoryError:
        return Text(
            "it needs more memory to decode than Flexbot allows for one image. "
            "Resize it, or save it again as JPEG, and attach that."
        )


def _open(data: bytes, filename: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as e:
        # Only when something re-enabled Pillow's guard; ours normally speaks first.
        raise ImageRejected(filename, Text("too many pixels. Resize it and try again.")) from e
    except UnidentifiedImageError as e:
        raise ImageRejected(filename, not_an_image(data)) from e
    except _DECODE_ERRORS as e:
        log.info("image %r failed to open: %s", filename, e)
        raise ImageRejected(filename, damaged(sniff_image(data) or "image")) from e


def _has_more_frames(im: Image.Image, filename: str) -> bool:
    # is_animated looks one frame ahead only; n_frames would walk (and for GIF decode) them all.
    try:
        animated = bool(getattr(im, "is_animated", False))
        if animated:
            im.seek(0)
    except _DECODE_ERRORS as e:
        raise ImageRejected(filename, damaged(_format_name(im))) from e
    return animated


def _format_name(im: Image.Image) -> str:
    return {"MPO": "JPEG", None: "image"}.get(im.format, im.format or "image")
