import pytest

from bot.errors import InvalidParameter
from bot.model import EditParams, ImageSize
from bot.params import ParamLimits, parse_edit_params

LIMITS = ParamLimits(max_prompt_chars=100, max_output_megapixels=4.0)


def parse(**kw: object) -> EditParams:
    kw.setdefault("prompt", "make it night")
    kw.setdefault("num_images", 1)
    return parse_edit_params(limits=LIMITS, **kw)  # type: ignore[arg-type]


def test_defaults_match_the_endpoint() -> None:
    p = parse()
    assert p.image_size == ImageSize("auto")
    assert (p.guidance_scale, p.num_inference_steps) == (3.5, 28)
    assert (p.safety_tolerance, p.enable_safety_checker, p.output_format) == ("2", True, "jpeg")
    assert p.seed is None
    body = p.to_fal_input(["u"])
    assert body["safety_tolerance"] == "2"  # a string, as fal wants
    assert "seed" not in body


def test_every_input_is_passed_through() -> None:
    p = parse(
        seed="42",
        steps="10",
        guidance="7.5",
        size="1024x768",
        output_format="PNG",
        safety_tolerance=4,
        enable_safety_checker=False,
    )
    assert p.to_fal_input(["a", "b"]) == {
        "prompt": "make it night",
        "image_urls": ["a", "b"],
        "image_size": {"width": 1024, "height": 768},
        "seed": 42,
        "safety_tolerance": "4",
        "enable_safety_checker": False,
        "output_format": "png",
        "guidance_scale": 7.5,
        "num_inference_steps": 10,
    }


def test_presets_and_width_height() -> None:
    assert parse(size="landscape_16_9").image_size.pixels() == (1024, 576)
    assert parse(width=800, height=600).image_size.pixels() == (800, 600)


@pytest.mark.parametrize(
    ("kw", "name", "fragment"),
    [
        ({"steps": 1}, "steps", "2 to 50"),
        ({"steps": 51}, "steps", "2 to 50"),
        ({"steps": "many"}, "steps", "whole number"),
        ({"guidance": 1.4}, "guidance", "1.5 to 10"),
        ({"guidance": 10.5}, "guidance", "1.5 to 10"),
        ({"guidance": "nan"}, "guidance", "1.5 to 10"),
        ({"safety_tolerance": "6"}, "safety_tolerance", "1 (strictest) to 5"),
        ({"output_format": "gif"}, "format", "jpeg or png"),
        ({"size": "huge"}, "size", "square_hd"),
        ({"size": "4096x4096"}, "size", "at most 4 MP"),
        ({"size": "10x10"}, "width", "64 to 8192"),
        ({"width": 512}, "height", "both width and height"),
        ({"seed": -1}, "seed", "0 to"),
        ({"num_images": 0}, "images", "1 to 8"),
        ({"num_images": 9}, "images", "1 to 8"),
        ({"prompt": "   "}, "prompt", "not empty"),
        ({"prompt": "x" * 101}, "prompt", "at most 100 characters"),
    ],
)
def test_out_of_range_input_names_parameter_value_and_range(
    kw: dict[str, object], name: str, fragment: str
) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse(**kw)
    assert err.value.name == name
    assert name in str(err.value)
    assert fragment in str(err.value)


def test_error_shows_the_value_given() -> None:
    with pytest.raises(InvalidParameter, match="got 51"):
        parse(steps=51)


def test_prompt_is_trimmed_and_control_characters_removed() -> None:
    p = parse(prompt="  make\x00 it\u200b\tnight\x1b[31m\nplease  ")
    assert p.prompt == "make it night[31m\nplease"


def test_params_round_trip_through_json() -> None:
    p = parse(seed=7, size="800x600", output_format="png")
    assert EditParams.from_json(p.to_json()) == p
