"""Messages in the reader's language: money, dates and waits formatted for their locale."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.engine import quota
from bot.errors import NoSuchJob, UserError
from bot.i18n import Duration, Moment, Money, language_of, translate

NEW_YEAR = datetime(2025, 1, 2, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("fr", "fr"),
        ("pt-BR", "pt_BR"),
        ("es-ES", "es"),
        ("es-419", "es"),
        ("ja", "ja"),
        ("de", "de"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("ko", "en"),
        (None, "en"),
    ],
)
def test_discord_locales_map_to_a_shipped_language_else_english(
    locale: str | None, language: str
) -> None:
    assert language_of(locale) == language


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        ("en-US", "$1.50"),
        ("de", "1,50\xa0$"),
        ("fr", "1,50\xa0$US"),
        ("pt-BR", "US$\xa01,50"),
        ("ja", "$1.50"),
    ],
)
def test_money_is_formatted_for_the_locale(locale: str, shown: str) -> None:
    assert translate(locale, "{cost}", cost=Money(1_500_000)) == shown


def test_fractions_of_a_cent_are_kept_in_every_locale() -> None:
    assert translate("en-US", "{cost}", cost=Money(2_500)) == "$0.0025"
    assert translate("de", "{cost}", cost=Money(2_500)) == "0,0025\xa0$"


def test_the_cooldown_refusal_reads_naturally_in_french_and_japanese() -> None:
    refusal = quota.check_counts(
        quota.Limits({"user_max_queued": None, "user_cooldown_seconds": 300}),
        queued=0,
        running=0,
        last_submit=1000.0,
        now=1000.0 + 175,
    )
    assert refusal is not None
    assert str(refusal) == "Slow down a little: you can start another edit in 2 min."
    assert translate("fr", refusal.template, **refusal.params) == (
        "Un peu de patience : vous pourrez lancer une autre modification dans 2 minutes."
    )
    assert translate("ja", refusal.template, **refusal.params) == (
        "少しお待ちください。次の編集は2 分後に始められます。"
    )


def test_durations_keep_hours_and_minutes() -> None:
    assert translate("de", "{wait}", wait=Duration(2 * 3600 + 5 * 60)) == "2 Stunden und 5 Minuten"
    assert translate("en", "{wait}", wait=Duration(2 * 3600 + 5 * 60)) == "2 h 5 min"
    assert translate("es-ES", "{wait}", wait=Duration(3 * 86400 + 5)) == "3 días"


def test_dates_are_shown_in_utc_in_the_locales_format() -> None:
    assert translate("en-US", "{at}", at=Moment(NEW_YEAR)) == "2025-01-02 00:00 UTC"
    assert translate("de", "{at}", at=Moment(NEW_YEAR)) == "02.01.2025, 00:00 UTC"
    assert translate("fr", "{at}", at=Moment(NEW_YEAR)) == "2 janv. 2025, 00:00 UTC"


def test_the_daily_cap_refusal_keeps_its_english_text_and_translates() -> None:
    limits = quota.Limits({name: None for name in quota.LIMIT_NAMES} | {"user_daily_cap": 150_000})
    refusal = quota.check_budget(
        60_000, limits, quota.Usage(100_000, 100_000, 0, 0), now=NEW_YEAR - 3600
    )
    assert refusal is not None
    assert str(refusal).startswith(
        "This edit costs about $0.06, but only $0.05 is left of your daily budget ($0.15). "
        "It resets 2025-01-02 00:00 UTC (in 1 h)."
    )
    german = translate("de", refusal.template, **refusal.params)
    assert german.startswith(
        "Diese Bearbeitung kostet etwa 0,06\xa0$, von deinem Tagesbudget (0,15\xa0$) sind aber "
        "nur noch 0,05\xa0$ übrig. Es wird am 02.01.2025, 00:00 UTC zurückgesetzt (in 1 Stunde)."
    )


def test_a_message_missing_from_a_catalogue_falls_back_to_english() -> None:
    assert translate("fr", "Not in any catalogue: {n}.", n=3) == "Not in any catalogue: 3."


def test_a_fixed_sentence_is_its_own_template() -> None:
    assert UserError("Flexbot is restarting; try again in a minute.").template == (
        "Flexbot is restarting; try again in a minute."
    )
    missing = NoSuchJob(42)
    assert str(missing) == "There is no job #42."
    assert translate("pt-BR", missing.template, **missing.params) == "Não existe a tarefa #42."


def test_a_refusal_quoting_braces_the_member_typed_is_shown_as_typed() -> None:
    refusal = UserError("'{oops' is not an amount; use dollars such as 1.50.")
    assert translate("fr", refusal.template, **refusal.params) == refusal.message
