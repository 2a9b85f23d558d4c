"""Prometheus metrics. Counters live in the process that counts (under `renewals serve`, in
prometheus-client's multiprocess files, so every gunicorn worker's counts add up); figures
that the database knows (queue depth, sync runs, CRM API calls) are read from it at scrape."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_renewals.connector.state import PENDING, StateStore

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "renewals_webhook_events_received",
            "Events accepted and stored in the inbox (copies included)",
            ["source", "connection"],
            registry=r,
        )
        self.duplicates = Counter(
            "renewals_webhook_events_duplicate",
            "Accepted events already in the inbox (redeliveries, copies)",
            ["source", "connection"],
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
            ["source", "connection"],
            registry=r,
        )
        self.failed = Counter(
            "renewals_webhook_events_failed",
            "Event processing attempts that failed (retried, or dead-lettered at the last)",
            ["source", "connection"],
            registry=r,
        )
        self.dead = Counter(
            "renewals_webhook_events_dead",
            "Events given up after the configured attempts (see renewals deadletters)",
            ["source", "connection"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "renewals_crm_rate_limit_waits",
            "Backoff waits before retrying a CRM call (429, 5xx, timeouts) in the inbox worker",
            ["connection"],
            registry=r,
        )
        self.rate_limit_wait_seconds = Counter(
            "renewals_crm_rate_limit_wait_seconds",
            "Seconds spent in those waits",
            ["connection"],
            registry=r,
        )
        self.latency = Histogram(
            "renewals_webhook_request_seconds",
            "Time to answer a webhook request",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )

    def render(self, stores: Iterable[tuple[str, StateStore]]) -> bytes:
        """This process's (or, under `renewals serve`, every process's) counters, and the
        figures of each connection's state store (`stores`: name and store)."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        registry.register(StateCollector(stores))
        return generate_latest(registry)


class _Forward:
    """This process's own metrics, next to the database's in one registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        yield from self.registry.collect()


class StateCollector:
    """Figures read from each connection's state database at scrape time (the same for every
    process), one series per connection (label `connection`)."""

    def __init__(self, stores: Iterable[tuple[str, StateStore]]):
        self.stores = stores

    def collect(self):
        depth = GaugeMetricFamily(
            "renewals_inbox_queue_depth",
            "Events waiting in the inbox to be processed",
            labels=["connection"],
        )
        by_status = GaugeMetricFamily(
            "renewals_inbox_events",
            "Events in the inbox (kept for the dedupe window), by source and status",
            labels=["connection", "source", "status"],
        )
        waiting = GaugeMetricFamily(
            "renewals_inbox_deliveries_waiting",
            "Deliveries stored and acknowledged, not yet read into inbox events",
            labels=["connection"],
        )
        sync_runs = CounterMetricFamily(
            "renewals_sync_runs",
            "Sync runs recorded, by mode and status",
            labels=["connection", "mode", "status"],
        )
        calls = CounterMetricFamily(
            "renewals_crm_api_calls", "CRM API calls made by recorded runs", labels=["connection"]
        )
        for name, store in self.stores:
            try:
                counts, unread = store.inbox.counts(), store.deliveries.waiting()
                totals = store.runs.totals()
            except Exception:  # noqa: BLE001 - one database down hides only its own series
                log.warning("metrics: the state database of %s does not answer", name)
                continue
            depth.add_metric([name], sum(n for (_, st), n in counts.items() if st == PENDING))
            waiting.add_metric([name], unread)
            for (source, status), n in sorted(counts.items()):
                by_status.add_metric([name, source, status], n)
            for mode, status, n, _ in totals:
                sync_runs.add_metric([name, mode, status], n)
            calls.add_metric([name], sum(c for *_, c in totals))
        yield from (depth, waiting, by_status, sync_runs, calls)
