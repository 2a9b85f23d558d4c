"""What a run tells at -v (INFO): what it read, planned and wrote, and how it ended, a line
each; -vv (DEBUG) adds the skip reasons. With JSON logs the counts are fields of the line too
(the run's id and CRM come from connector.logs.log_context, set where the run starts)."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping

from crm_renewals.connector.ports import Cursor
from crm_renewals.connector.services.apply import ApplyOutcome, Collected
from crm_renewals.connector.services.sync_report import SyncReport

log = logging.getLogger(__name__)


def read(kind: str, records: int, since: Cursor | None, full: bool) -> None:
    """Records of `kind` read from the CRM, and from when."""
    if full:
        scope = "full read"
    elif since is None:
        scope = "first read: no cursor yet"
    else:
        scope = f"incremental, changes since {since.modified_at.isoformat()}"
    log.info("read %d %s records (%s)", records, kind, scope, extra={"kind": kind, "read": records})


def refetched(kind: str, records: int) -> None:
    """Records of `kind` read again by id, as webhook events named them."""
    log.info("read %d %s records by id (webhook events)", records, kind, extra={"kind": kind})


def planned(run: Collected, dry_run: bool) -> None:
    """The writes the plans want, by kind and operation, and the contracts' outcomes."""
    writes = ", ".join(f"{n} {name}" for name, n in sorted(run.planned.items())) or "no writes"
    unchanged = run.settled["unchanged"]
    failed = run.settled["failed"]
    skipped = sum(run.settled.values()) - unchanged - failed
    contracts = len(run.writing) + sum(run.settled.values())
    log.info(
        "planned %s for %d of %d contracts (%d unchanged, %d skipped, %d failed to map)%s",
        writes,
        len(run.writing),
        contracts,
        unchanged,
        skipped,
        failed,
        ": dry run, nothing written" if dry_run else "",
        extra={"planned": dict(sorted(run.planned.items())), "contracts": contracts},
    )
    reasons = {r: n for r, n in run.settled.items() if r not in ("unchanged", "failed")}
    if reasons:
        log.debug("skipped by reason: %s", _listed(reasons), extra={"skip_reasons": reasons})


def wrote(outcome: ApplyOutcome) -> None:
    """What the CRM accepted (and what was held back), by kind, with the calls it took."""
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for name, n in outcome.writes.items():
        kind, _, op = name.rpartition(".")
        by_kind[kind][op] += n
    for kind in dict.fromkeys([*outcome.calls, *by_kind]):  # in the order they were sent
        ops, calls = by_kind[kind], outcome.calls[kind]
        log.info(
            "wrote %d %s records (%s) in %d call%s",
            sum(n for op, n in ops.items() if op != "held"),
            kind,
            _listed(ops) or "none accepted",
            calls,
            "" if calls == 1 else "s",
            extra={"kind": kind, "writes": dict(ops), "calls": calls},
        )


def finished(report: SyncReport) -> None:
    """How the run ended, with its counts (also fields of a JSON line)."""
    counts = {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "failed": report.failed,
        "tasks_created": report.tasks_created,
        "api_calls": report.api_calls,
        "dead_letters": report.dead_letters,
    }
    what = "dry run" if report.dry_run else f"run {report.run_id}"
    # `counts`: top-level fields of a JSON line (`created` is also a LogRecord attribute)
    fields = {"counts": counts, "status": report.status, "duration_s": round(report.duration_s, 3)}
    if report.error:
        fields["error"] = report.error
    log.info(
        "%s %s in %.1f s: %s%s",
        what,
        report.status,
        report.duration_s,
        _listed(counts),
        f" ({report.error})" if report.error else "",
        extra=fields,
    )


def _listed(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items())
