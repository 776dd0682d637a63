"""Reading the settings: defaults < TOML file < ``FLEXBOT_*`` environment, then the secrets.

Secrets (``DISCORD_TOKEN``, ``FAL_KEY``, ``GALLERY_SECRET``) come from the environment or the
``secrets_file``, never from the config file. Each value's source is recorded for ``flexbot
doctor`` and ``/flexadmin settings``. :func:`bot.settings.load_settings` hands in the table of
options and builds :class:`bot.settings.Settings` from what :func:`read_settings` found.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.secret import Secret
from bot.settings_values import NOT_SHOWN, Option, convert, echo, secret_like

ENV_PREFIX = "FLEXBOT_"
SECRET_NAMES = ("DISCORD_TOKEN", "FAL_KEY", "GALLERY_SECRET")
DEFAULT_CONFIG_PATH = Path("config/flexbot.toml")
_EXAMPLE = "config/flexbot.example.toml"


@dataclass(frozen=True)
class Loaded:
    """Every setting's value, the secrets, where each came from, and the config file read."""

    values: dict[str, Any]
    secrets: dict[str, Secret | None]
    sources: dict[str, str]
    config_path: Path | None


def read_settings(
    options: Sequence[Option],
    config_path: Path | str | None,
    environ: Mapping[str, str] | None,
) -> Loaded:
    """Read the options from their defaults, the TOML file, the environment; or ConfigError."""
    env = dict(os.environ if environ is None else environ)
    known = {option.name: option for option in options}
    values, sources = _defaults(options)
    path = _config_file(config_path, env)
    if path is not None:
        _apply_file(values, sources, known, *path)
    _apply_env(values, sources, known, env)
    secrets = _secrets(values.get("secrets_file"), env, sources)
    _check_poll_intervals(values, sources)
    return Loaded(values, secrets, sources, None if path is None else path[0])


def _defaults(options: Sequence[Option]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting's default (money converted from its dollar text), all from "default"."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in options:
        default = option.default()
        values[option.name] = (
            convert(option, default, "default", from_env=False)
            if option.meta.get("money")
            else default
        )
        sources[option.name] = "default"
    return values, sources


def _config_file(config_path: Path | str | None, env: Mapping[str, str]) -> tuple[Path, str] | None:
    """(path, where the path came from) of the config file to read; None when there is none.

    A file named by ``--config`` or ``FLEXBOT_CONFIG`` must exist; the default one may not.
    """
    if config_path is not None:
        return Path(config_path), "--config"
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"]), "FLEXBOT_CONFIG"
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH, "default"
    return None


def _apply_file(
    values: dict[str, Any],
    sources: dict[str, str],
    known: Mapping[str, Option],
    path: Path,
    source: str,
) -> None:
    """Read the config file (named by ``source``) over ``values``."""
    for key, raw in _file_settings(_read_toml(path, "config", source), path, known).items():
        values[key] = convert(known[key], raw, str(path), from_env=False)
        sources[key] = str(path)


def _apply_env(
    values: dict[str, Any],
    sources: dict[str, str],
    known: Mapping[str, Option],
    env: Mapping[str, str],
) -> None:
    """Every ``FLEXBOT_<KEY>`` but ``FLEXBOT_CONFIG`` over ``values``; an unknown key is refused."""
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in known:
            raise _unknown(key, name, known)
        values[key] = convert(known[key], raw, name, from_env=True)
        sources[key] = name


def _read_toml(path: Path, key: str, source: str) -> dict[str, Any]:
    # Never the path itself: a token pasted into FLEXBOT_CONFIG or secrets_file stays unseen.
    shown = NOT_SHOWN
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(key, source, shown, "an existing file") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message gives line and column, never the text, so it is safe to repeat.
        raise ConfigError(key, source, shown, f"valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(key, source, shown, f"a readable file ({exc.strerror})") from None


def _unknown(key: str, source: str, known: Mapping[str, Any]) -> ConfigError:
    """An unknown key, or a secret where secrets do not belong; the value is never repeated."""
    if key.upper() in SECRET_NAMES:
        if source.startswith(ENV_PREFIX):
            allowed = f"nothing: {source} is not a setting; secrets go in {key.upper()} "
        else:
            allowed = f"nothing: secrets never go in the config file; they go in {key.upper()} "
        allowed += "(environment) or secrets_file"
    elif secret_like(key):
        allowed = (
            "nothing: secrets never go here; DISCORD_TOKEN and FAL_KEY go in the environment "
            "or secrets_file"
        )
    else:
        allowed = f"a known setting (see {_EXAMPLE})"
        close = difflib.get_close_matches(key, list(known), n=1)
        if close:
            allowed += f"; did you mean {close[0]}?"
    return ConfigError(key, source, NOT_SHOWN, allowed)


def _file_settings(
    data: Mapping[str, Any], path: Path, known: Mapping[str, Option]
) -> dict[str, Any]:
    """The settings in a config file, each checked to sit in its own [section] table.

    The example file is the format: a flat key, a key in another section or an unknown table
    is refused like any bad value, so a setting never silently does nothing.
    """
    sections = list(dict.fromkeys(option.meta["section"] for option in known.values()))
    found: dict[str, Any] = {}
    for top, value in data.items():
        if top in known:
            home = known[top].meta["section"]
            raise ConfigError(
                top,
                f"{path} (top level)",
                echo(top, value, known),
                f"only inside its [{home}] table",
            )
        if top not in sections or not isinstance(value, dict):
            if secret_like(top):
                raise _unknown(top, str(path), known)
            raise ConfigError(
                top,
                str(path),
                NOT_SHOWN,
                "one of the tables " + ", ".join(f"[{name}]" for name in sections),
            )
        for key, raw in value.items():
            if key not in known:
                raise _unknown(key, f"{path} [{top}]", known)
            home = known[key].meta["section"]
            if home != top:
                raise ConfigError(
                    key, f"{path} [{top}]", echo(key, raw, known), f"only in [{home}], not [{top}]"
                )
            found[key] = raw
    return found


def _secrets(
    secrets_file: Path | None, env: Mapping[str, str], sources: dict[str, str]
) -> dict[str, Secret | None]:
    """The secrets from the secrets file, then the environment (which wins); sources updated."""
    secrets: dict[str, Secret | None] = {name.lower(): None for name in SECRET_NAMES}
    if secrets_file is not None:
        data = _read_toml(secrets_file, "secrets_file", sources["secrets_file"])
        for secret_name, raw_secret in data.items():
            if secret_name not in SECRET_NAMES:
                raise ConfigError(
                    secret_name,
                    "secrets_file",
                    NOT_SHOWN,
                    " or ".join(SECRET_NAMES) + " (upper case, no tables); nothing else",
                )
            if not isinstance(raw_secret, str):
                raise ConfigError(secret_name, "secrets_file", NOT_SHOWN, "a quoted string")
            if raw_secret.strip():
                secrets[secret_name.lower()] = Secret(raw_secret.strip())
                sources[secret_name.lower()] = "secrets_file"
    for secret_name in SECRET_NAMES:
        raw_secret = env.get(secret_name, "").strip()
        if raw_secret:
            secrets[secret_name.lower()] = Secret(raw_secret)
            sources[secret_name.lower()] = secret_name
    return secrets


def _check_poll_intervals(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    if values["poll_max_interval_seconds"] < values["poll_interval_seconds"]:
        key = "poll_max_interval_seconds"
        raise ConfigError(
            key,
            sources[key],
            values[key],
            f"a number >= poll_interval_seconds ({values['poll_interval_seconds']})",
        )
