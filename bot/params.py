"""User input -> validated EditParams (pure). Every error names the parameter, value and range."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import InvalidParameter
from bot.i18n import Text
from bot.model import (
    DEFAULT_GUIDANCE,
    DEFAULT_SAFETY_TOLERANCE,
    DEFAULT_STEPS,
    MAX_IMAGES,
    PRESET_SIZES,
    EditParams,
    ImageSize,
    OutputFormat,
    SafetyTolerance,
)

if TYPE_CHECKING:
    from bot.settings import Settings

GUIDANCE_RANGE = (1.5, 10.0)
STEPS_RANGE = (2, 50)
SEED_RANGE = (0, 2**63 - 1)
SIDE_RANGE = (64, 8192)
SAFETY_LEVELS: tuple[SafetyTolerance, ...] = tuple(SafetyTolerance)
FORMATS: tuple[OutputFormat, ...] = ("jpeg", "png")
SIZE_CHOICES = ("auto", *PRESET_SIZES)
_CUSTOM_SIZE = re.compile(r"^\s*(\d+)\s*[x\u00d7*]\s*(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParamLimits:
    """The operator's bounds on what members may ask for."""

    max_prompt_chars: int = 2000
    max_output_megapixels: float = 4.0
    megapixel_pixels: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ParamLimits:
        return cls(
            max_prompt_chars=settings.max_prompt_chars,
            max_output_megapixels=settings.max_output_megapixels,
            megapixel_pixels=settings.megapixel_pixels,
        )


def clean_prompt(prompt: str | None, max_chars: int) -> str:
    """Trim, drop control and format characters (keeping newlines), bound the length."""
    text = "".join(
        " " if ch == "\t" else ch
        for ch in (prompt or "")
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    ).strip()
    if not text:
        raise InvalidParameter("prompt", prompt or "", "a description of the edit (not empty)")
    if len(text) > max_chars:
        raise InvalidParameter(
            "prompt",
            Text("{count} characters", {"count": len(text)}),
            Text("at most {count} characters", {"count": max_chars}),
        )
    return text


def _number(name: str, value: str | int | float, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        raise InvalidParameter(name, value, "a number")
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        return float(value)
    except ValueError:
        raise InvalidParameter(
            name, value, "a whole number" if kind is int else "a number"
        ) from None


def _in_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi or value != value:  # NaN fails too
        raise InvalidParameter(
            name, value, Text("{low} to {high}", {"low": f"{lo:g}", "high": f"{hi:g}"})
        )


def parse_size(
    size: str | None, width: str | int | None, height: str | int | None, limits: ParamLimits
) -> ImageSize:
    """``auto``, a preset name, ``WxH``, or explicit width and height."""
    if width is not None or height is not None:
        if size not in (None, "", "custom"):
            raise InvalidParameter("size", size, "leave size empty when giving width and height")
        if width is None or height is None:
            missing = "height" if height is None else "width"
            raise InvalidParameter(missing, None, "give both width and height")
        w, h = int(_number("width", width, int)), int(_number("height", height, int))
    else:
        text = (size or "auto").strip().lower()
        if text in SIZE_CHOICES:
            return ImageSize(preset=text)
        match = _CUSTOM_SIZE.match(text)
        if not match:
            raise InvalidParameter(
                "size",
                size,
                Text(
                    "auto, {presets} or WIDTHxHEIGHT like 1024x768",
                    {"presets": ", ".join(PRESET_SIZES)},
                ),
            )
        w, h = int(match[1]), int(match[2])
    for name, side in (("width", w), ("height", h)):
        _in_range(name, side, *SIDE_RANGE)
    megapixels = w * h / limits.megapixel_pixels
    if megapixels > limits.max_output_megapixels:
        raise InvalidParameter(
            "size",
            f"{w}x{h} ({megapixels:.1f} MP)",
            Text(
                "at most {megapixels} MP on this server",
                {"megapixels": f"{limits.max_output_megapixels:g}"},
            ),
        )
    return ImageSize(preset=None, width=w, height=h)


@dataclass(frozen=True, slots=True)
class ChannelDefaults:
    """A channel's defaults, set by its server's admins; None: the bot's default.

    A member's own option always wins; a default only fills an option the member left out.
    """

    steps: int | None = None
    guidance: float | None = None
    size: str | None = None
    output_format: str | None = None
    safety: str | None = None

    def as_tuple(self) -> tuple[int | float | str | None, ...]:
        """In the order of the stored columns (``bot.store.channels.DEFAULT_COLUMNS``)."""
        return (self.steps, self.guidance, self.size, self.output_format, self.safety)

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.as_tuple())


def check_channel_defaults(defaults: ChannelDefaults, limits: ParamLimits) -> ChannelDefaults:
    """The defaults validated exactly as a member's options are, in their stored form."""
    params = parse_edit_params(
        prompt="x",
        num_images=1,
        limits=limits,
        steps=defaults.steps,
        guidance=defaults.guidance,
        size=defaults.size,
        output_format=defaults.output_format,
        safety_tolerance=defaults.safety,
    )
    return ChannelDefaults(
        steps=None if defaults.steps is None else params.num_inference_steps,
        guidance=None if defaults.guidance is None else params.guidance_scale,
        size=None if defaults.size is None else str(params.image_size),
        output_format=None if defaults.output_format is None else params.output_format,
        safety=None if defaults.safety is None else str(params.safety_tolerance),
    )


def _given(value: object) -> bool:
    return value is not None and value != ""


def parse_edit_params(
    *,
    prompt: str | None,
    num_images: int,
    limits: ParamLimits,
    seed: str | int | None = None,
    steps: str | int | None = None,
    guidance: str | float | None = None,
    size: str | None = None,
    width: str | int | None = None,
    height: str | int | None = None,
    output_format: str | None = None,
    safety_tolerance: str | int | None = None,
    enable_safety_checker: bool | None = None,
    defaults: ChannelDefaults | None = None,
) -> EditParams:
    """Validate raw inputs (strings from a CLI or typed Discord options) into EditParams.

    ``defaults`` (a channel's) fill the options not given; a member's own value always wins.
    """
    if defaults is not None:
        custom = _given(width) or _given(height)
        steps = steps if _given(steps) else defaults.steps
        guidance = guidance if _given(guidance) else defaults.guidance
        size = size if _given(size) or custom else defaults.size
        output_format = output_format if _given(output_format) else defaults.output_format
        safety_tolerance = safety_tolerance if _given(safety_tolerance) else defaults.safety
    text = clean_prompt(prompt, limits.max_prompt_chars)
    if not 1 <= num_images <= MAX_IMAGES:
        raise InvalidParameter(
            "images", num_images, Text("1 to {count} images", {"count": MAX_IMAGES})
        )

    seed_value: int | None = None
    if seed is not None and seed != "":
        seed_value = int(_number("seed", seed, int))
        _in_range("seed", seed_value, *SEED_RANGE)

    steps_value = DEFAULT_STEPS
    if steps is not None and steps != "":
        steps_value = int(_number("steps", steps, int))
        _in_range("steps", steps_value, *STEPS_RANGE)

    guidance_value = DEFAULT_GUIDANCE
    if guidance is not None and guidance != "":
        guidance_value = float(_number("guidance", guidance, float))
        _in_range("guidance", guidance_value, *GUIDANCE_RANGE)

    fmt = (output_format or "jpeg").strip().lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise InvalidParameter("format", output_format, "jpeg or png")

    safety: SafetyTolerance = DEFAULT_SAFETY_TOLERANCE
    if safety_tolerance is not None and safety_tolerance != "":
        level = str(safety_tolerance).strip()
        if level not in SAFETY_LEVELS:
            raise InvalidParameter(
                "safety_tolerance", safety_tolerance, "1 (strictest) to 5 (most permissive)"
            )
        safety = SafetyTolerance(level)

    return EditParams(
        prompt=text,
        image_size=parse_size(size, width, height, limits),
        seed=seed_value,
        safety_tolerance=safety,
        enable_safety_checker=True if enable_safety_checker is None else enable_safety_checker,
        output_format=fmt,
        guidance_scale=guidance_value,
        num_inference_steps=steps_value,
    )
