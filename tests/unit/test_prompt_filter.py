"""The prompt filter: look-alike spellings are caught, harmless words that contain a blocked one
are not, and a pattern cannot stall the bot."""

from __future__ import annotations

import time

import pytest

from bot.errors import UserError
from bot.prompt_filter import (
    Term,
    check_pattern,
    check_term,
    find_blocked,
    fold,
    skeleton,
)

BLOCKED = [Term("word", "blocked"), Term("word", "ass"), Term("word", "bad phrase")]


@pytest.mark.parametrize(
    "prompt",
    [
        "a blocked cat",
        "Ｂlocked",  # fullwidth B: NFKC
        "b\u200blocked",  # zero-width space
        "b\u00adlo\u2060cked",  # soft hyphen, word joiner
        "BLOCKED!",
        "blöcked",  # an accent
        "blоcked",  # Cyrillic о
        "ВLОСКЕD",  # Cyrillic capitals throughout
        "bl0cked",
        "b1ocked",  # 1 for l
        "bl0ck3d",
        "@ss",
        "a$$",
        "𝐛𝐥𝐨𝐜𝐤𝐞𝐝",  # mathematical bold
        "ⓑⓛⓞⓒⓚⓔⓓ",  # circled
        "this bad   phrase here",
        "bad-phrase",
    ],
)
def test_disguised_spellings_of_a_blocked_term_are_caught(prompt: str) -> None:
    assert find_blocked(prompt, BLOCKED) is not None


@pytest.mark.parametrize(
    "prompt",
    ["a class photo", "passion fruit", "assassin's creed", "unblocked road", "bad phrases", "bas"],
)
def test_words_that_only_contain_a_blocked_term_pass(prompt: str) -> None:
    assert find_blocked(prompt, BLOCKED) is None


def test_the_hit_names_the_term_as_the_admin_wrote_it() -> None:
    hit = find_blocked("make it Ｂlocked", [Term("word", "Blocked")])
    assert hit is not None
    assert "“Blocked”" in hit.message()
    assert "this server" in hit.message()
    bot_wide = find_blocked("blocked", [Term("word", "blocked", everywhere=True)])
    assert bot_wide is not None
    assert "Flexbot does not allow" in bot_wide.message()


def test_normal_forms() -> None:
    assert fold("Ｂ\u200bLÖcked") == "blocked"
    assert skeleton("Hello, W0rld!  1337") == "heiio worid ieet"


def test_a_pattern_matches_the_folded_text_and_the_skeleton() -> None:
    terms = [Term("pattern", r"dr[uo]gs?\b")]
    assert find_blocked("some DRUGS here", terms) is not None
    assert find_blocked("some dr0gs", terms) is not None  # only the skeleton has "drogs"
    hit = find_blocked("some drugs", terms)
    assert hit is not None
    assert "“drugs”" in hit.message()  # a pattern hit names what matched, not the regex
    assert find_blocked("a drum", terms) is None


def test_patterns_the_linear_engine_cannot_run_are_refused() -> None:
    for bad in [r"(a)\1", r"(?=x)y", r"(?<!x)y", "x" * 201, "", "((a{100}){100}){100}"]:
        with pytest.raises(UserError) as err:
            check_pattern(bad)
        assert err.value.limit == "prompt_filter"


def test_terms_without_letters_or_too_long_are_refused() -> None:
    with pytest.raises(UserError):
        check_term(" -- ")
    with pytest.raises(UserError):
        check_term("x" * 101)
    assert check_term("  bad   phrase ") == "bad phrase"


def test_a_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    # Python's re takes exponential time on (a+)+$ against "aaa...b"; RE2 takes microseconds.
    pattern = check_pattern("(a+)+$")
    prompt = "a" * 1999 + "b"
    terms = [Term("pattern", pattern)]
    started = time.perf_counter()
    for _ in range(100):
        assert find_blocked(prompt, terms) is None
    per_check = (time.perf_counter() - started) / 100
    assert per_check < 0.05, f"{per_check * 1000:.1f} ms per check"
