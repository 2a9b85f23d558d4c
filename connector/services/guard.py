"""The mapping guard. A run maps every record it read before its first write (gather ends
before apply begins); when too many of them failed to map (a broken mapping, most often),
it writes nothing, moves no cursor and ends `stopped`, naming the field and reason that
dominate, unless forced (`renewals sync --force`). Two rules, each needing more than
HANDFUL failures, so one bad record among the few an incremental run reads never stops it:

- share: more than `sync.max_map_failure_share` of the records read failed to map;
- kind: a kind none of whose records failed to map after the last completed sync (ok or
  partial, full or incremental) now fails for more than HANDFUL records.

A first run (no completed sync yet) has only the share rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_renewals.connector.errors import MappingGuardStop
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.reading import Reading
from crm_renewals.connector.services.sync_report import SyncReport

#: A run stops only when more records than this failed to map (either rule).
HANDFUL = 5
#: Runs a later run compares itself with: completed syncs (webhook runs plan a few contracts).
BASELINE_MODES, BASELINE_STATUSES = ("full", "incremental"), ("ok", "partial")
#: (kind.field: reason) groups named in the verdict
NAMED = 3


@dataclass(frozen=True)
class Baseline:
    """What a run is weighed against: the last completed sync (its id, None when there is
    none yet; its skip reasons; the kinds that had records failing to map when it ended, its
    open mapping dead letters then), or for a preview the current mapping's re-map."""

    run_id: int | None = None
    skip_reasons: dict[str, int] | None = None
    failing_kinds: frozenset[str] = frozenset()
    #: how the verdict names it: "after run 12", "with the current mapping"
    name: str = ""


def baseline(ctx: Context) -> Baseline:
    last = ctx.store.runs.last(BASELINE_MODES, BASELINE_STATUSES)
    if last is None or last.finished_at is None:
        return Baseline()
    failing = ctx.store.dead_letters.kinds_failing_to_map(last.finished_at)
    # skip reasons are the whole book's only after a run that planned all of it
    whole = last if not (last.counts or {}).get("scope") else ctx.store.runs.last_whole()
    reasons = (whole.counts or {}).get("skip_reasons") if whole else None
    return Baseline(last.id, reasons, frozenset(failing), f"after run {last.id}")


def verdict(reading: Reading, max_share: float, base: Baseline) -> str | None:
    """Why a run that read this should write nothing, or None."""
    failed, read = reading.total_failed, reading.total_read
    if failed <= HANDFUL:
        return None
    share = failed / read
    if share > max_share:
        head = f"{failed} of {read} records failed to map ({_pct(share)} > {_pct(max_share)})"
        named = reading.failures()
    else:
        broke = {
            kind: n
            for kind, n in reading.failed_by_kind().items()
            if n > HANDFUL and base.name and kind not in base.failing_kinds
        }
        if not broke:
            return None
        kinds = ", ".join(f"{n} {kind}" for kind, n in broke.items())
        head = (
            f"{kinds} records failed to map, none did {base.name} "
            f"(more than {HANDFUL} of a kind that mapped cleanly)"
        )
        named = [g for g in reading.failures() if g.kind in broke]
    most = ", ".join(f"{g.where}: {g.reason} ({g.count})" for g in named[:NAMED])
    return f"{head}; most: {most}"


def weigh(
    ctx: Context, report: SyncReport, reading: Reading, base: Baseline, *, enforce: bool
) -> None:
    """Put what the run read and the guard's verdict on the report; stop the run (raise
    MappingGuardStop) if the verdict is to stop and `enforce` (not a dry run, not forced)."""
    report.records_read = dict(sorted(reading.read.items()))
    report.map_failures = [g.to_json() for g in reading.failures()]
    report.guard = verdict(reading, ctx.config.sync.max_map_failure_share, base)
    if report.guard and enforce:
        raise MappingGuardStop(
            f"stopped before writing: {report.guard}; use --force to write anyway"
        )


def skip_change(base: Baseline, after: dict[str, int]) -> dict[str, dict[str, Any]] | None:
    """Skip reasons whose count differs from the last completed sync's (None: none yet)."""
    if base.skip_reasons is None:
        return None
    before = base.skip_reasons
    return {
        reason: {"before": before.get(reason, 0), "after": after.get(reason, 0)}
        for reason in sorted({*before, *after})
        if before.get(reason, 0) != after.get(reason, 0)
    }


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%".replace(".0%", "%")
