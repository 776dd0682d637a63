"""Typed settings: defaults < TOML file < ``FLEXBOT_*`` environment; secrets: env or secrets file.

Every setting is a field of :class:`Settings` whose metadata carries its documentation and bounds,
so the loader, the error messages, ``config/flexbot.example.toml`` and ``/flexadmin settings`` all
come from one table. :func:`load_settings` records where each value came from.

The file's ``[section]`` tables are part of the format: a key outside its own table is refused.
Attribute access stays flat (``settings.fal_app_id``), as do ``FLEXBOT_<KEY>`` variables. An
error never repeats a value that may be a secret (see :func:`_echo`), and ``admin_visible`` marks
the few settings a server's admins may read (:meth:`Settings.describe_for_admins`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.model import micros_from_usd, usd
from bot.secret import Secret

ENV_PREFIX = "FLEXBOT_"
SECRET_NAMES = ("DISCORD_TOKEN", "FAL_KEY")
DEFAULT_CONFIG_PATH = Path("config/flexbot.toml")
UNLIMITED = "unlimited"
# A key whose name holds one of these is treated as a secret: its value is never echoed.
_SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
_EXAMPLE = "config/flexbot.example.toml"


class _NotShown:
    """Stands in for a value an error must not echo (a secret, or anything under an unknown key)."""

    def __repr__(self) -> str:
        return "(not shown)"


NOT_SHOWN: Any = _NotShown()


def _secret_like(key: str) -> bool:
    return any(word in key.upper() for word in _SECRET_WORDS)


def _echo(key: str, raw: Any) -> Any:
    """What an error may say about ``raw``: the value itself only under a known, plain key.

    Even ``secrets_file`` (a path) is hidden: a token pasted into the wrong variable must not come
    back out in the error that says so.
    """
    known = any(f.name == key for f in setting_fields())
    return raw if known and not _secret_like(key) else NOT_SHOWN


def _opt(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    money: bool = False,
    section: str = "general",
    admin_visible: bool = False,
) -> Any:
    meta = {
        "doc": doc,
        "lo": lo,
        "hi": hi,
        "choices": choices,
        "money": money,
        "section": section,
        # Shown to every server's admins in /flexadmin settings. Off by default so a new setting
        # (a URL, a path, a host) stays the operator's until someone decides otherwise.
        "admin_visible": admin_visible,
    }
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every Flexbot setting, validated. Money fields hold micro-dollars (None = no cap)."""

    # general
    data_dir: Path = _opt(Path("data"), "Where the database and the image blobs live.")
    log_level: str = _opt("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = _opt(
        "text",
        "text (one readable line per event) or json (one JSON object per line).",
        choices=("text", "json"),
    )
    health_host: str = _opt(
        "127.0.0.1", "Address of the /healthz and /metrics server (keep it local or firewalled)."
    )
    health_port: int = _opt(0, "Port of the /healthz and /metrics server; 0 = off.", lo=0, hi=65535)
    secrets_file: Path | None = _opt(
        None,
        "A TOML file, outside the repository, holding DISCORD_TOKEN and/or FAL_KEY "
        "(the environment wins over it).",
    )

    # discord
    discord_api_base: str | None = _opt(
        None,
        "Base URL of Discord's REST API, for REST proxies (default: discord.com/api/v10).",
        section="discord",
    )
    discord_gateway_url: str | None = _opt(
        None, "Gateway WebSocket URL (default: Discord's own).", section="discord"
    )
    discord_sync_guilds: tuple[int, ...] = _opt(
        [],
        "Guild ids to register commands in instantly; empty = global registration "
        "(can take up to an hour to appear).",
        section="discord",
    )
    allow_dms: bool = _opt(
        False, "Whether members may use Flexbot in direct messages with the bot.", section="discord"
    )

    # fal
    fal_queue_url: str = _opt("https://queue.fal.run", "fal queue API base URL.", section="fal")
    fal_rest_url: str = _opt(
        "https://rest.fal.ai", "fal REST API base URL (storage uploads).", section="fal"
    )
    fal_result_hosts: str = _opt(
        "fal.media",
        "Hosts fal's output images may be downloaded from (https only), comma-separated; each "
        "also covers its subdomains, so fal.media allows v3.fal.media and v3b.fal.media.",
        section="fal",
    )
    fal_app_id: str = _opt("fal-ai/flux-2-flex/edit", "fal endpoint id.", section="fal")
    fal_http_timeout_seconds: float = _opt(
        30.0, "Timeout of one HTTP call to fal.", lo=1, hi=600, section="fal"
    )
    fal_max_attempts: int = _opt(
        5, "Attempts per fal call on 429/5xx/connection errors.", lo=1, hi=20, section="fal"
    )
    fal_job_timeout_seconds: float = _opt(
        900.0, "Give up on a fal job after this long.", lo=10, hi=86400, section="fal"
    )

    # pricing
    price_per_megapixel: int = _opt(
        "0.05",
        "Dollars per megapixel, on each input and the output.",
        money=True,
        section="pricing",
        admin_visible=True,
    )
    megapixel_pixels: int = _opt(
        1024 * 1024, "Pixels in one billed megapixel.", lo=1, section="pricing", admin_visible=True
    )

    # images
    max_prompt_chars: int = _opt(
        2000, "Longest prompt accepted.", lo=1, hi=20000, section="images", admin_visible=True
    )
    max_input_bytes: int = _opt(
        25 * 1024 * 1024,
        "Largest attachment accepted, in bytes.",
        lo=1024,
        section="images",
        admin_visible=True,
    )
    max_input_pixels: int = _opt(
        64_000_000,
        "Largest input in pixels, checked before decoding (decompression-bomb guard).",
        lo=1,
        section="images",
        admin_visible=True,
    )
    max_input_megapixels: float = _opt(
        1.0,
        "Inputs are downscaled to this many megapixels before upload.",
        lo=0.05,
        hi=16,
        section="images",
        admin_visible=True,
    )
    max_output_megapixels: float = _opt(
        4.0,
        "Largest output size a member may ask for.",
        lo=0.05,
        hi=16,
        section="images",
        admin_visible=True,
    )
    max_output_bytes: int = _opt(
        64 * 1024 * 1024,
        "Largest fal output downloaded, in bytes.",
        lo=1024,
        section="images",
        admin_visible=True,
    )
    image_workers: int = _opt(
        2, "Threads that decode and resize images.", lo=1, hi=32, section="images"
    )
    max_download_bytes_in_flight: int = _opt(
        256 * 1024 * 1024,
        "Bytes of attachments the whole bot downloads at once; past it a member waits up to 30 s "
        "for room, then is asked to try again. Each member may have 8 x max_input_bytes "
        "downloading (one full edit); keep this at least that large.",
        lo=1024 * 1024,
        section="images",
    )

    # budgets (money in dollars in the file; "unlimited" switches a cap off)
    user_daily_cap: int | None = _opt(
        "1.00",
        "Spend cap per member per UTC day; a ceiling: a server's /flexadmin can lower it, "
        "not raise it.",
        money=True,
        section="budgets",
        admin_visible=True,
    )
    user_monthly_cap: int | None = _opt(
        "10.00",
        "Spend cap per member per UTC month; a ceiling: a server's /flexadmin can lower it, "
        "not raise it.",
        money=True,
        section="budgets",
        admin_visible=True,
    )
    guild_monthly_cap: int | None = _opt(
        "50.00",
        "Spend cap per server per UTC month; a ceiling: a server's /flexadmin can lower it, "
        "not raise it.",
        money=True,
        section="budgets",
        admin_visible=True,
    )
    global_monthly_cap: int | None = _opt(
        "100.00",
        "Spend cap for the whole bot per UTC month (protects the owner's fal bill); "
        "no server's admins can change it.",
        money=True,
        section="budgets",
    )
    max_credit_grant: int = _opt(
        "20.00",
        "Most credit a server's admins may grant one member in one UTC month (the total of "
        "their /flexadmin grants); a ceiling: a server can grant less, never more.",
        money=True,
        section="budgets",
        admin_visible=True,
    )

    # queue
    fal_concurrency: int = _opt(
        4, "fal jobs running at once, bot-wide.", lo=1, hi=64, section="queue"
    )
    user_max_queued: int = _opt(
        10,
        "Jobs one member may have waiting; a ceiling: a server's /flexadmin can lower it, "
        "not raise it.",
        lo=1,
        hi=1000,
        section="queue",
        admin_visible=True,
    )
    user_max_running: int = _opt(
        1,
        "Jobs one member may have running; a ceiling: a server's /flexadmin can lower it, "
        "not raise it.",
        lo=1,
        hi=64,
        section="queue",
        admin_visible=True,
    )
    user_cooldown_seconds: float = _opt(
        0.0,
        "Minimum time between a member's submissions; a floor: a server's /flexadmin can "
        "lengthen it, not shorten it.",
        lo=0,
        hi=86400,
        section="queue",
        admin_visible=True,
    )
    progress_interval_seconds: float = _opt(
        3.0,
        "Shortest time between two progress updates of one job.",
        lo=0,
        hi=600,
        section="queue",
    )
    poll_interval_seconds: float = _opt(
        0.5,
        "First delay between fal status polls (grows to poll_max_interval_seconds).",
        lo=0,
        hi=60,
        section="queue",
    )
    poll_max_interval_seconds: float = _opt(
        5.0, "Longest delay between fal status polls.", lo=0, hi=300, section="queue"
    )
    blob_retention_days: float = _opt(
        30.0,
        "Images older than this are deleted (parameters and hashes stay).",
        lo=0,
        section="queue",
        admin_visible=True,
    )
    shutdown_timeout_seconds: float = _opt(
        20.0, "How long shutdown waits for in-flight work.", lo=0, hi=600, section="queue"
    )

    # secrets: never from the TOML file
    discord_token: Secret | None = field(default=None, metadata={"secret": True})
    fal_key: Secret | None = field(default=None, metadata={"secret": True})
    sources: Mapping[str, str] = field(default_factory=dict, metadata={"internal": True})
    config_path: Path | None = field(default=None, metadata={"internal": True})

    @property
    def database_path(self) -> Path:
        return self.data_dir / "flexbot.db"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def describe(self) -> list[tuple[str, str, str]]:
        """(key, shown value, source) for every setting; secrets shown only as set/unset.

        For the bot's operator (``flexbot doctor``); a server's admins get
        :meth:`describe_for_admins`.
        """
        rows = []
        for f in fields(self):
            if f.metadata.get("internal"):
                continue
            shown = _show(f, getattr(self, f.name))
            rows.append((f.name, shown, self.sources.get(f.name, "default")))
        return rows

    def describe_for_admins(self) -> list[tuple[str, str, str]]:
        """(key, shown value, source) of the settings a server's admins may see.

        Only the fields marked ``admin_visible`` (limits, pricing, image bounds): never secrets,
        paths, URLs, hosts or other servers' ids. The source says only default, config file or
        environment, because the operator's file path is not the admins' business either.
        """
        rows = []
        for f in setting_fields():
            if not f.metadata["admin_visible"]:
                continue
            source = self.sources.get(f.name, "default")
            if source.startswith(ENV_PREFIX):
                source = "environment"
            elif source != "default":
                source = "config file"
            rows.append((f.name, _show(f, getattr(self, f.name)), source))
        return rows


def _show(f: Any, value: Any) -> str:
    if f.metadata.get("secret"):
        return "set" if value else "not set"
    if f.metadata.get("money"):
        return UNLIMITED if value is None else usd(value)
    return str(value)


def setting_fields() -> list[Any]:
    """The documented settings, in declaration order."""
    return [
        f
        for f in fields(Settings)
        if not f.metadata.get("internal") and not f.metadata.get("secret")
    ]


def _allowed(f: Any, kind: Any) -> str:
    meta = f.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if meta.get("money"):
        allowed = 'a dollar amount >= 0 such as "1.50"'
        return allowed + (f' or "{UNLIMITED}"' if _base_type(f)[1] else "")
    base = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "text",
        Path: "a path",
    }.get(kind, "a list of integers")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{base} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{base} >= {lo:g}"
    return base


def _base_type(f: Any) -> tuple[Any, bool]:
    hint = typing.get_type_hints(Settings)[f.name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _convert(f: Any, raw: Any, source: str, from_env: bool) -> Any:
    kind, optional = _base_type(f)
    meta = f.metadata

    def bad() -> ConfigError:
        return ConfigError(f.name, source, _echo(f.name, raw), _allowed(f, kind))

    if meta.get("money"):
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
    if optional and (raw is None or raw == ""):
        return None
    value: Any
    try:
        if kind is bool:
            if isinstance(raw, bool):
                value = raw
            elif from_env and str(raw).lower() in ("1", "true", "yes", "on"):
                value = True
            elif from_env and str(raw).lower() in ("0", "false", "no", "off"):
                value = False
            else:
                raise bad()
        elif kind is int:
            if isinstance(raw, (bool, float)):
                raise bad()
            value = int(str(raw).replace("_", "")) if from_env else raw
            if not isinstance(value, int):
                raise bad()
        elif kind is float:
            if isinstance(raw, bool):
                raise bad()
            value = float(Decimal(str(raw))) if from_env else raw
            if not isinstance(value, int | float):
                raise bad()
            value = float(value)
        elif kind is Path:
            if not isinstance(raw, str) or not raw:
                raise bad()
            value = Path(raw).expanduser()
        elif kind is str:
            if not isinstance(raw, str):
                raise bad()
            value = raw.strip()
            if meta.get("choices"):
                value = value.upper() if value.upper() in meta["choices"] else value
                if value not in meta["choices"]:
                    raise bad()
        else:  # tuple[int, ...]
            items = [s for s in str(raw).replace(",", " ").split()] if from_env else raw
            if not isinstance(items, list | tuple):
                raise bad()
            value = tuple(int(x) for x in items)
    except (ValueError, InvalidOperation, TypeError):
        raise bad() from None
    lo, hi = meta.get("lo"), meta.get("hi")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and ((lo is not None and value < lo) or (hi is not None and value > hi))
    ):
        raise bad()
    return value


def _read_toml(path: Path, key: str, source: str) -> dict[str, Any]:
    shown = _echo(key, str(path))
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
    elif _secret_like(key):
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


def _file_settings(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The settings in a config file, each checked to sit in its own [section] table.

    The example file is the format: a flat key, a key in another section or an unknown table
    is refused like any bad value, so a setting never silently does nothing.
    """
    known = {f.name: f for f in setting_fields()}
    sections = list(dict.fromkeys(f.metadata["section"] for f in known.values()))
    found: dict[str, Any] = {}
    for top, value in data.items():
        if top in known:
            home = known[top].metadata["section"]
            raise ConfigError(
                top, f"{path} (top level)", _echo(top, value), f"only inside its [{home}] table"
            )
        if top not in sections or not isinstance(value, dict):
            if _secret_like(top):
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
            home = known[key].metadata["section"]
            if home != top:
                raise ConfigError(
                    key, f"{path} [{top}]", _echo(key, raw), f"only in [{home}], not [{top}]"
                )
            found[key] = raw
    return found


def load_settings(
    config_path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from defaults, the TOML file and the environment; raise ConfigError."""
    env = dict(os.environ if environ is None else environ)
    known = {f.name: f for f in setting_fields()}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    for f in setting_fields():
        default = f.default if f.default is not MISSING else f.default_factory()
        values[f.name] = (
            _convert(f, default, "default", from_env=False) if f.metadata.get("money") else default
        )
        sources[f.name] = "default"

    path: Path | None
    if config_path is not None:
        path, path_source, must_exist = Path(config_path), "--config", True
    elif env.get(ENV_PREFIX + "CONFIG"):
        path, path_source, must_exist = Path(env[ENV_PREFIX + "CONFIG"]), "FLEXBOT_CONFIG", True
    else:
        path, path_source, must_exist = DEFAULT_CONFIG_PATH, "default", False
    if path is not None and (must_exist or path.exists()):
        data = _file_settings(_read_toml(path, "config", path_source), path)
        for key, raw in data.items():
            values[key] = _convert(known[key], raw, str(path), from_env=False)
            sources[key] = str(path)
    else:
        path = None

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in known:
            raise _unknown(key, name, known)
        values[key] = _convert(known[key], raw, name, from_env=True)
        sources[key] = name

    secrets: dict[str, Secret | None] = {"discord_token": None, "fal_key": None}
    secrets_file: Path | None = values.get("secrets_file")
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

    if values["poll_max_interval_seconds"] < values["poll_interval_seconds"]:
        key = "poll_max_interval_seconds"
        raise ConfigError(
            key,
            sources[key],
            values[key],
            f"a number >= poll_interval_seconds ({values['poll_interval_seconds']})",
        )

    return Settings(
        **values,
        discord_token=secrets["discord_token"],
        fal_key=secrets["fal_key"],
        sources=sources,
        config_path=path,
    )


def render_example() -> str:
    """The text of config/flexbot.example.toml: every setting, commented, with its default."""
    lines = [
        "# Flexbot settings. Copy to config/flexbot.toml (or point FLEXBOT_CONFIG / --config at",
        "# your copy) and uncomment what you change. Each key stays in its [section] table as",
        "# below (a key outside it is refused). Every key can also be set in the environment",
        "# as FLEXBOT_<KEY> (upper case, no section), which wins over this file.",
        "# Secrets never go here: DISCORD_TOKEN and FAL_KEY come from the environment or",
        "# from the file named by secrets_file.",
        '# Money is in US dollars; "unlimited" switches a cap off.',
    ]
    section = None
    for f in setting_fields():
        if f.metadata["section"] != section:
            section = f.metadata["section"]
            lines += ["", f"[{section}]"]
        default = f.default if f.default is not MISSING else f.default_factory()
        lines.append(f"# {f.metadata['doc']}")
        lines.append(f"# {f.name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '""  # not set'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
