"""The ledger against fal's request list, compared without a network (bot.reconcile.compare)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.fal.client import RequestRecord
from bot.model import usd
from bot.pricing import PriceList
from bot.reconcile import Pricing, ReconcileReport, compare
from bot.reconcile_text import report_lines
from bot.store.reconcile import SentJob

MP = 1024 * 1024
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 27, tzinfo=UTC)
MID = START + timedelta(days=3)
PRICING = Pricing(PriceList(50_000, MP, 4.0), max_input_megapixels=1.0)
INPUT = "a" * 64  # one stored input of 1000x800 (1 MP)
SIZES = {INPUT: (1000, 800)}


def job(
    job_id: int,
    request_id: str | None,
    charged: int,
    *,
    at: datetime = MID,
    guild: int | None = 10,
    state: str = "delivered",
    seed: int | None = 7,
    prompt: str = "make it night",
) -> SentJob:
    return SentJob(
        job_id=job_id,
        state=state,
        guild_id=guild,
        fal_request_id=request_id,
        sent_at=at.timestamp(),
        seed=seed,
        prompt=prompt,
        input_hashes=(INPUT,),
        charged_micros=charged,
        refunded_micros=0,
    )


def record(
    request_id: str,
    *,
    at: datetime = MID,
    status: int | None = 200,
    output: tuple[int, int] | None = (1024, 1024),
    urls: tuple[str, ...] = ("https://v3.fal.media/files/in.png",),
    seed: int = 7,
    prompt: str = "make it night",
) -> RequestRecord:
    body: Any = None
    if status is not None and output is not None:
        body = {"images": [{"url": "u", "width": output[0], "height": output[1]}], "seed": seed}
    return RequestRecord(
        request_id=request_id,
        endpoint_id="fal-ai/flux-2-flex/edit",
        sent_at=at,
        started_at=at,
        ended_at=None if status is None else at + timedelta(seconds=5),
        status_code=status,
        duration=None if status is None else 5.0,
        json_input={"prompt": prompt, "image_urls": list(urls), "seed": seed},
        json_output=body,
    )


def run(
    jobs: list[SentJob],
    records: list[RequestRecord],
    sizes_by_url: Mapping[str, tuple[int, int]] | None = None,
) -> ReconcileReport:
    pricing = Pricing(PRICING.prices, PRICING.max_input_megapixels, sizes_by_url or {})
    return compare(jobs, records, start=START, end=END, pricing=pricing, input_sizes=SIZES)


def test_a_job_charged_what_fal_billed_matches_and_nothing_differs() -> None:
    report = run([job(1, "r1", 100_000)], [record("r1")])  # 1 MP in + 1 MP out = $0.10
    assert (report.ok, report.matched, report.differences) == (True, 1, 0)
    assert report.ledger_micros == report.fal_micros == 100_000


def test_a_request_fal_ran_without_a_job_is_an_orphan_with_its_price_and_assumption() -> None:
    report = run([], [record("lost", output=(1920, 1080))])
    assert not report.ok
    [orphan] = report.orphans
    assert orphan.request_id == "lost"
    assert orphan.price.micros == (1 + 2) * 50_000  # input assumed 1 MP, output 2 MP
    assert "input 1 at most 1 MP" in orphan.price.assumed


def test_an_orphan_whose_input_we_uploaded_is_priced_from_our_blob_size() -> None:
    url = "https://v3.fal.media/files/big.png"
    report = run([], [record("lost", urls=(url,))], sizes_by_url={url: (2048, 2048)})
    [orphan] = report.orphans
    assert (orphan.price.micros, orphan.price.assumed) == ((4 + 1) * 50_000, "")


def test_an_orphan_names_the_job_whose_submit_went_unanswered() -> None:
    unanswered = job(5, None, 0, state="failed", seed=42, prompt="a red door")
    other = job(6, None, 0, state="failed", seed=43, prompt="a red door")
    report = run([unanswered, other], [record("lost", seed=42, prompt="a red door")])
    assert report.orphans[0].maybe_job_id == 5


def test_a_request_fal_failed_without_a_job_was_not_billed_and_does_not_differ() -> None:
    report = run([], [record("err", status=500, output=None), record("bad", status=422)])
    assert report.ok
    assert (report.orphans, report.unbilled_orphans, report.fal_micros) == ((), 2, 0)


def test_a_request_still_running_is_judged_next_time() -> None:
    report = run([], [record("busy", status=None)])
    assert (report.ok, report.running) == (True, 1)


def test_a_charged_job_fal_does_not_list_is_reported() -> None:
    report = run([job(1, "r1", 100_000), job(2, "gone", 100_000)], [record("r1")])
    assert [j.job_id for j in report.unlisted] == [2]
    assert report.differences == 1


def test_an_uncharged_job_fal_does_not_list_is_not_a_difference() -> None:
    report = run([job(3, "never", 0, state="failed")], [])
    assert report.ok


def test_a_charge_that_differs_from_fals_price_is_reported_with_both_amounts() -> None:
    report = run([job(1, "r1", 100_000)], [record("r1", output=(2048, 1024))])
    [diff] = report.price_differences
    assert (diff.job.job_id, diff.job.charged_micros, diff.fal.micros) == (1, 100_000, 150_000)


def test_a_result_fal_billed_but_the_job_never_charged_is_a_price_difference() -> None:
    # fal finished it (2xx) but the job failed afterwards (say the result expired at fal).
    report = run([job(1, "r1", 0, state="failed")], [record("r1")])
    [diff] = report.price_differences
    assert (diff.job.charged_micros, diff.fal.micros) == (0, 100_000)


def test_a_job_fal_refused_with_a_4xx_and_nothing_charged_matches() -> None:
    report = run([job(1, "r1", 0, state="failed")], [record("r1", status=422)])
    assert (report.ok, report.matched) == (True, 1)


def test_requests_and_jobs_just_outside_the_period_match_without_being_judged() -> None:
    before = START - timedelta(minutes=10)
    report = run(
        # Sent before the period, listed by fal just inside it: one matched pair.
        [job(1, "edge", 100_000, at=before)],
        [record("edge", at=START + timedelta(seconds=1)), record("early", at=before)],
    )
    assert (report.ok, report.matched) == (True, 1)  # "early" (no job) is outside the period
    assert report.ledger_micros == 0  # the job itself was sent before the period


def test_the_table_lists_each_difference_and_a_summary() -> None:
    report = run(
        [job(1, "r1", 100_000), job(2, "gone", 50_000)],
        [record("r1"), record("lost")],
    )
    text = "\n".join(report_lines(report, "fal-ai/flux-2-flex/edit"))
    assert "orphan" in text
    assert "lost" in text
    assert usd(100_000) in text
    assert "not at fal" in text
    assert "#2" in text
    assert "1 matched, 1 orphan(s) at fal, 1 charged job(s) fal has no record of" in text
    assert text.endswith("2 difference(s).")
    clean = "\n".join(report_lines(run([job(1, "r1", 100_000)], [record("r1")]), "x"))
    assert clean.endswith("Nothing differs.")


def test_a_request_the_engine_is_still_looking_up_is_not_yet_an_orphan() -> None:
    unsure = job(5, None, 0, state="unsure", seed=42, prompt="a red door")
    report = run([unsure], [record("lost", seed=42, prompt="a red door")])
    assert (report.ok, report.running) == (True, 1)
