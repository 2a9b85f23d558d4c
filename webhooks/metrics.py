"""Prometheus metrics. Counters live in the process that counts (under `renewals serve`, in
prometheus-client's multiprocess files, so every gunicorn worker's counts add up); figures
that the database knows (queue depth, sync runs, CRM API calls) are read from it at scrape."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_renewals.connector.state import PENDING, StateStore

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "renewals_webhook_events_received",
            "Events accepted and stored in the inbox (copies included)",
            ["source"],
            registry=r,
        )
        self.duplicates = Counter(
            "renewals_webhook_events_duplicate",
            "Accepted events already in the inbox (redeliveries, copies)",
            ["source"],
            registry=r,
        )
        self.refused = Counter(
            "renewals_webhook_requests_refused",
            "Requests refused (4xx), by reason",
            ["source", "reason"],
            registry=r,
        )
        self.processed = Counter(
            "renewals_webhook_events_processed",
            "Events the inbox worker processed (synced or nothing to do)",
            ["source"],
            registry=r,
        )
        self.failed = Counter(
            "renewals_webhook_events_failed",
            "Event processing attempts that failed (retried, or dead-lettered at the last)",
            ["source"],
            registry=r,
        )
        self.dead = Counter(
            "renewals_webhook_events_dead",
            "Events given up after the configured attempts (see renewals deadletters)",
            ["source"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "renewals_crm_rate_limit_waits",
            "Backoff waits before retrying a CRM call (429, 5xx, timeouts) in the inbox worker",
            registry=r,
        )
        self.rate_limit_wait_seconds = Counter(
            "renewals_crm_rate_limit_wait_seconds",
            "Seconds spent in those waits",
            registry=r,
        )
        self.latency = Histogram(
            "renewals_webhook_request_seconds",
            "Time to answer a webhook request",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )

    def render(self, store: StateStore) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        registry.register(StateCollector(store))
        return generate_latest(registry)


class _Forward:
    """This process's own metrics, next to the database's in one registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        yield from self.registry.collect()


class StateCollector:
    """Figures read from the state database at scrape time: the same for every process."""

    def __init__(self, store: StateStore):
        self.store = store

    def collect(self):
        depth = GaugeMetricFamily(
            "renewals_inbox_queue_depth", "Events waiting in the inbox to be processed"
        )
        by_status = GaugeMetricFamily(
            "renewals_inbox_events",
            "Events in the inbox (kept for the dedupe window), by source and status",
            labels=["source", "status"],
        )
        waiting = GaugeMetricFamily(
            "renewals_inbox_deliveries_waiting",
            "Deliveries stored and acknowledged, not yet read into inbox events",
        )
        counts = self.store.inbox.counts()
        depth.add_metric([], sum(n for (_, st), n in counts.items() if st == PENDING))
        waiting.add_metric([], self.store.deliveries.waiting())
        for (source, status), n in sorted(counts.items()):
            by_status.add_metric([source, status], n)
        sync_runs = CounterMetricFamily(
            "renewals_sync_runs",
            "Sync runs recorded, by mode and status",
            labels=["mode", "status"],
        )
        calls = CounterMetricFamily("renewals_crm_api_calls", "CRM API calls made by recorded runs")
        totals = self.store.runs.totals()
        for mode, status, n, _ in totals:
            sync_runs.add_metric([mode, status], n)
        calls.add_metric([], sum(c for *_, c in totals))
        yield from (depth, waiting, by_status, sync_runs, calls)
