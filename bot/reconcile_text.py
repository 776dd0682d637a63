"""``flexbot reconcile``'s table: a ReconcileReport as lines of text (pure)."""

from __future__ import annotations

from bot.model import usd
from bot.reconcile import FalPrice, ReconcileReport

_ROW = "{kind:<11} {request:<38} {job:>7} {ledger:>9} {fal:>9}  {note}"


def _price(price: FalPrice) -> str:
    return "unknown" if price.micros is None else usd(price.micros)


def difference_rows(report: ReconcileReport) -> list[str]:
    """One row per difference: orphans, charged jobs fal does not list, price differences."""
    rows = []
    for o in report.orphans:
        maybe = (
            f"; maybe job #{o.maybe_job_id}, whose submit went unanswered" if o.maybe_job_id else ""
        )
        note = f"fal ran and billed it, no job records it{maybe}"
        if o.price.assumed:
            note += f" (assumed: {o.price.assumed})"
        rows.append(
            _ROW.format(
                kind="orphan",
                request=o.request_id,
                job="-",
                ledger="-",
                fal=_price(o.price),
                note=note,
            )
        )
    for j in report.unlisted:
        rows.append(
            _ROW.format(
                kind="not at fal",
                request=j.fal_request_id or "-",
                job=f"#{j.job_id}",
                ledger=usd(j.charged_micros),
                fal="-",
                note="charged, but fal lists no such request",
            )
        )
    for d in report.price_differences:
        note = f"job {d.job.state}"
        if d.fal.assumed:
            note += f"; assumed: {d.fal.assumed}"
        rows.append(
            _ROW.format(
                kind="price",
                request=d.job.fal_request_id or "-",
                job=f"#{d.job.job_id}",
                ledger=usd(d.job.charged_micros),
                fal=_price(d.fal),
                note=note,
            )
        )
    return rows


def report_lines(report: ReconcileReport, app_id: str) -> list[str]:
    """The whole answer: the period, the differences as a table, then the summary."""
    lines = [
        f"Reconciling {app_id} from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} "
        f"UTC: fal lists {report.fal_requests} request(s).",
    ]
    rows = difference_rows(report)
    if rows:
        header = _ROW.format(
            kind="DIFFERENCE",
            request="FAL REQUEST",
            job="JOB",
            ledger="LEDGER",
            fal="FAL",
            note="NOTE",
        )
        lines += ["", header.rstrip(), *rows, ""]
    summary = (
        f"{report.matched} matched, {len(report.orphans)} orphan(s) at fal, "
        f"{len(report.unlisted)} charged job(s) fal has no record of, "
        f"{len(report.price_differences)} price difference(s)"
    )
    if report.running:
        summary += f"; {report.running} still running at fal (checked next time)"
    if report.unbilled_orphans:
        summary += f"; {report.unbilled_orphans} failed at fal with no job (not billed)"
    lines.append(summary + ".")
    lines.append(
        f"Ledger charged {usd(report.ledger_micros)}; fal's price of its requests "
        f"{usd(report.fal_micros)} (priced from fal's payloads at this bot's prices)."
    )
    lines.append("Nothing differs." if report.ok else f"{report.differences} difference(s).")
    return lines
