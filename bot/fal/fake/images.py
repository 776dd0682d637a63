"""The fake's outputs: deterministic images, so tests can tell which inputs, prompt and seed
made them, and the output size fal would choose."""

from __future__ import annotations

import hashlib
import io
import json
import math

from PIL import Image, ImageDraw, PngImagePlugin

from bot.model import PRESET_SIZES

AUTO_MAX_PIXELS = 4 * 1024 * 1024
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


def output_size(size: object, first_input: tuple[int, int]) -> tuple[int, int]:
    """The pixels a valid ``image_size`` gives: preset, custom, or ``auto`` (input, <= 4 MP)."""
    if isinstance(size, dict):
        return int(size["width"]), int(size["height"])
    if isinstance(size, str) and size in PRESET_SIZES:
        return PRESET_SIZES[size]
    width, height = first_input
    if width * height > AUTO_MAX_PIXELS:
        scale = math.sqrt(AUTO_MAX_PIXELS / (width * height))
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return width, height


def render(
    inputs: list[bytes],
    *,
    prompt: str,
    seed: int,
    size: tuple[int, int],
    output_format: str,
) -> bytes:
    """A deterministic "edit": the first input resized, tinted and overlaid with shapes.

    Colours and positions come from sha256(prompt, seed, input hashes); the other inputs appear
    as thumbnails along the bottom. The file carries the same facts as JSON metadata (a PNG text
    chunk ``fake-fal`` or the JPEG comment) so tests can read back what was used.
    """
    width, height = size
    input_hashes = [hashlib.sha256(data).hexdigest() for data in inputs]
    facts = {
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
        "seed": seed,
        "inputs": input_hashes,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).digest()
    with Image.open(io.BytesIO(inputs[0])) as first:
        canvas = first.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    tint = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    canvas = Image.blend(canvas, tint, 0.35)
    draw = ImageDraw.Draw(canvas)
    for i in range(4):
        b = digest[3 + i * 7 : 10 + i * 7]
        x0, y0 = b[0] * width // 256, b[1] * height // 256
        x1 = min(width, x0 + max(1, (b[2] + 32) * width // 512))
        y1 = min(height, y0 + max(1, (b[3] + 32) * height // 512))
        colour = (b[4], b[5], b[6])
        if i % 2:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    thumb_w, thumb_h = max(1, width // 8), max(1, height // 8)
    for index, data in enumerate(inputs[1:]):
        with Image.open(io.BytesIO(data)) as other:
            thumb = other.convert("RGB").resize((thumb_w, thumb_h), Image.Resampling.BILINEAR)
        canvas.paste(thumb, (index * thumb_w, height - thumb_h))
    meta = json.dumps(facts, sort_keys=True)
    out = io.BytesIO()
    if output_format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("fake-fal", meta)
        canvas.save(out, format="PNG", pnginfo=info)
    else:
        canvas.save(out, format="JPEG", quality=90, comment=meta.encode())
    return out.getvalue()
