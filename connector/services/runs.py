"""Run bookkeeping, the same for `sync` and the webhook runs: a run opens in the run history,
and what it did (counts, writes, API calls, duration, status) is recorded there whatever
happens, a run stopped halfway with the writes it made until then."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from crm_renewals.connector.errors import ApiLimitReached, ConnectorError, MappingGuardStop
from crm_renewals.connector.logs import log_context
from crm_renewals.connector.services import alerts, runlog
from crm_renewals.connector.services.apply import Collected
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.sync_report import SyncReport
from crm_renewals.connector.services.versions import start_run


@contextmanager
def recorded_run(
    ctx: Context, mode: str, as_of: date, *, dry_run: bool = False, full: bool = False
) -> Iterator[SyncReport]:
    """A run of `mode` (full, incremental, webhook) in the run history (a dry run has none),
    its report recorded there whatever happens: a ConnectorError marks it `stopped` (API
    allowance, mapping guard) or `failed`, Ctrl-C `interrupted`, with the writes made until
    then; the exception goes on up."""
    run_id = None if dry_run else start_run(ctx, mode, as_of)
    report = SyncReport(run_id, as_of, dry_run, full)
    started, calls = time.monotonic(), ctx.crm.api_calls
    kinds = _calls_by_kind(ctx)
    with log_context(
        run_id=run_id, connection=ctx.config.connection, crm=ctx.config.crm, mode=mode
    ):  # on every line of the run
        try:
            yield report
        except ConnectorError as exc:
            stopped = isinstance(exc, (ApiLimitReached, MappingGuardStop))
            report.status = "stopped" if stopped else "failed"
            report.error = str(exc)
            _partial_counts(report)
            raise
        except KeyboardInterrupt:
            report.status, report.error = "interrupted", "stopped by Ctrl-C (SIGINT)"
            _partial_counts(report)
            raise
        except BaseException as exc:  # a bug, or the process asked to exit: never recorded ok
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            _partial_counts(report)
            raise
        finally:
            report.api_calls_by_kind = {
                k: n - kinds.get(k, 0)
                for k, n in sorted(_calls_by_kind(ctx).items())
                if n > kinds.get(k, 0)
            }
            _finish(ctx, report, started, calls)
            runlog.finished(report)


def tally(report: SyncReport, run: Collected, failed: set[str]) -> None:
    """The run's contracts by outcome (`failed`: those whose writes the CRM refused)."""
    counts = Counter(run.settled)
    counts.update("failed" if cid in failed else action for cid, action in run.writing.items())
    report.created, report.updated = counts.pop("create", 0), counts.pop("update", 0)
    report.unchanged, report.failed = counts.pop("unchanged", 0), counts.pop("failed", 0)
    report.skipped = sum(counts.values())
    report.skip_reasons = dict(sorted(counts.items()))
    report.failed_ids = sorted({*run.broken, *(c for c in run.writing if c in failed)})
    report.status = "partial" if report.failed else "ok"


def _calls_by_kind(ctx: Context) -> dict[str, int]:
    return dict(getattr(ctx.crm, "api_calls_by_kind", None) or {})


def _partial_counts(report: SyncReport) -> None:
    """A run that stopped before counting: its renewals created and updated, from its writes."""
    report.writes = dict(sorted(report.writes.items()))
    report.created = report.writes.get("renewal_opportunity.create", 0)
    report.updated = report.writes.get("renewal_opportunity.update", 0)


def _finish(ctx: Context, report: SyncReport, started: float, calls: int) -> None:
    report.api_calls = ctx.crm.api_calls - calls
    report.duration_s = time.monotonic() - started
    report.dead_letters = ctx.store.dead_letters.open_count()  # open ones (a dry run's too)
    if report.run_id is not None:
        ctx.store.runs.finish(
            report.run_id,
            report.status,
            _stored_counts(report),
            report.api_calls,
            report.duration_s,
            report.error,
        )
        alerts.check(ctx.config, ctx.store)  # never raises; at most notify.timeout_seconds


def _stored_counts(report: SyncReport) -> dict[str, Any]:
    keys = (
        "created",
        "updated",
        "unchanged",
        "skipped",
        "failed",
        "writes",
        "skip_reasons",
        "tasks_created",
        "records_read",
        "map_failures",
        "guard",
        "scope",
        "api_calls_by_kind",
    )
    data = report.to_json()
    return {k: data[k] for k in keys}
