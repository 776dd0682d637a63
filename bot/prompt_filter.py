"""Blocked words and patterns in prompts (issue 14), as pure functions over normalised text.

A member who wants a blocked word through writes it so that it *looks* the same and compares
different: "Ｂlocked" (fullwidth), "b\u200blocked" (a zero-width space), "blоcked" (a Cyrillic
о), "bl0cked" (a digit). Both the admins' terms and the prompt are brought to one form first:

1. ``fold``: Unicode NFKC (fullwidth, circled and mathematical letters become plain ones),
   case folding, invisible characters (format ``Cf`` and combining marks, so accents too)
   removed, and the Cyrillic and Greek letters that look like Latin ones replaced by them.
2. ``skeleton``: the folded text with digits and symbols that stand for letters replaced (0→o,
   1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s; "l" becomes "i" too, since "1" stands for either) and
   every run of anything but letters and digits made one space.

A word or phrase matches only whole words of the skeleton (" class " holds no " ass "). A
pattern is an RE2 expression: RE2 runs in time linear in the prompt's length whatever the
pattern (no backtracking, so ``(a+)+$`` cannot stall the bot), and refuses what it cannot run
that way (back-references, look-around). A pattern is tried on the folded text and on the
skeleton, so one written in plain letters catches the disguised spellings too.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import re2

from bot.errors import UserError

Kind = Literal["word", "pattern"]
KINDS: tuple[Kind, ...] = ("word", "pattern")

MAX_TERM_CHARS = 100
MAX_PATTERN_CHARS = 200
#: Memory RE2 may use for one compiled pattern: a pattern that needs more is refused when added.
PATTERN_MAX_MEM = 1 << 20

# Member- and admin-facing words: templates with named placeholders, so they can move into
# message catalogues as they are.
BLOCKED_HERE = (
    "Your prompt contains “{term}”, which this server does not allow. Rephrase it and try again."
)
BLOCKED_EVERYWHERE = (
    "Your prompt contains “{term}”, which Flexbot does not allow. Rephrase it and try again."
)
TERM_EMPTY = "A blocked word needs at least one letter or digit."
TERM_TOO_LONG = "A blocked word or phrase is at most {max} characters."
PATTERN_TOO_LONG = "A pattern is at most {max} characters."
PATTERN_REFUSED = (
    "That pattern cannot be used: {reason}. Patterns use RE2 syntax (no back-references or "
    "look-around), so they always run in time linear in the prompt."
)

#: Cyrillic and Greek letters (after case folding) drawn like a Latin letter.
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ь": "b", "г": "r",
    "п": "n", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x",
    "ω": "w", "ϲ": "c",
    # Latin look-alikes NFKC keeps
    "ı": "i", "ȷ": "j", "ɑ": "a", "ℓ": "l",
}  # fmt: skip
#: Digits and symbols written for letters, and "l" with "i" (both are "1").
_STAND_INS = {
    "0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
}  # fmt: skip
_FOLD_TABLE = str.maketrans(_HOMOGLYPHS)
_SKELETON_TABLE = str.maketrans(_STAND_INS)


@dataclass(frozen=True, slots=True)
class Term:
    """One blocked word/phrase or pattern as an admin (or the operator) wrote it."""

    kind: Kind
    text: str
    everywhere: bool = False  # from the bot-wide settings, not this server's list


@dataclass(frozen=True, slots=True)
class Hit:
    """Why a prompt is refused: the term, and what of the prompt matched it."""

    term: Term
    matched: str

    @property
    def shown(self) -> str:
        """What the member is told to rephrase: the word, or the text a pattern matched."""
        return (self.term.text if self.term.kind == "word" else self.matched)[:MAX_TERM_CHARS]

    @property
    def template(self) -> str:
        return BLOCKED_EVERYWHERE if self.term.everywhere else BLOCKED_HERE

    def message(self) -> str:
        """The member's private refusal, naming what to rephrase."""
        return self.template.format(term=self.shown)


class PromptBlocked(UserError):
    """A prompt that holds a blocked term; ``hit`` says which."""

    def __init__(self, hit: Hit) -> None:
        # The template and its values let a front end word the refusal in the member's language.
        super().__init__(
            hit.message(), limit="prompt_filter", template=hit.template, params={"term": hit.shown}
        )
        self.hit = hit


def fold(text: str) -> str:
    """NFKC, case-folded, invisible characters and accents dropped, homoglyphs made Latin."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = (
        ch
        for ch in unicodedata.normalize("NFKD", text)
        if unicodedata.category(ch) not in ("Cf", "Mn", "Me")
    )
    return unicodedata.normalize("NFC", "".join(kept)).translate(_FOLD_TABLE)


def skeleton(text: str) -> str:
    """The folded text with stand-ins replaced and words separated by single spaces."""
    swapped = fold(text).translate(_SKELETON_TABLE)
    return " ".join("".join(ch if ch.isalnum() else " " for ch in swapped).split())


def check_term(text: str) -> str:
    """A word or phrase an admin adds, trimmed; UserError when it cannot match anything."""
    cleaned = " ".join(text.split())
    if len(cleaned) > MAX_TERM_CHARS:
        raise UserError(TERM_TOO_LONG.format(max=MAX_TERM_CHARS), limit="prompt_filter")
    if not skeleton(cleaned):
        raise UserError(TERM_EMPTY, limit="prompt_filter")
    return cleaned


def check_pattern(text: str) -> str:
    """A pattern an admin adds: bounded, and one RE2 compiles (so it runs in linear time)."""
    pattern = text.strip()
    if not pattern:
        raise UserError(PATTERN_REFUSED.format(reason="it is empty"), limit="prompt_filter")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UserError(PATTERN_TOO_LONG.format(max=MAX_PATTERN_CHARS), limit="prompt_filter")
    try:
        compiled_pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise UserError(PATTERN_REFUSED.format(reason=reason), limit="prompt_filter") from None
    return pattern


@functools.lru_cache(maxsize=1024)
def compiled_pattern(pattern: str) -> Any:
    """The RE2 program of a pattern (cached: every admission of a server uses the same ones)."""
    options = re2.Options()
    options.max_mem = PATTERN_MAX_MEM
    options.log_errors = False
    options.case_sensitive = False  # the text is case-folded; the pattern is left as written
    return re2.compile(pattern, options)


def find_blocked(prompt: str, terms: Iterable[Term]) -> Hit | None:
    """The first term the prompt holds (words before patterns), or None."""
    terms = list(terms)
    folded = fold(prompt)
    padded = f" {skeleton(prompt)} "
    for term in terms:
        if term.kind == "word":
            word = skeleton(term.text)
            if word and f" {word} " in padded:
                return Hit(term, term.text)
    for term in terms:
        if term.kind != "pattern":
            continue
        try:
            program = compiled_pattern(term.text)
        except re2.error:
            continue  # stored before the rules changed, or a bad setting: never matches
        for text in (folded, padded.strip()):
            found = program.search(text)
            if found is not None and found.group(0):
                return Hit(term, found.group(0))
    return None
