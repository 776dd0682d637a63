"""The example config file (``flexbot config-example``), written from the settings table.

``config/flexbot.example.toml`` is this text; a test keeps the two the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.settings_values import Option


def example_text(options: Sequence[Option]) -> str:
    """The text of config/flexbot.example.toml: every option, commented, with its default."""
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
    for option in options:
        if option.meta["section"] != section:
            section = option.meta["section"]
            lines += ["", f"[{section}]"]
        lines.append(f"# {option.meta['doc']}")
        lines.append(f"# {option.name} = {_toml_value(option.default())}")
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
