"""Flexbot in the members' language: message catalogues and locale-aware money, dates, durations.

Messages are gettext catalogues (``bot/locales/<lang>/LC_MESSAGES/flexbot.po``), read once with
Babel's ``read_po`` (no compile step). The msgid is the English text with ``{named}``
placeholders, so English needs no lookup and is the fallback for any message a catalogue lacks.
Command names and descriptions are looked up with a ``msgctxt`` (``name``, ``choice``) so a name
such as ``queue`` never collides with a sentence.

Parameters are formatted for the locale at the last moment: :class:`Money` (micro-dollars, as
USD), :class:`Duration` (seconds), :class:`Moment` (epoch seconds, shown in UTC) and
:class:`Text` (a nested message, translated in the same language); anything else is ``str()``.

Locales arrive as Discord spells them (``pt-BR``, ``es-419``, ``en-US``); :func:`language_of`
maps them to a shipped language, English when none fits.
"""

from __future__ import annotations

import functools
import io
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources

from babel.dates import format_date, format_time, format_timedelta, get_datetime_format
from babel.lists import format_list
from babel.messages.pofile import read_po
from babel.numbers import format_currency

from bot.model import usd

log = logging.getLogger(__name__)

ENGLISH = "en"
#: The shipped translations (English is the msgids), as Babel locale ids.
TRANSLATIONS = ("de", "fr", "es", "pt_BR", "ja")
LANGUAGES = (ENGLISH, *TRANSLATIONS)
#: Each language's own name, for the /flexadmin language choices.
NATIVE_NAMES = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "pt_BR": "Português do Brasil",
    "ja": "日本語",
}
#: Discord locales that get command localisations, and the language each one reads.
DISCORD_LOCALES = {
    "de": "de",
    "fr": "fr",
    "es-ES": "es",
    "es-419": "es",
    "pt-BR": "pt_BR",
    "ja": "ja",
}
#: Babel's locale for formatting English numbers and dates.
_BABEL_LOCALE = {ENGLISH: "en_US"}
DOMAIN = "flexbot"
MICROS_PER_USD = 1_000_000


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in micro-dollars, shown as US dollars in the reader's number format."""

    micros: int


@dataclass(frozen=True, slots=True)
class Duration:
    """A span in seconds, shown in words (``2 hours and 5 minutes``, ``5 Minuten``)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Moment:
    """An instant (epoch seconds), shown as a date and time in UTC."""

    epoch: float


@dataclass(frozen=True, slots=True)
class Text:
    """A message inside a message, translated into the same language."""

    msgid: str
    params: Mapping[str, object] = field(default_factory=dict)


def language_of(locale: str | None) -> str:
    """The shipped language for a Discord (``pt-BR``) or Babel (``pt_BR``) locale; else English."""
    if not locale:
        return ENGLISH
    code = str(locale).replace("-", "_")
    if code in LANGUAGES:
        return code
    base = code.split("_", 1)[0]
    if base == "pt":
        return "pt_BR"  # the one Portuguese we ship
    return base if base in LANGUAGES else ENGLISH


def placeholders(text: str) -> set[str]:
    """The ``{named}`` fields of a message (what a translation must keep)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def format_money(micros: int, language: str) -> str:
    """``$1.50``, ``1,50 $``, ``US$1.50``: every digit kept, at least cents."""
    if language == ENGLISH:
        return usd(micros)
    amount = Decimal(micros) / MICROS_PER_USD
    return format_currency(amount, "USD", locale=_babel(language), decimal_quantization=False)


def format_duration(seconds: float, language: str) -> str:
    """A wait in words, to the minute under two days (English keeps its short ``5 min``)."""
    locale = _babel(language)
    whole = max(0, int(seconds))
    if language == ENGLISH:
        return _english_duration(whole)

    def unit(**span: int) -> str:
        # Exact spans of one unit: threshold 1 keeps Babel from rounding up to the next unit.
        return format_timedelta(timedelta(**span), threshold=1, locale=locale)

    if whole < 60:
        return unit(seconds=whole)
    minutes = whole // 60
    if minutes < 60:
        return unit(minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        if not minutes:
            return unit(hours=hours)
        return format_list([unit(hours=hours), unit(minutes=minutes)], locale=locale)
    return unit(days=hours // 24)


def format_moment(epoch: float, language: str) -> str:
    """A date and time in UTC in the reader's format (``2 janv. 2024, 00:00 UTC``)."""
    locale = _babel(language)
    at = datetime.fromtimestamp(epoch, UTC)
    if language == ENGLISH:
        return f"{at:%Y-%m-%d %H:%M} UTC"
    day = format_date(at, "medium", locale=locale)
    time_of_day = format_time(at, "short", tzinfo=UTC, locale=locale)
    pattern = str(get_datetime_format("medium", locale=locale))  # "{1}, {0}": date, time
    return pattern.replace("{1}", day).replace("{0}", time_of_day) + " UTC"


class Catalogues:
    """Every shipped translation, by language, then by (context, msgid)."""

    def __init__(self, messages: Mapping[str, Mapping[tuple[str | None, str], str]]) -> None:
        self.messages = messages

    def lookup(self, language: str, msgid: str, context: str | None = None) -> str | None:
        """The translation, or None when the language lacks it (English never has one)."""
        return self.messages.get(language, {}).get((context, msgid))

    def translate(self, locale: str | None, msgid: str, /, **params: object) -> str:
        """``msgid`` in ``locale``'s language with its parameters formatted for it."""
        language = language_of(locale)
        text = self.lookup(language, msgid) or msgid
        if not params:
            return text  # a fixed sentence: nothing to fill in (and any brace in it is text)
        shown = {k: self._format(v, language) for k, v in params.items()}
        try:
            return text.format_map(shown)
        except (KeyError, IndexError, ValueError):
            # A broken translation must not hide the message: the unit test keeps this rare.
            log.warning("translation of %r into %s does not format; using English", msgid, language)
        try:
            return msgid.format_map(shown)
        except (KeyError, IndexError, ValueError):
            return msgid

    def _format(self, value: object, language: str) -> str:
        if isinstance(value, Money):
            return format_money(value.micros, language)
        if isinstance(value, Duration):
            return format_duration(value.seconds, language)
        if isinstance(value, Moment):
            return format_moment(value.epoch, language)
        if isinstance(value, Text):
            return self.translate(language, value.msgid, **value.params)
        return str(value)


_ENGLISH_ONLY = Catalogues({})


def read_catalogue(text: str | bytes, language: str) -> dict[tuple[str | None, str], str]:
    """A ``.po`` file's translations by (context, msgid); untranslated and fuzzy ones left out."""
    data = text.encode() if isinstance(text, str) else text
    catalog = read_po(io.BytesIO(data), locale=language, domain=DOMAIN)
    found: dict[tuple[str | None, str], str] = {}
    for message in catalog:
        if not message.id or message.fuzzy or not isinstance(message.id, str):
            continue
        if isinstance(message.string, str) and message.string:
            found[(message.context, message.id)] = message.string
    return found


def catalogue_text(language: str) -> str:
    """The shipped ``.po`` file of ``language``."""
    path = resources.files("bot") / "locales" / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    return path.read_text(encoding="utf-8")


@functools.cache
def catalogues() -> Catalogues:
    """The shipped catalogues, read once (the first call, at start-up) and never changed."""
    return Catalogues({lang: read_catalogue(catalogue_text(lang), lang) for lang in TRANSLATIONS})


def translate(locale: str | None, msgid: str, /, **params: object) -> str:
    """``msgid`` (English with ``{named}`` placeholders) in the language of ``locale``."""
    if language_of(locale) == ENGLISH:
        return _ENGLISH_ONLY.translate(ENGLISH, msgid, **params)  # needs no catalogue
    return catalogues().translate(locale, msgid, **params)


def _english_duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _babel(language: str) -> str:
    return _BABEL_LOCALE.get(language, language)
