"""Which uploads Flexbot takes (formats, bytes) and the words for one it refuses (no decoding).

The accepted formats are named three ways that must agree: :data:`FORMATS` (what Pillow may open),
the upload extensions and MIME types (:func:`is_supported_upload`, the cheap check before any
download) and :data:`ACCEPTED` (what a member is told). A refused file is named by its magic bytes
(:func:`not_an_image`), so "a damaged PNG" and "a PDF" get different advice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.errors import ImageRejected
from bot.i18n import Text

ACCEPTED = "PNG, JPEG, WebP, GIF, BMP, TIFF, HEIC or AVIF"
# A fixed sentence (a msgid of its own), nested as ``{attach}`` in the reasons that end with it.
ATTACH = "Attach a PNG, JPEG, WebP, GIF, BMP, TIFF, HEIC or AVIF file."
assert ACCEPTED in ATTACH
# Pillow format ids we open. "JPEG" also opens MPO (camera JPEGs with extra frames).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

_MB = 1024 * 1024


# What intake takes, as uploads name it: every format in FORMATS, by extension and MIME type.
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
        raise ImageRejected(filename, too_large(size, max_bytes))


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
            raise ImageRejected(filename, too_large(None, max_bytes))
        parts.append(chunk)
    return b"".join(parts)


def _mb(n: int) -> str:
    value = n / _MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def too_large(size: int | None, max_bytes: int) -> Text:
    """Why a file over the byte cap is refused; ``size`` None when the download was cut short."""
    limit = _mb(max_bytes)
    if size is None:  # streaming: we stopped reading, so the real size is unknown
        return Text(
            "the file is larger than {limit} MB, the limit. Attach a smaller image.",
            {"limit": limit},
        )
    return Text(
        "the file is {size} MB, larger than the {limit} MB limit. Attach a smaller image.",
        {"size": _mb(size), "limit": limit},
    )


def damaged(kind: str) -> Text:
    """Why a file of a format we take (``PNG``; ``image`` when unknown), but cannot read, is
    refused."""
    if kind == "image":
        return Text(
            "the image file is truncated or damaged, so it cannot be read. "
            "Save or export it again and attach the new file."
        )
    return Text(
        "the {kind} file is truncated or damaged, so it cannot be read. "
        "Save or export it again and attach the new file.",
        {"kind": kind},
    )


def not_an_image(data: bytes) -> Text:
    """Why a file Pillow cannot identify is refused, naming what it looks like."""
    image_kind = sniff_image(data)
    if image_kind is not None:
        return damaged(image_kind)
    other = _sniff_other(data)
    if other is None:
        return Text("not an image Flexbot can read. {attach}", {"attach": Text(ATTACH)})
    kind, advice = other
    return Text(
        "not an image (looks like {kind}). {advice}", {"kind": Text(kind), "advice": Text(advice)}
    )


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


def sniff_image(data: bytes) -> str | None:
    """The accepted format ``data`` starts like, by its magic bytes; None for none of them."""
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
        return "an archive", ATTACH
    text = _as_text(head)
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if "<svg" in lowered or (lowered.startswith("<?xml") and "svg" in lowered):
            return "an SVG drawing", "Export it as PNG and attach that."
        if lowered.startswith(("<!doctype html", "<html")):
            return "a web page", "Save the image itself, not the page. " + ATTACH
        return "text", ATTACH
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
