"""Prometheus metrics, in a registry of their own (one per app, so tests don't collide)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class Snapshot:
    """Numbers read from the database at scrape time."""

    jobs_by_state: Mapping[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    spend_by_guild: Mapping[str, int] = field(default_factory=dict)


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("flexbot_jobs", "Jobs by state", labels=["state"])
        for state, count in sorted(self.snapshot.jobs_by_state.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "flexbot_queue_depth",
            "Jobs waiting in Flexbot's queue",
            value=self.snapshot.queue_depth,
        )
        spend = GaugeMetricFamily(
            "flexbot_spend_micros",
            "Money held or charged this UTC month, in micro-dollars",
            labels=["guild"],
        )
        for guild, micros in sorted(self.snapshot.spend_by_guild.items()):
            spend.add_metric([guild], micros)
        yield spend


class Metrics:
    """Counters the code updates as things happen, plus a snapshot refreshed per scrape."""

    def __init__(self) -> None:
        # Kept whole: flat declarations, no logic, read best as one catalogue of what we export.
        self.registry = CollectorRegistry()
        self.fal_job_seconds = Histogram(
            "flexbot_fal_job_seconds",
            "Time from fal submit to output fetched",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.fal_errors = Counter(
            "flexbot_fal_errors", "fal errors by type", ["type"], registry=self.registry
        )
        # Issue 12: what happened to submits whose answer was lost, and to lost results.
        self.fal_submits_unsure = Counter(
            "flexbot_fal_submits_unsure",
            "Submits fal may have received without Flexbot learning the request id, by cause",
            ["cause"],
            registry=self.registry,
        )
        self.fal_unsure_resolved = Counter(
            "flexbot_fal_unsure_resolved",
            "Jobs that may have been at fal, by outcome (adopted, resubmitted, failed, cancelled)",
            ["outcome"],
            registry=self.registry,
        )
        self.fal_possible_orphans = Counter(
            "flexbot_fal_possible_orphans",
            "Submits that may have reached fal (and been billed) but could not be looked up in "
            "fal's request list, so no job follows them",
            registry=self.registry,
        )
        self.fal_results_lost = Counter(
            "flexbot_fal_results_lost",
            "Edits fal made and billed whose result was gone before Flexbot fetched it",
            registry=self.registry,
        )
        self.fal_stream_fallbacks = Counter(
            "flexbot_fal_stream_fallbacks",
            "Status streams that broke or ended early, so the job was polled instead",
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "flexbot_jobs_finished",
            "Jobs that reached a final state",
            ["state"],
            registry=self.registry,
        )
        self.discord_errors = Counter(
            "flexbot_discord_errors",
            "Discord HTTP errors by status",
            ["status"],
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            "flexbot_event_loop_lag_seconds",
            "Latest event-loop lag seen by a ticker",
            registry=self.registry,
        )
        # Reconciliation with fal's request list (bot.reconcile), this UTC month so far.
        self.reconcile_orphans = Gauge(
            "flexbot_reconcile_fal_orphans",
            "Requests fal ran and billed that no job records (last check)",
            registry=self.registry,
        )
        self.reconcile_unlisted_jobs = Gauge(
            "flexbot_reconcile_unlisted_charged_jobs",
            "Charged jobs whose request fal does not list (last check)",
            registry=self.registry,
        )
        self.reconcile_price_differences = Gauge(
            "flexbot_reconcile_price_differences",
            "Jobs charged differently from fal's price for their request (last check)",
            registry=self.registry,
        )
        self.reconcile_last_run = Gauge(
            "flexbot_reconcile_last_run_timestamp_seconds",
            "When the last reconciliation finished (Unix time; 0 = never)",
            registry=self.registry,
        )
        self.reconcile_list_readable = Gauge(
            "flexbot_reconcile_list_readable",
            "1 when the last attempt could read fal's request list, 0 when the key was refused "
            "or fal could not be reached",
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot.snapshot = snapshot

    def render(self) -> bytes:
        return generate_latest(self.registry)
