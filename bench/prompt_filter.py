"""The prompt filter's worst case: pathological patterns against long prompts.

Run: ``python bench/prompt_filter.py``. Each row times ``find_blocked`` (normalising the prompt,
the word pass and the pattern pass on RE2) for one pattern known to make backtracking engines
explode, on a 2,000-character prompt built to defeat it (``"a" * 1999 + "b"``). The baseline is
Python's own ``re`` on the same pattern, timed on a prompt of only ``BASELINE_CHARS`` characters
(it grows exponentially: on 2,000 characters it would not finish). Target: a whole check below
10 ms on 2,000 characters, however the pattern is written.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.prompt_filter import Term, find_blocked  # noqa: E402

PROMPT = "a" * 1999 + "b"
BASELINE_CHARS = 22
PATTERNS = ["(a+)+$", "(a|aa)+$", "(x+x+)+y", "(.*a){20}", ".*.*=.*"]
TARGET_MS = 10.0
RUNS = 50


def best_of(runs: int, call: object) -> float:
    """The fastest of ``runs`` calls, in ms (the least disturbed by the rest of the machine)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def main() -> None:
    rows = []
    for pattern in PATTERNS:
        terms = [Term("word", "castle"), Term("pattern", pattern)]
        ours = best_of(RUNS, lambda terms=terms: find_blocked(PROMPT, terms))
        program = re.compile(pattern)
        short = "a" * (BASELINE_CHARS - 1) + "b"
        baseline = best_of(1, lambda program=program, short=short: program.search(short))
        rows.append((pattern, ours, baseline))
    baseline_head = f"re, {BASELINE_CHARS} chars"
    print(f"{'pattern':<12} {'find_blocked, 2,000 chars':>26} {baseline_head:>14}  target")
    for pattern, ours, baseline in rows:
        verdict = "PASS" if ours < TARGET_MS else "FAIL"
        print(f"{pattern:<12} {ours:>23.3f} ms {baseline:>11.3f} ms  < {TARGET_MS:g} ms {verdict}")


if __name__ == "__main__":
    main()
