"""Uploads crafted to turn the decoders against the bot (issue 11).

Each crafted file is built here, in a few lines, rather than stored as a fixture. A member who
sends one is told no (or gets a normal result) after at most 5 s of CPU and 300 MB of memory, and
a slow decode never holds up another member's image.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bot.errors import ImageRejected
from bot.images import ImageLimits, ImageProcessor

ROOT = Path(__file__).parents[2]
CPU_BUDGET_S = 5.0
PEAK_BUDGET_KIB = 300 * 1024

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc"
)


def _jpeg_scans(data: bytes) -> tuple[bytes, list[bytes]]:
    """A JPEG's segments between SOI and EOI, and its scans (SOS segment plus entropy data)."""
    next_marker = re.compile(rb"\xff[^\x00\xd0-\xd7]")
    scans, i = [], 2
    while data[i + 1] != 0xD9:
        end = i + 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if data[i + 1] == 0xDA:
            match = next_marker.search(data, end)
            assert match
            end = match.start()
            scans.append(data[i:end])
        i = end
    return data[2:i], scans


def progressive_jpeg(scans: int, side: int = 4000) -> bytes:
    """A flat grey progressive JPEG, its last (31-byte) refinement scan repeated ``scans`` times.

    libjpeg walks every coefficient of the image once per scan: about 0.01 s per scan at 16 MP.
    """
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(buf, "JPEG", progressive=True)
    body, original = _jpeg_scans(buf.getvalue())
    return b"\xff\xd8" + body + original[-1] * scans + b"\xff\xd9"


def tiff_with_huge_tiles(side: int = 16, tile: int = 32752) -> bytes:
    """A 16x16 deflate TIFF whose one tile claims to be 32752x32752 (1 GB of 8-bit pixels)."""
    entries = [
        (256, side),  # ImageWidth
        (257, side),  # ImageLength
        (258, 8),  # BitsPerSample
        (259, 8),  # Compression: deflate, so libtiff decodes it
        (262, 1),  # PhotometricInterpretation: black is zero
        (277, 1),  # SamplesPerPixel
        (322, tile),  # TileWidth
        (323, tile),  # TileLength
        (324, None),  # TileOffsets: filled in below
        (325, 64),  # TileByteCounts
    ]
    data_at = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, value in entries:
        ifd += struct.pack("<HHII", tag, 4, 1, data_at if value is None else value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(4) + bytes(64)


def webp_canvas(width: int, height: int) -> bytes:
    """A lossless WebP of one colour: under 40 bytes for any size up to 16384x16384."""
    bits, n = 0, 0

    def put(value: int, count: int) -> None:
        nonlocal bits, n
        bits |= value << n
        n += count

    put(width - 1, 14)
    put(height - 1, 14)
    put(0, 4)  # no alpha hint, version 0
    put(0, 3)  # no transform, no colour cache, no meta prefix codes
    for _ in range(5):  # green, red, blue, alpha, distance: a simple code of one symbol, 0
        put(0b0001, 4)
    body = b"\x2f" + bits.to_bytes((n + 7) // 8, "little")
    body += b"\x00" * (len(body) % 2)
    chunk = b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def png_rgba_bomb(side: int = 7900) -> bytes:
    """A transparent RGBA PNG just under the 64 MP setting: 240 KB on disk, 250 MB decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    packer = zlib.compressobj(9)
    rows = b"\x00" * (1 + 4 * side) * 100
    idat = b"".join(packer.compress(rows) for _ in range(side // 100)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif_bomb(side: int = 8000) -> bytes:
    """A one-colour 64 MP GIF: 48 KB on disk."""
    buf = io.BytesIO()
    Image.new("P", (side, side)).save(buf, "GIF")
    return buf.getvalue()


def small_photo() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((640, 480), 40).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    # A guard so a runaway decode ends the test instead of hanging it.
    resource.setrlimit(resource.RLIMIT_CPU, (20, 21))
    from bot.errors import ImageRejected
    from bot.images import ImageLimits, normalize_image

    def peak_kib():
        return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])

    data = Path(sys.argv[1]).read_bytes()
    start = time.process_time()
    try:
        result = normalize_image(data, sys.argv[2], ImageLimits())
        outcome = {"refused": False, "size": [result.width, result.height]}
    except ImageRejected as e:
        outcome = {"refused": True, "message": str(e)}
    outcome["cpu_s"] = time.process_time() - start
    outcome["peak_kib"] = peak_kib()
    print(json.dumps(outcome))
    """
)


def measure(data: bytes, filename: str, tmp_path: Path) -> dict[str, object]:
    """Normalise ``data`` in a fresh Python and report the outcome, CPU seconds and peak RSS."""
    path = tmp_path / filename
    path.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), filename],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, f"the decode was killed (exit {run.returncode}): {run.stderr}"
    outcome: dict[str, object] = json.loads(run.stdout)
    return outcome


@pytest.mark.parametrize(
    ("filename", "make"),
    [
        ("scans.jpg", lambda: progressive_jpeg(scans=3000)),
        ("tiles.tiff", tiff_with_huge_tiles),
        ("canvas.webp", lambda: webp_canvas(8000, 8000)),
        ("bomb.png", png_rgba_bomb),
        ("bomb.gif", gif_bomb),
    ],
)
def test_crafted_upload_is_refused_within_the_cpu_and_memory_budget(
    filename: str, make: object, tmp_path: Path
) -> None:
    data = make()  # type: ignore[operator]

    outcome = measure(data, filename, tmp_path)

    assert outcome["refused"], outcome
    message = str(outcome["message"])
    assert message.startswith(f"{filename}: ")
    assert re.search(r"\b(Resize|Save|Attach)\b", message), message
    assert float(outcome["cpu_s"]) < CPU_BUDGET_S  # type: ignore[arg-type]
    assert int(outcome["peak_kib"]) < PEAK_BUDGET_KIB  # type: ignore[call-overload]


def test_ordinary_progressive_jpeg_is_still_accepted(tmp_path: Path) -> None:
    outcome = measure(progressive_jpeg(scans=0, side=3000), "web.jpg", tmp_path)

    assert not outcome["refused"], outcome
    assert float(outcome["cpu_s"]) < CPU_BUDGET_S  # type: ignore[arg-type]


async def test_bomb_does_not_hold_up_another_members_image() -> None:
    # One decode slot: the member behind the bomb waits for whatever the bomb costs.
    async with ImageProcessor(ImageLimits(), workers=1) as images:
        bomb = asyncio.create_task(images.normalize(progressive_jpeg(scans=3000), "scans.jpg"))
        good = asyncio.create_task(images.normalize(small_photo(), "cat.jpg"))

        result = await asyncio.wait_for(good, timeout=10)

        assert (result.width, result.height) == (640, 480)
        with pytest.raises(ImageRejected, match=r"^scans\.jpg: "):
            await bomb


async def test_decode_over_its_cpu_budget_is_stopped_and_the_next_image_goes_through() -> None:
    # 100 scans at 16 MP is within the header rules but needs about a second of CPU.
    slow = progressive_jpeg(scans=90)
    limits = ImageLimits(decode_cpu_seconds=0.3)

    async with ImageProcessor(limits, workers=1) as images:
        outcomes = await asyncio.gather(
            images.normalize(slow, "slow.jpg"),
            images.normalize(small_photo(), "cat.jpg"),
            return_exceptions=True,
        )

    refused, result = outcomes
    assert isinstance(refused, ImageRejected)
    assert str(refused).startswith("slow.jpg: ")
    assert "too long" in str(refused)
    assert not isinstance(result, BaseException)
    assert (result.width, result.height) == (640, 480)


async def test_close_does_not_wait_for_a_running_decode() -> None:
    slow = progressive_jpeg(scans=90)
    images = ImageProcessor(ImageLimits(), workers=1)
    running = asyncio.create_task(images.normalize(slow, "slow.jpg"))
    await asyncio.sleep(0)  # let the task hand the image to the pool

    started = time.monotonic()
    await asyncio.to_thread(images.close)
    closing_s = time.monotonic() - started

    with pytest.raises(RuntimeError):
        await running
    assert closing_s < 0.5  # the decode alone needs about a second of CPU
