"""Discord's rules for command localisations, checked on registration payloads.

The same checks run on the payloads built from the real command tree (unit) and on the bulk
overwrite the fake Discord recorded (e2e). Discord's rule for chat-input names and option names
(localised or not): ``^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$`` and lower case where the
script has case; context-menu names are 1..32 of anything; descriptions and choice names 1..100.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from bot.core import FalBackend, open_core
from bot.i18n import DISCORD_LOCALES
from cogs.client import EXTENSIONS, FlexBot
from cogs.translator import FlexTranslator
from tests.support.engine_kit import make_settings

Json = dict[str, Any]
#: The locales Flexbot ships command localisations for (Discord's codes).
SHIPPED_LOCALES = tuple(DISCORD_LOCALES)
CHAT_INPUT = 1
SUB_TYPES = (1, 2)  # subcommand, subcommand group


def _allowed_char(ch: str) -> bool:
    if ch in "-_":
        return True
    if unicodedata.category(ch)[0] in "LN":
        return True
    code = ord(ch)
    # \p{sc=Deva} and \p{sc=Thai}: their vowel signs and marks are not letters (Mn/Mc).
    return 0x0900 <= code <= 0x097F or 0xA8E0 <= code <= 0xA8FF or 0x0E00 <= code <= 0x0E7F


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid chat-input command or option name, or None."""
    if not 1 <= len(name) <= 32:
        return f"{len(name)} characters (1..32)"
    bad = [ch for ch in name if not _allowed_char(ch)]
    if bad:
        return f"characters not allowed: {''.join(bad)!r}"
    if name != name.lower():
        return "not lower case"
    return None


def _strings(cmd: Json, where: str, chat_input: bool) -> Iterator[tuple[str, str, str, Json]]:
    """(path, field, English, localisations) for every string of a command or option."""
    yield where, "name", cmd["name"], cmd.get("name_localizations") or {}
    if chat_input:
        yield where, "description", cmd["description"], cmd.get("description_localizations") or {}
    for choice in cmd.get("choices") or []:
        path = f"{where} choice {choice['name']!r}"
        yield path, "choice", choice["name"], choice.get("name_localizations") or {}
    for opt in cmd.get("options") or []:
        yield from _strings(opt, f"{where} {opt['name']}", chat_input)


def problems(payloads: list[Json], locales: tuple[str, ...] = SHIPPED_LOCALES) -> list[str]:
    """Every string without a localisation in a shipped locale, and every rule a value breaks."""
    found: list[str] = []
    for cmd in payloads:
        chat_input = cmd.get("type", CHAT_INPUT) == CHAT_INPUT
        for path, field, english, localised in _strings(cmd, f"/{cmd['name']}", chat_input):
            for locale in locales:
                text = localised.get(locale)
                if not text:
                    found.append(f"{path} {field}: no {locale} localisation of {english!r}")
                    continue
                if field == "name" and chat_input:
                    why = name_problem(text)
                elif field == "name":
                    why = None if 1 <= len(text) <= 32 else f"{len(text)} characters (1..32)"
                else:
                    why = None if 1 <= len(text) <= 100 else f"{len(text)} characters (1..100)"
                if why:
                    found.append(f"{path} {field} {locale} {text!r}: {why}")
        found += _clashes(cmd, f"/{cmd['name']}", locales)
    for ctype in {c.get("type", CHAT_INPUT) for c in payloads}:
        same_type = [c for c in payloads if c.get("type", CHAT_INPUT) == ctype]
        found += _clashes(
            {"options": same_type}, f"commands of type {ctype}", locales, nested=False
        )
    return found


def _clashes(cmd: Json, where: str, locales: tuple[str, ...], *, nested: bool = True) -> list[str]:
    """Sibling options or subcommands sharing a localised name (Discord refuses the command)."""
    found: list[str] = []
    options = cmd.get("options") or []
    for locale in locales:
        names = [(o.get("name_localizations") or {}).get(locale, o["name"]) for o in options]
        clashing = sorted({n for n in names if names.count(n) > 1})
        if clashing:
            found.append(f"{where} options {locale}: the same name twice: {clashing}")
    for opt in options if nested else ():
        if opt.get("type") in SUB_TYPES:
            found += _clashes(opt, f"{where} {opt['name']}", locales)
    return found


@contextlib.asynccontextmanager
async def built_bot(data_dir: Path) -> AsyncIterator[FlexBot]:
    """The bot with its cogs loaded and its translator set, as ``setup_hook`` builds it, without
    connecting to Discord or starting the engine."""
    settings = make_settings(data_dir)
    async with open_core(settings, fal=FalBackend.FAKE, reconcile=False) as core:
        bot = FlexBot(core)
        await bot.tree.set_translator(FlexTranslator())
        for name in EXTENSIONS:
            await bot.load_extension(name)
        try:
            yield bot
        finally:
            await bot.tree.set_translator(None)


async def registration_payloads(bot: FlexBot) -> list[Json]:
    """What ``tree.sync()`` would PUT: every global command with its localisations."""
    translator = bot.tree.translator
    assert translator is not None
    commands = bot.tree.get_commands()
    return [await c.get_translated_payload(bot.tree, translator) for c in commands]
