"""One setting's value: from TOML or ``FLEXBOT_*`` text to its type, within its bounds.

A refusal is a :class:`ConfigError` naming the key, where the value came from, the value (only
when it is safe to repeat, see :func:`echo`) and what is allowed, all worded from the field's
metadata in :class:`bot.settings.Settings`. This module and :mod:`bot.settings_load` see that
table as :class:`Option` rows handed to them, so neither imports :mod:`bot.settings`.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Container, Mapping
from dataclasses import Field, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.model import micros_from_usd

UNLIMITED = "unlimited"

# A key whose name holds one of these is treated as a secret: its value is never echoed.
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


class _NotShown:
    """Stands in for a value an error must not echo (a secret, or anything under an unknown key)."""

    def __repr__(self) -> str:
        return "(not shown)"


NOT_SHOWN: Any = _NotShown()


def secret_like(key: str) -> bool:
    """Whether a key's name says it holds a secret."""
    return any(word in key.upper() for word in _SECRET_WORDS)


@dataclass(frozen=True)
class Option:
    """One documented setting as the loader sees it: its dataclass field and its type."""

    field: Field[Any]
    kind: Any
    """The field's type without ``| None``."""
    optional: bool
    """Whether the type had ``| None`` (an unset value, or "unlimited" for money)."""

    @classmethod
    def of(cls, f: Field[Any], hint: Any) -> Option:
        """The option for field ``f`` whose resolved type hint is ``hint``."""
        args = typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            return cls(f, next(a for a in args if a is not type(None)), True)
        return cls(f, hint, False)

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.field.metadata

    def default(self) -> Any:
        """The declared default, as written in the table (money still in dollar text)."""
        factory = self.field.default_factory  # set for list defaults (see bot.settings._opt)
        return factory() if callable(factory) else self.field.default


def echo(key: str, raw: Any, known: Container[str]) -> Any:
    """What an error may say about ``raw``: the value itself only under a known, plain key.

    Even ``secrets_file`` (a path) is hidden: a token pasted into the wrong variable must not come
    back out in the error that says so.
    """
    return raw if key in known and not secret_like(key) else NOT_SHOWN


def allowed(option: Option) -> str:
    """What a setting accepts, in the words of an error message."""
    meta = option.meta
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if meta.get("money"):
        text = 'a dollar amount >= 0 such as "1.50"'
        return text + (f' or "{UNLIMITED}"' if option.optional else "")
    base = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "text",
        Path: "a path",
        tuple[str, ...]: "a list of strings",
    }.get(option.kind, "a list of integers")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{base} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{base} >= {lo:g}"
    return base


_Converter = Callable[[Any, Mapping[str, Any], bool], Any]


class _Refused(Exception):
    """A raw value the field's type does not take; :func:`convert` words the ConfigError."""


def convert(option: Option, raw: Any, source: str, from_env: bool) -> Any:
    """``raw`` (TOML value, or environment text when ``from_env``) as the option's value."""

    def bad() -> ConfigError:
        shown = echo(option.name, raw, (option.name,))
        return ConfigError(option.name, source, shown, allowed(option))

    if option.meta.get("money"):
        return _money(raw, option.optional, bad)
    if option.optional and (raw is None or raw == ""):
        return None
    to_value: _Converter = _CONVERTERS.get(option.kind, _to_ints)
    try:
        value = to_value(raw, option.meta, from_env)
    except (_Refused, ValueError, InvalidOperation, TypeError):
        raise bad() from None
    lo, hi = option.meta.get("lo"), option.meta.get("hi")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and ((lo is not None and value < lo) or (hi is not None and value > hi))
    ):
        raise bad()
    return value


def _money(raw: Any, optional: bool, bad: Callable[[], ConfigError]) -> int | None:
    """Dollars (``"1.50"``, ``"$2"``, ``2.5``) as micro-dollars; ``unlimited`` where allowed."""
    if optional and isinstance(raw, str) and raw.strip().lower() == UNLIMITED:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise bad()
    try:
        micros = micros_from_usd(str(raw).strip().lstrip("$"))
    except (InvalidOperation, ValueError):
        raise bad() from None
    if micros < 0:
        raise bad()
    return micros


def _to_bool(raw: Any, meta: Mapping[str, Any], from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and str(raw).lower() in ("1", "true", "yes", "on"):
        return True
    if from_env and str(raw).lower() in ("0", "false", "no", "off"):
        return False
    raise _Refused


def _to_int(raw: Any, meta: Mapping[str, Any], from_env: bool) -> int:
    if isinstance(raw, (bool, float)):
        raise _Refused
    value = int(str(raw).replace("_", "")) if from_env else raw
    if not isinstance(value, int):
        raise _Refused
    return value


def _to_float(raw: Any, meta: Mapping[str, Any], from_env: bool) -> float:
    if isinstance(raw, bool):
        raise _Refused
    value = float(Decimal(str(raw))) if from_env else raw
    if not isinstance(value, int | float):
        raise _Refused
    return float(value)


def _to_path(raw: Any, meta: Mapping[str, Any], from_env: bool) -> Path:
    if not isinstance(raw, str) or not raw:
        raise _Refused
    return Path(raw).expanduser()


def _to_str(raw: Any, meta: Mapping[str, Any], from_env: bool) -> str:
    if not isinstance(raw, str):
        raise _Refused
    value = raw.strip()
    if meta.get("choices"):
        value = value.upper() if value.upper() in meta["choices"] else value
        if value not in meta["choices"]:
            raise _Refused
    return value


def _to_ints(raw: Any, meta: Mapping[str, Any], from_env: bool) -> tuple[int, ...]:
    """``tuple[int, ...]``: a TOML list, or ids separated by commas or spaces in the environment."""
    items = [s for s in str(raw).replace(",", " ").split()] if from_env else raw
    if not isinstance(items, list | tuple):
        raise _Refused
    return tuple(int(x) for x in items)


def _to_strs(raw: Any, meta: Mapping[str, Any], from_env: bool) -> tuple[str, ...]:
    """``tuple[str, ...]``: a TOML list; in the environment a JSON list or comma-separated text."""
    items = raw
    if from_env:
        text = str(raw).strip()
        items = json.loads(text) if text.startswith("[") else [s for s in text.split(",")]
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise _Refused
    return tuple(x.strip() for x in items if x.strip())


_CONVERTERS: dict[Any, _Converter] = {
    tuple[str, ...]: _to_strs,
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    Path: _to_path,
    str: _to_str,
}
