"""Every message Flexbot can say exists in every shipped language, with the same placeholders.

The English catalogue lists the msgids (English text with ``{named}`` placeholders); each
translation must have every one of them, keep every placeholder and add none (a dropped
``{cost}`` would hide the price; an added one would fail to format).
"""

from __future__ import annotations

import pytest

from bot import prompt_filter
from bot.engine import cancel, quota
from bot.i18n import ENGLISH, TRANSLATIONS, catalogue_text, placeholders, read_catalogue
from bot.model import JobState
from cogs.members.render import CAP_LABELS

Key = tuple[str | None, str]


def english_ids() -> set[Key]:
    """The msgids (with context) the English catalogue declares."""
    from io import BytesIO

    from babel.messages.pofile import read_po

    catalog = read_po(BytesIO(catalogue_text(ENGLISH).encode()), locale="en")
    return {(m.context, str(m.id)) for m in catalog if m.id}


def catalogue_problems(english: set[Key], language: str, po_text: str) -> list[str]:
    """What a translation lacks, and every placeholder it dropped or added."""
    translated = read_catalogue(po_text, language)
    found = []
    for context, msgid in sorted(english, key=lambda k: (k[0] or "", k[1])):
        text = translated.get((context, msgid))
        if text is None:
            found.append(f"{language}: no translation of {msgid!r} (context {context})")
            continue
        want, got = placeholders(msgid), placeholders(text)
        if want - got:
            found.append(f"{language}: {msgid!r} drops {sorted(want - got)}")
        if got - want:
            found.append(f"{language}: {msgid!r} adds {sorted(got - want)}")
    return found


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    assert catalogue_problems(english_ids(), language, catalogue_text(language)) == []


def test_a_missing_translation_or_a_changed_placeholder_is_caught() -> None:
    english = {(None, "It costs {cost}."), (None, "Hello."), (None, "Bye {name}.")}
    po = (
        'msgid "It costs {cost}."\nmsgstr "Kostet {preis}."\n\n'  # renamed: drops and adds
        'msgid "Bye {name}."\nmsgstr "Tschüss {name} {name2}."\n'
    )
    assert catalogue_problems(english, "de", po) == [
        "de: 'Bye {name}.' adds ['name2']",
        "de: no translation of 'Hello.' (context None)",
        "de: 'It costs {cost}.' drops ['cost']",
        "de: 'It costs {cost}.' adds ['preis']",
    ]


def test_the_cores_refusal_templates_are_in_the_catalogue() -> None:
    """A template the code raises but the catalogue lacks would stay English everywhere."""
    templates = {
        *quota.BUDGET_REFUSALS.values(),
        quota.TOO_MANY_QUEUED,
        quota.COOLDOWN,
        cancel.NOT_YOURS,
        cancel.CANCELLED,
        cancel.CANCELLING,
        cancel.ENDED,
        prompt_filter.BLOCKED_HERE,
        prompt_filter.BLOCKED_EVERYWHERE,
        *CAP_LABELS.values(),
        *(state.value for state in JobState),
    }
    missing = {t for t in templates if (None, t) not in english_ids()}
    assert missing == set()
