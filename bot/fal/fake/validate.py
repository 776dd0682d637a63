"""The fake's input checks: the 422 ``detail`` entries fal's ``flux-2-flex/edit`` would return.

Each check appends pydantic-v1-style entries (``loc``, ``msg``, ``type``, ``url``, optional
``ctx`` and ``input``) in the order the endpoint reports them: prompt, image_urls, the numbers,
the enumerations, the booleans and seed, then image_size.
"""

from __future__ import annotations

from typing import Any

from bot.model import MAX_IMAGES, PRESET_SIZES

MAX_SIDE = 14142
ERRORS_URL = "https://docs.fal.ai/errors"

Errors = list[dict[str, Any]]


def field_error(
    loc: list[str | int], msg: str, type_: str, value: object = None, **ctx: Any
) -> dict[str, Any]:
    """One ``detail`` entry located under ``body``."""
    error: dict[str, Any] = {
        "loc": ["body", *loc],
        "msg": msg,
        "type": type_,
        "url": f"{ERRORS_URL}#{type_}",
    }
    if ctx:
        error["ctx"] = ctx
    if value is not None:
        error["input"] = value
    return error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missing(name: str) -> dict[str, Any]:
    return field_error([name], "field required", "value_error.missing")


def _not_in_enum(loc: list[str | int], value: object, allowed: list[str]) -> dict[str, Any]:
    return field_error(
        loc,
        "value is not a valid enumeration member; permitted: "
        + ", ".join(repr(a) for a in allowed),
        "type_error.enum",
        value,
        enum_values=allowed,
    )


def validate_arguments(args: object) -> Errors:
    """The 422 ``detail`` entries the endpoint would return for ``args`` (empty: valid)."""
    if not isinstance(args, dict):
        return [field_error([], "value is not a valid dict", "type_error.dict")]
    errors: Errors = []
    _check_prompt(args, errors)
    _check_image_urls(args, errors)
    _check_number_range(args, errors, "guidance_scale", 1.5, 10, integer=False)
    _check_number_range(args, errors, "num_inference_steps", 2, 50, integer=True)
    _check_enum(args, errors, "safety_tolerance", ["1", "2", "3", "4", "5"])
    _check_enum(args, errors, "output_format", ["jpeg", "png"])
    _check_flags_and_seed(args, errors)
    _check_image_size(args.get("image_size", "auto"), errors)
    return errors


def _check_prompt(args: dict[str, Any], errors: Errors) -> None:
    prompt = args.get("prompt")
    if "prompt" not in args:
        errors.append(_missing("prompt"))
    elif not isinstance(prompt, str):
        errors.append(field_error(["prompt"], "str type expected", "type_error.str", prompt))


def _check_image_urls(args: dict[str, Any], errors: Errors) -> None:
    urls = args.get("image_urls")
    if "image_urls" not in args:
        errors.append(_missing("image_urls"))
    elif not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        errors.append(field_error(["image_urls"], "value is not a valid list", "type_error.list"))
    elif not urls:
        errors.append(
            field_error(
                ["image_urls"],
                "ensure this value has at least 1 items",
                "value_error.list.min_items",
                limit_value=1,
            )
        )
    elif len(urls) > MAX_IMAGES:
        errors.append(
            field_error(
                ["image_urls"],
                f"ensure this value has at most {MAX_IMAGES} items",
                "value_error.list.max_items",
                limit_value=MAX_IMAGES,
            )
        )


def _check_number_range(
    args: dict[str, Any], errors: Errors, name: str, low: float, high: float, *, integer: bool
) -> None:
    if name not in args:
        return
    value = args[name]
    ok_type = _is_int(value) if integer else _is_number(value)
    if not ok_type:
        kind = "integer" if integer else "float"
        errors.append(
            field_error([name], f"value is not a valid {kind}", f"type_error.{kind}", value)
        )
    elif value < low:
        errors.append(
            field_error(
                [name],
                f"ensure this value is greater than or equal to {low}",
                "value_error.number.not_ge",
                value,
                limit_value=low,
            )
        )
    elif value > high:
        errors.append(
            field_error(
                [name],
                f"ensure this value is less than or equal to {high}",
                "value_error.number.not_le",
                value,
                limit_value=high,
            )
        )


def _check_enum(args: dict[str, Any], errors: Errors, name: str, allowed: list[str]) -> None:
    if name in args and args[name] not in allowed:
        errors.append(_not_in_enum([name], args[name], allowed))


def _check_flags_and_seed(args: dict[str, Any], errors: Errors) -> None:
    for name in ("enable_safety_checker", "sync_mode"):
        if name in args and not isinstance(args[name], bool):
            errors.append(
                field_error([name], "value could not be parsed to a boolean", "type_error.bool")
            )
    if "seed" in args and args["seed"] is not None and not _is_int(args["seed"]):
        errors.append(field_error(["seed"], "value is not a valid integer", "type_error.integer"))


def _check_image_size(size: object, errors: Errors) -> None:
    if isinstance(size, str):
        if size != "auto" and size not in PRESET_SIZES:
            errors.append(_not_in_enum(["image_size"], size, ["auto", *PRESET_SIZES]))
    elif isinstance(size, dict):
        for side in ("width", "height"):
            _check_side(size, side, errors)
    else:
        errors.append(field_error(["image_size"], "value is not a valid size", "type_error", size))


def _check_side(size: dict[str, Any], side: str, errors: Errors) -> None:
    value = size.get(side)
    loc: list[str | int] = ["image_size", side]
    if side not in size:
        errors.append(field_error(loc, "field required", "value_error.missing"))
    elif not isinstance(value, int) or isinstance(value, bool):
        errors.append(field_error(loc, "value is not a valid integer", "type_error.integer"))
    elif value <= 0:
        errors.append(
            field_error(
                loc,
                "ensure this value is greater than 0",
                "value_error.number.not_gt",
                value,
                limit_value=0,
            )
        )
    elif value > MAX_SIDE:
        errors.append(
            field_error(
                loc,
                f"ensure this value is less than or equal to {MAX_SIDE}",
                "value_error.number.not_le",
                value,
                limit_value=MAX_SIDE,
            )
        )
