"""Input images: what members may attach, what they are told, and what reaches fal."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from bot.errors import ImageRejected
from bot.image_formats import read_capped
from bot.images import (
    ImageLimits,
    ImageProcessor,
    NormalizedImage,
    image_size,
    is_supported_upload,
    normalize_image,
)
from tests.integration.test_image_bombs import progressive_jpeg, tiff_with_huge_tiles, webp_canvas

LIMITS = ImageLimits()
ACCEPTED = "Attach a PNG, JPEG, WebP, GIF, BMP, TIFF, HEIC or AVIF file."


def photo(width: int = 320, height: int = 240, mode: str = "RGB") -> Image.Image:
    """A picture with structure (gradients and noise), so encoders behave as with photos."""
    ramp = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    rgb = Image.merge("RGB", (ramp, noise, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return rgb.convert(mode)


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def decode(result: NormalizedImage) -> Image.Image:
    im = Image.open(io.BytesIO(result.data))
    im.load()
    return im


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


@pytest.fixture(scope="module")
def png_bomb() -> bytes:
    """A valid 40000x40000 1-bit PNG: ~200 KB on disk, 1.6 GB if Pillow ever decoded it."""
    row = b"\x00" * (1 + 40000 // 8)
    packer = zlib.compressobj(9)
    rows_per_step = 1000
    idat = b"".join(packer.compress(row * rows_per_step) for _ in range(40000 // rows_per_step))
    idat += packer.flush()
    return png_header(40000, 40000) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def refusal(data: bytes, filename: str, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(ImageRejected) as caught:
        normalize_image(data, filename, limits)
    assert caught.value.filename == filename
    message = str(caught.value)
    assert message.startswith(f"{filename}: ")
    return message


# --- what is accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "source_format"),
    [
        ("PNG", "PNG"),
        ("JPEG", "JPEG"),
        ("WEBP", "WEBP"),
        ("GIF", "GIF"),
        ("BMP", "BMP"),
        ("TIFF", "TIFF"),
        ("HEIF", "HEIF"),
        ("AVIF", "AVIF"),
    ],
)
def test_every_accepted_format_becomes_a_jpeg_of_the_same_size(fmt: str, source_format: str):
    result = normalize_image(encode(photo(), fmt), f"picture.{fmt.lower()}", LIMITS)

    assert result.source_format == source_format
    assert result.content_type == "image/jpeg"
    assert (result.width, result.height) == (320, 240)
    assert decode(result).format == "JPEG"
    assert decode(result).size == (320, 240)
    assert result.notes == ()


def test_file_extension_does_not_matter_only_the_content():
    result = normalize_image(encode(photo(), "PNG"), "actually-a-png.jpg", LIMITS)

    assert result.source_format == "PNG"


def test_sha256_is_the_hash_of_the_returned_bytes():
    result = normalize_image(encode(photo(), "PNG"), "a.png", LIMITS)

    assert result.sha256 == hashlib.sha256(result.data).hexdigest()


def test_same_input_gives_the_same_bytes_and_hash():
    data = encode(photo(1500, 1000), "JPEG")

    first = normalize_image(data, "a.jpg", LIMITS)
    second = normalize_image(data, "b.jpg", LIMITS)

    assert first.sha256 == second.sha256
    assert first.data == second.data


def test_metadata_such_as_gps_is_not_passed_on():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N"}
    data = encode(photo(), "JPEG", exif=exif, comment=b"secret")

    result = normalize_image(data, "a.jpg", LIMITS)

    assert len(decode(result).getexif()) == 0
    assert b"PhoneCo" not in result.data
    assert b"secret" not in result.data


# --- orientation, transparency, colour modes --------------------------------------------------


def test_jpeg_with_exif_orientation_6_comes_out_upright_with_swapped_dimensions():
    im = photo(300, 200)
    im.paste((255, 0, 0), (0, 0, 30, 30))  # red mark in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"

    result = normalize_image(encode(im, "JPEG", exif=exif, quality=95), "phone.jpg", LIMITS)

    assert (result.width, result.height) == (200, 300)
    red, green, _ = decode(result).getpixel((200 - 10, 10))  # now in the top-right corner
    assert red > 200
    assert green < 60


def test_orientation_is_applied_before_downscaling_and_the_note_uses_upright_sizes():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    data = encode(photo(2000, 1000), "JPEG", exif=exif)

    result = normalize_image(data, "phone.jpg", LIMITS)

    assert result.height > result.width
    assert result.notes == (f"downscaled from 1000x2000 to {result.width}x{result.height}",)


def test_transparency_is_kept_and_sent_as_png():
    im = photo(mode="RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))

    result = normalize_image(encode(im, "PNG"), "sticker.png", LIMITS)

    assert result.content_type == "image/png"
    out = decode(result)
    assert out.mode == "RGBA"
    assert out.getpixel((5, 0))[3] == 0
    assert out.getpixel((5, 239))[3] > 250


def test_alpha_channel_that_is_fully_opaque_is_sent_as_jpeg():
    result = normalize_image(encode(photo(mode="RGBA"), "PNG"), "screenshot.png", LIMITS)

    assert result.content_type == "image/jpeg"


def test_palette_image_with_a_transparent_colour_keeps_its_transparency():
    im = Image.new("P", (64, 64), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 32, 64))
    data = encode(im, "PNG", transparency=0)

    result = normalize_image(data, "icon.png", LIMITS)

    out = decode(result)
    assert (result.content_type, out.mode) == ("image/png", "RGBA")
    assert out.getpixel((0, 0))[3] == 0
    assert out.getpixel((63, 0)) == (255, 0, 0, 255)


def test_palette_image_without_transparency_becomes_rgb():
    im = photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)

    result = normalize_image(encode(im, "PNG"), "poster.png", LIMITS)

    assert result.content_type == "image/jpeg"
    assert decode(result).mode == "RGB"


def test_cmyk_jpeg_keeps_its_colours():
    im = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # pure red ink

    result = normalize_image(encode(im, "JPEG", quality=95), "print.jpg", LIMITS)

    red, green, blue = decode(result).getpixel((32, 32))
    assert red > 230
    assert green < 30
    assert blue < 30


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    row = struct.pack("<32H", *[32768] * 32) + struct.pack("<32H", *[65535] * 32)
    im = Image.frombytes("I;16", (64, 64), row * 64)  # left half mid grey, right half white

    result = normalize_image(encode(im, "PNG"), "scan.png", LIMITS)

    out = decode(result).convert("L")
    assert 120 <= out.getpixel((5, 5)) <= 136
    assert out.getpixel((60, 5)) >= 250


@pytest.mark.parametrize("mode", ["1", "L", "LA", "I", "RGBX"])
def test_other_pixel_modes_are_converted(mode: str):
    fmt = "TIFF" if mode in ("I", "RGBX") else "PNG"

    result = normalize_image(encode(photo(mode=mode), fmt), f"odd.{fmt.lower()}", LIMITS)

    assert decode(result).mode in ("RGB", "RGBA")


# --- animations --------------------------------------------------------------------------------


def test_animated_gif_uses_the_first_frame_and_says_so():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue", "green")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)

    result = normalize_image(data, "party.gif", LIMITS)

    assert result.notes == ("animated GIF: used the first frame",)
    red, green, blue = decode(result).getpixel((20, 15))
    assert red > 230
    assert max(green, blue) < 30


def test_still_gif_has_no_note():
    result = normalize_image(encode(photo(), "GIF"), "still.gif", LIMITS)

    assert result.notes == ()


def test_animated_webp_uses_the_first_frame_and_says_so():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("blue", "red")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)

    result = normalize_image(data, "loop.webp", LIMITS)

    assert result.notes == ("animated WEBP: used the first frame",)
    assert decode(result).getpixel((20, 15))[2] > 230


# --- downscaling --------------------------------------------------------------------------------


def test_large_photo_is_downscaled_to_one_megapixel_keeping_the_aspect_ratio():
    data = encode(photo(4000, 3000), "JPEG")

    result = normalize_image(data, "camera.jpg", LIMITS)

    assert (result.width, result.height) == (1182, 887)
    assert result.width * result.height <= 1024 * 1024
    assert result.notes == ("downscaled from 4000x3000 to 1182x887",)
    assert decode(result).size == (1182, 887)


def test_downscaled_png_keeps_transparency():
    im = photo(1600, 800, mode="RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))

    result = normalize_image(encode(im, "PNG"), "big-sticker.png", LIMITS)

    assert result.content_type == "image/png"
    assert result.width * result.height <= 1024 * 1024
    assert result.width == 2 * result.height


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    megapixels=st.floats(0.05, 2.0),
)
def test_downscale_meets_the_bound_and_keeps_the_aspect_ratio(
    width: int, height: int, megapixels: float
):
    # A tiny "megapixel" unit keeps the images small while exercising the same arithmetic.
    limits = ImageLimits(max_input_megapixels=megapixels, megapixel=10_000)
    bound = max(1, int(megapixels * 10_000))

    result = normalize_image(encode(Image.new("RGB", (width, height)), "PNG"), "x.png", limits)

    if width * height <= bound:
        assert (result.width, result.height) == (width, height)
        assert result.notes == ()
    else:
        assert result.width * result.height <= bound
        assert result.width <= width
        assert result.height <= height
        # Within one pixel of the exact ratio on each side.
        assert abs(result.width * height - result.height * width) <= width + height


# --- refusals -----------------------------------------------------------------------------------


def test_text_file_named_like_a_png_is_refused_as_text():
    message = refusal(b"meow meow, this is not a picture\n", "cat.png")

    assert message == f"cat.png: not an image (looks like text). {ACCEPTED}"


def test_svg_is_refused_and_told_to_export_png():
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>'

    message = refusal(svg, "logo.svg")

    assert "looks like an SVG drawing" in message
    assert "PNG" in message


def test_pdf_is_refused_as_a_pdf():
    message = refusal(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "flyer.pdf")

    assert "not an image (looks like a PDF)" in message


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "an MP4 video"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "a MOV video"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "a WebM video"),
    ],
)
def test_video_is_refused_and_named(head: bytes, kind: str):
    message = refusal(head + bytes(200), "clip.png")

    assert f"looks like {kind}" in message
    assert "still image" in message


def test_truncated_jpeg_is_refused_with_file_name():
    data = encode(photo(800, 600), "JPEG")

    message = refusal(data[: len(data) // 2], "holiday.jpg")

    assert "truncated or damaged" in message
    assert "JPEG" in message


def test_png_cut_off_after_its_header_is_refused_as_damaged():
    data = encode(photo(), "PNG")

    message = refusal(data[:40], "cut.png")

    assert "truncated or damaged" in message


def test_empty_file_is_refused():
    message = refusal(b"", "empty.png")

    assert "empty (0 bytes)" in message


def test_zero_width_image_is_refused():
    data = png_header(0, 10) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")

    refusal(data, "flat.png")


def test_file_over_the_byte_cap_is_refused_with_the_limit():
    data = encode(photo(), "PNG")
    limits = ImageLimits(max_bytes=1024 * 1024)

    message = refusal(data + bytes(1024 * 1024), "huge.png", limits)

    assert "larger than the 1 MB limit" in message


def test_png_bomb_is_refused_from_its_header(png_bomb: bytes):
    message = refusal(png_bomb, "bomb.png")

    assert message == (
        "bomb.png: too many pixels: 40000x40000 is 1600 MP, the limit is 64 MP. "
        "Resize it and try again."
    )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_png_bomb_is_never_decoded(png_bomb: bytes, tmp_path: Path):
    # Peak RSS is per process, so measure in a fresh one, before and after the attempt. VmHWM
    # rather than ru_maxrss, which Linux carries over from the (large) pytest parent.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb)
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from bot.errors import ImageRejected
        from bot.images import ImageLimits, normalize_image

        def peak_kib():
            status = Path("/proc/self/status").read_text()
            return int(status.split("VmHWM:")[1].split()[0])

        data = Path(sys.argv[1]).read_bytes()
        before = peak_kib()
        try:
            normalize_image(data, "bomb.png", ImageLimits())
            refused = False
        except ImageRejected:
            refused = True
        after = peak_kib()
        print(json.dumps({"refused": refused, "growth_kib": after - before}))
        """
    )

    run = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, check=True, timeout=60
    )

    outcome = json.loads(run.stdout)
    assert outcome["refused"]
    assert outcome["growth_kib"] < 50 * 1024  # the decoded bomb would be 1.6 GB


def test_pixel_cap_applies_to_images_pillow_would_accept():
    limits = ImageLimits(max_pixels=10_000)

    message = refusal(encode(photo(200, 100), "PNG"), "wide.png", limits)

    assert "too many pixels: 200x100 is 0.02 MP, the limit is 0.01 MP" in message


# --- streaming ----------------------------------------------------------------------------------


class Chunks:
    """An upload arriving in pieces, counting how many were pulled and whether it was closed."""

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self.pulled = 0
        self.closed = False

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            for _ in range(self.count):
                self.pulled += 1
                yield b"x" * self.size
        finally:
            self.closed = True


async def test_read_capped_returns_everything_under_the_cap():
    chunks = Chunks(count=4, size=100)

    data = await read_capped(chunks.stream(), max_bytes=400, filename="a.png")

    assert data == b"x" * 400


async def test_read_capped_stops_reading_as_soon_as_the_cap_is_passed():
    chunks = Chunks(count=1000, size=1024 * 1024)

    with pytest.raises(ImageRejected) as caught:
        await read_capped(chunks.stream(), max_bytes=3 * 1024 * 1024, filename="big.png")

    assert chunks.pulled == 4
    assert chunks.closed
    assert str(caught.value).startswith("big.png: ")
    assert "larger than 3 MB" in str(caught.value)


# --- sizes of outputs ---------------------------------------------------------------------------


def test_image_size_reads_the_header_without_decoding(png_bomb: bytes):
    assert image_size(encode(photo(300, 200), "WEBP")) == (300, 200)
    assert image_size(png_bomb) == (40000, 40000)


def test_image_size_of_something_else_is_a_value_error():
    with pytest.raises(ValueError, match="not a readable image"):
        image_size(b"<html></html>")


# --- the pool -----------------------------------------------------------------------------------


async def test_processor_gives_the_same_results_as_normalize_image():
    uploads = [(encode(photo(900 + 100 * i, 700), "JPEG"), f"{i}.jpg") for i in range(6)]

    async with ImageProcessor(LIMITS, workers=2) as images:
        results = await asyncio.gather(*(images.normalize(d, n) for d, n in uploads))

    assert results == [normalize_image(d, n, LIMITS) for d, n in uploads]


async def test_processor_keeps_the_event_loop_responsive():
    uploads = [encode(photo(4000, 3000), "JPEG")] * 6
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    with ImageProcessor(LIMITS, workers=2) as images:
        ticking = asyncio.create_task(ticker())
        await asyncio.gather(*(images.normalize(d, "big.png") for d in uploads))
        done.set()
        await ticking

    # On the loop itself the ticker would run once between images, about 7 times.
    assert ticks > 20


async def test_processor_passes_refusals_through():
    async with ImageProcessor(LIMITS) as images:
        with pytest.raises(ImageRejected, match=r"^cat\.png: not an image"):
            await images.normalize(b"meow", "cat.png")


async def test_closed_processor_takes_no_more_work():
    images = ImageProcessor(LIMITS)
    images.close()

    with pytest.raises(RuntimeError):
        await images.normalize(encode(photo(), "PNG"), "late.png")


# --- what the bot picks up from a message --------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("IMG_0001.HEIC", None),
        ("IMG_0001.heic", "application/octet-stream"),
        ("photo.heif", None),
        ("camera.hif", None),
        ("image.avif", None),
        ("upload", "image/avif"),
        ("upload", "image/heic"),
        ("upload", "image/heif"),
        ("scan.TIFF", None),
        ("scan.tif", None),
        ("old.bmp", None),
        ("photo.JPG", None),
        ("photo.jpeg", None),
        ("photo.jfif", None),
        ("sticker.png", None),
        ("anim.gif", None),
        ("web.webp", None),
        ("pasted", "image/png"),
        ("pasted", "image/jpeg; charset=binary"),
        ("pasted", "IMAGE/WEBP"),
    ],
)
def test_every_format_intake_takes_is_a_supported_upload(filename: str, content_type: str | None):
    assert is_supported_upload(filename, content_type)


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("logo.svg", "image/svg+xml"),
        ("clip.mp4", "video/mp4"),
        ("notes.txt", "text/plain"),
        ("page.pdf", "application/pdf"),
        ("art.psd", "image/vnd.adobe.photoshop"),
        ("next.jxl", "image/jxl"),
        ("png", None),  # a name that is only an extension word
        ("archive.png.zip", None),
    ],
)
def test_other_files_are_not_supported_uploads(filename: str, content_type: str | None):
    assert not is_supported_upload(filename, content_type)


# --- decode cost, judged from the header (tests/integration/test_image_bombs.py measures it) -----


def test_tiny_webp_declaring_a_huge_canvas_is_refused_with_the_webp_limit():
    message = refusal(webp_canvas(8000, 8000), "canvas.webp")

    assert message == (
        "canvas.webp: too many pixels for a WEBP file: 8000x8000 is 64 MP, and Flexbot reads "
        "WEBP files up to 13 MP. Resize it (or save it as JPEG) and try again."
    )


def test_webp_of_a_few_megapixels_is_accepted():
    result = normalize_image(webp_canvas(3000, 2000), "wide.webp", LIMITS)

    assert result.notes == ("downscaled from 3000x2000 to 1254x836",)


def test_jpeg_with_too_many_scans_is_refused_before_decoding():
    message = refusal(progressive_jpeg(scans=3000, side=1000), "scans.jpg")

    assert "stored in more than 100 passes (scans)" in message
    assert "Save it again as a standard (baseline, not progressive) JPEG" in message


def test_tiff_with_tiles_larger_than_the_image_is_refused():
    message = refusal(tiff_with_huge_tiles(), "tiles.tiff")

    assert "its tiles (32752x32752) are larger than the image (16x16)" in message


def test_a_larger_target_size_raises_the_decode_budget_with_it():
    # An operator who keeps 16 MP inputs must be able to send a 16 MP WebP.
    limits = ImageLimits(max_input_megapixels=16)

    assert limits.decode_budget >= 16 * 1024 * 1024 * 24
    assert ImageLimits().decode_budget == 240_000_000
