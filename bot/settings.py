"""Typed settings: defaults < TOML file < ``FLEXBOT_*`` environment; secrets: env or secrets file.

Every setting is a field of :class:`Settings` whose metadata carries its documentation and bounds,
so the loader, the error messages, ``config/flexbot.example.toml`` and ``/flexadmin settings`` all
come from one table. :func:`load_settings` records where each value came from. The table is read
by :mod:`bot.settings_load` (files, environment, secrets), :mod:`bot.settings_values` (one value)
and :mod:`bot.settings_example` (the example file), which are handed it and never import this.

The file's ``[section]`` tables are part of the format: a key outside its own table is refused.
Attribute access stays flat (``settings.fal_app_id``), as do ``FLEXBOT_<KEY>`` variables. An
error never repeats a value that may be a secret (see :func:`bot.settings_values.echo`), and
``admin_visible`` marks the few settings a server's admins may read
(:meth:`Settings.describe_for_admins`).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.errors import ConfigError, UserError
from bot.model import usd
from bot.prompt_filter import check_pattern, check_term
from bot.secret import Secret
from bot.settings_example import example_text
from bot.settings_load import ENV_PREFIX, read_settings
from bot.settings_values import UNLIMITED as UNLIMITED  # re-exported: cogs word caps with it
from bot.settings_values import Option


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
        "A TOML file, outside the repository, holding DISCORD_TOKEN, FAL_KEY and/or GALLERY_SECRET "
        "(the environment wins over it).",
    )

    database_url: str | None = _opt(
        None,
        "Where the database lives: unset = <data_dir>/flexbot.db (SQLite, one process); a file "
        "path or sqlite:///path; or postgresql://user@host/db for several processes (keep the "
        "password out of it: PGPASSWORD or a ~/.pgpass file).",
        section="database",
    )
    worker_name: str | None = _opt(
        None,
        "This process's name in the shared queue (PostgreSQL); unset = host name and pid.",
        section="database",
    )
    worker_lease_seconds: float = _opt(
        30.0,
        "PostgreSQL: how long a process's claim on a job lasts without a heartbeat; a job of a "
        "process that died is taken over by another after this long (heartbeats every third "
        "of it).",
        lo=3,
        hi=3600,
        section="database",
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
    shard_count: int | None = _opt(
        None,
        "Discord shards the whole bot runs (required past 2,500 servers); unset = one process "
        "runs every shard Discord recommends.",
        lo=1,
        hi=1_000_000,
        section="discord",
    )
    shard_ids: tuple[int, ...] = _opt(
        [],
        "The shards this process runs (each below shard_count); empty = all of them.",
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
    fal_api_url: str = _opt(
        "https://api.fal.ai",
        "fal Platform API base URL (the request list used to reconcile what fal billed).",
        section="fal",
    )
    fal_result_hosts: str = _opt(
        "fal.media",
        "Hosts fal's output images may be downloaded from (https only), comma-separated; each "
        "also covers its subdomains, so fal.media allows v3.fal.media and v3b.fal.media.",
        section="fal",
    )
    fal_app_id: str = _opt("fal-ai/flux-2-flex/edit", "fal endpoint id.", section="fal")
    fal_status_stream: bool = _opt(
        True,
        "Follow each job with fal's status stream (server-sent events); Flexbot polls the "
        "status instead when the stream breaks or ends early.",
        section="fal",
    )
    fal_unsure_grace_seconds: float = _opt(
        120.0,
        "When a submit's answer is lost, how long the job is looked for in fal's request list "
        "(which may lag) before it is sent again once or failed with its money released.",
        lo=0,
        hi=3600,
        section="fal",
    )
    fal_unsure_interval_seconds: float = _opt(
        10.0,
        "Seconds between two looks at fal's request list for such a job.",
        lo=0,
        hi=600,
        section="fal",
    )
    fal_unsure_margin_seconds: float = _opt(
        60.0,
        "Seconds added on each side of the submit's time window when looking for it in fal's "
        "request list (clocks differ).",
        lo=0,
        hi=3600,
        section="fal",
    )
    fal_http_timeout_seconds: float = _opt(
        30.0, "Timeout of one HTTP call to fal.", lo=1, hi=600, section="fal"
    )
    fal_max_attempts: int = _opt(
        5, "Attempts per fal call on 429/5xx/connection errors.", lo=1, hi=20, section="fal"
    )
    fal_job_timeout_seconds: float = _opt(
        900.0, "Give up on a fal job after this long.", lo=10, hi=86400, section="fal"
    )
    reconcile_interval_minutes: int = _opt(
        60,
        "Minutes between two checks of the ledger against fal's request list (this UTC month "
        "so far; results in /metrics and /flexadmin report); 0 = off. Needs a fal key that can "
        "read the request list.",
        lo=0,
        hi=10080,
        section="fal",
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
        64,
        "Jobs one member may have running; a ceiling: a server's /flexadmin can lower it, "
        "not raise it. The queue is fair without it, so 64 (the most fal_concurrency allows) "
        "lets a lone member use every free slot.",
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

    # moderation
    blocked_terms: tuple[str, ...] = _opt(
        [],
        "Words and phrases refused in prompts on every server, on top of each server's own "
        "/flexadmin filter list (matched on whole words, look-alike spellings included). In the "
        "environment: a JSON list, or terms separated by commas.",
        section="moderation",
    )
    blocked_patterns: tuple[str, ...] = _opt(
        [],
        "RE2 patterns (linear time: no back-references or look-around) refused in prompts on "
        "every server; tried on the case-folded prompt. In the environment: a JSON list.",
        section="moderation",
    )

    # gallery (the read-only web gallery, bot/gallery/)
    gallery_host: str = _opt(
        "127.0.0.1",
        "Address the web gallery listens on; keep it local and put a TLS reverse proxy in "
        "front (README, Web gallery).",
        section="gallery",
    )
    gallery_port: int = _opt(
        0,
        "Port of the web gallery; 0 = off. Needs GALLERY_SECRET.",
        lo=0,
        hi=65535,
        section="gallery",
    )
    public_url: str | None = _opt(
        None,
        "The gallery's address as members reach it (https://gallery.example.org, through the "
        "reverse proxy); /gallery links start with it. Unset = http://gallery_host:gallery_port.",
        section="gallery",
    )
    gallery_link_days: float = _opt(
        7.0,
        "How long a private gallery link from /gallery stays valid, in days.",
        lo=0.01,
        hi=365,
        section="gallery",
    )

    # secrets: never from the TOML file
    discord_token: Secret | None = field(default=None, metadata={"secret": True})
    fal_key: Secret | None = field(default=None, metadata={"secret": True})
    #: Signs private gallery links (HMAC-SHA256); GALLERY_SECRET in the environment or file.
    gallery_secret: Secret | None = field(default=None, metadata={"secret": True})
    sources: Mapping[str, str] = field(default_factory=dict, metadata={"internal": True})
    config_path: Path | None = field(default=None, metadata={"internal": True})

    def __post_init__(self) -> None:
        self._check_filters()
        if self.database_url is not None and not _known_database(self.database_url):
            raise ConfigError(
                "database_url",
                self.sources.get("database_url", "default"),
                redact_url(self.database_url),
                "a file path, sqlite:///path or postgresql://user@host/db",
            )
        bad = [n for n in self.shard_ids if self.shard_count is None or n >= self.shard_count]
        if bad:
            raise ConfigError(
                "shard_ids",
                self.sources.get("shard_ids", "default"),
                list(self.shard_ids),
                "shard numbers below shard_count (which must be set)",
            )

    def _check_filters(self) -> None:
        """Every bot-wide term can match and every pattern compiles under RE2's bounds."""
        for key, check in (("blocked_terms", check_term), ("blocked_patterns", check_pattern)):
            for item in getattr(self, key):
                try:
                    check(item)
                except UserError as exc:
                    raise ConfigError(
                        key, self.sources.get(key, "default"), item, exc.message
                    ) from None

    @property
    def postgres(self) -> bool:
        """True when the database is a PostgreSQL server several processes may share."""
        return self.database_url is not None and self.database_url.startswith(_POSTGRES)

    @property
    def database_path(self) -> Path:
        """The SQLite file (meaningless when :attr:`postgres`)."""
        url = self.database_url
        if url is None:
            return self.data_dir / "flexbot.db"
        return Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)

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


_POSTGRES = ("postgresql://", "postgres://")


def _known_database(url: str) -> bool:
    return url.startswith(_POSTGRES) or "://" not in url or url.startswith("sqlite:///")


def redact_url(url: str) -> str:
    """A database URL with any password in it replaced, fit for logs and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _show(f: Any, value: Any) -> str:
    if f.metadata.get("secret"):
        return "set" if value else "not set"
    if f.name == "database_url" and value is not None:
        return redact_url(value)
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


def setting_options() -> list[Option]:
    """The documented settings with their resolved types, as the loader reads them."""
    hints = typing.get_type_hints(Settings)
    return [Option.of(f, hints[f.name]) for f in setting_fields()]


def load_settings(
    config_path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from defaults, the TOML file and the environment; raise ConfigError."""
    loaded = read_settings(setting_options(), config_path, environ)
    return Settings(
        **loaded.values,
        discord_token=loaded.secrets["discord_token"],
        fal_key=loaded.secrets["fal_key"],
        gallery_secret=loaded.secrets["gallery_secret"],
        sources=loaded.sources,
        config_path=loaded.config_path,
    )


def render_example() -> str:
    """The text of config/flexbot.example.toml: every setting, commented, with its default."""
    return example_text(setting_options())
