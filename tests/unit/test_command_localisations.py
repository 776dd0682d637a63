"""Every command, option, choice and description is localised in every shipped language, and
every localisation passes Discord's rules (names: lower case, 1..32 of letters, digits, - and _;
descriptions 1..100; no two siblings with the same localised name)."""

from __future__ import annotations

from pathlib import Path

from tests.support.localisation import (
    SHIPPED_LOCALES,
    built_bot,
    name_problem,
    problems,
    registration_payloads,
)


async def test_every_command_string_is_localised_within_discords_rules(tmp_path: Path) -> None:
    async with built_bot(tmp_path) as bot:
        payloads = await registration_payloads(bot)
    assert {p["name"] for p in payloads} >= {"edit", "queue", "usage", "flexadmin"}
    assert problems(payloads) == []


async def test_the_payload_carries_each_locales_own_words(tmp_path: Path) -> None:
    async with built_bot(tmp_path) as bot:
        payloads = {p["name"]: p for p in await registration_payloads(bot)}
    usage = payloads["usage"]
    assert set(usage["name_localizations"]) == set(SHIPPED_LOCALES)
    assert usage["name_localizations"]["fr"] == "consommation"
    assert usage["description_localizations"]["ja"].startswith("今日と今月")
    menu = next(p for p in payloads.values() if p.get("type") == 3)
    assert menu["name_localizations"]["de"] == "Mit FLUX bearbeiten"


def test_the_name_rule_refuses_what_discord_refuses() -> None:
    assert name_problem("all-channels") is None
    assert name_problem("全チャンネル") is None
    assert name_problem("größe") is None
    assert name_problem("Größe") == "not lower case"
    assert name_problem("two words") == "characters not allowed: ' '"
    assert name_problem("x" * 33) == "33 characters (1..32)"


def test_a_missing_or_overlong_localisation_is_reported() -> None:
    payload = {
        "name": "queue",
        "description": "Your queue",
        "type": 1,
        "name_localizations": {"de": "Warteschlange"},
        "description_localizations": {"de": "x" * 101},
    }
    assert problems([payload], ("de", "fr")) == [
        "/queue name de 'Warteschlange': not lower case",
        "/queue name: no fr localisation of 'queue'",
        f"/queue description de {'x' * 101!r}: 101 characters (1..100)",
        "/queue description: no fr localisation of 'Your queue'",
    ]
