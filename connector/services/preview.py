"""`renewals mappings preview`: what a candidate mapping would change, before it is installed.
Both the current and the candidate mapping re-map the mirror's raw CRM records (as last
read; no CRM call, nothing stored), plan the whole book with each and count the writes they
would plan, as a dry run does. Re-mapping the mirror (like `deadletters retry`) rather than
pulling keeps the comparison exact (the same records for both) and costs no API call; the
mirror holds only the CRM fields the current mapping reads, so fields only the candidate
reads are named (`unread_fields`): they are previewed as empty."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.ports import Check
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.gather import map_record
from crm_renewals.connector.services.guard import Baseline, verdict
from crm_renewals.connector.services.reading import Reading
from crm_renewals.connector.services.runs import tally
from crm_renewals.connector.services.sync import apply, plan
from crm_renewals.connector.services.sync_report import SyncReport


@dataclass
class Preview:
    """The dry runs of the current and the candidate mapping over the same mirror."""

    current: SyncReport
    candidate: SyncReport
    #: fields the candidate reads that the mirror does not hold, by kind
    unread_fields: dict[str, list[str]]


def preview(ctx: Context, candidate: Mapping, as_of: date) -> Preview:
    current, read_now = remap(ctx, ctx.mapping, as_of)
    proposed, read_then = remap(ctx, candidate, as_of)
    base = Baseline(
        skip_reasons=current.skip_reasons,
        failing_kinds=frozenset(read_now.failed_by_kind()),
        name="with the current mapping",
    )
    proposed.guard = verdict(read_then, ctx.config.sync.max_map_failure_share, base)
    current.guard = verdict(read_now, ctx.config.sync.max_map_failure_share, Baseline())
    return Preview(current, proposed, unread_fields(ctx.mapping, candidate))


def remap(ctx: Context, mapping: Mapping, as_of: date) -> tuple[SyncReport, Reading]:
    """A dry run of `mapping` over the mirror's raw records: what it maps, plans, would write."""
    book, reading = Book(), Reading()
    for kind in READ_KINDS:
        for rec in ctx.store.mirror.records(kind):
            _, letter, error = map_record(mapping, book, kind, rec)
            reading.read[kind] += 1
            if letter and error:
                reading.fail(error)
    report = SyncReport(None, as_of, dry_run=True, full=True)
    report.records_read = dict(sorted(reading.read.items()))
    report.map_failures = [g.to_json() for g in reading.failures()]
    planned = plan(replace(ctx, mapping=mapping), book, as_of)
    applied = apply(ctx, planned, report, progress=None, retry=False, show=lambda _p: False)
    report.writes = dict(sorted(applied.writes.items()))
    tally(report, applied.run, applied.failed)
    return report, reading


def unread_fields(current: Mapping, candidate: Mapping) -> dict[str, list[str]]:
    out = {}
    for kind in READ_KINDS:
        held = set(current.source_fields(kind))
        if current.models[kind].object != candidate.models[kind].object:
            held = set()  # another CRM object: nothing of it is mirrored
        if missing := [f for f in candidate.source_fields(kind) if f not in held]:
            out[kind] = missing
    return out


COUNTS = ("created", "updated", "unchanged", "skipped", "failed")


def summary(
    p: Preview, current: str | Path, candidate: str | Path, schema: list[Check]
) -> dict[str, Any]:
    """What `renewals mappings preview --json` prints (and the console shows): contracts,
    writes and skip reasons current / candidate / change, both map failures, the guard's
    verdict on the candidate, unread fields and the candidate's failing schema checks."""
    now, then = p.current.to_json(), p.candidate.to_json()
    return {
        "ok": True,
        "as_of": now["as_of"],
        "current": str(current),
        "candidate": str(candidate),
        "records": sum(p.current.records_read.values()),
        "contracts": {k: _change(now[k], then[k]) for k in COUNTS},
        "writes": _changes(p.current.writes, p.candidate.writes),
        "skip_reasons": _changes(p.current.skip_reasons, p.candidate.skip_reasons),
        "map_failures": p.candidate.map_failures,
        "current_map_failures": p.current.map_failures,
        "guard": p.candidate.guard,
        "unread_fields": p.unread_fields,
        "schema_problems": [asdict(c) for c in schema],
    }


def worse(data: dict[str, Any]) -> bool:
    """The guard would stop the candidate, the CRM's schema refuses it, or it fails to map more
    records than the current."""
    failing = (sum(g["count"] for g in data[k]) for k in ("current_map_failures", "map_failures"))
    return bool(data["guard"] or data["schema_problems"]) or next(failing) < next(failing)


def schema_problems(crm_for: Callable[[Mapping], Any], candidate: Mapping) -> list[Check]:
    """The candidate's failing online checks: a field the CRM does not have, a wrong type, a
    value map the CRM's picklist or app.yaml's stages make incomplete (read-only calls, through
    an adapter `crm_for` builds with the candidate: connector.bootstrap.build_crm)."""
    crm = crm_for(candidate)
    try:
        return [c for c in crm.check_mapping_online() if not c.ok]
    finally:
        crm.close()


def _change(now: int, then: int) -> dict[str, int]:
    return {"current": now, "candidate": then, "change": then - now}


def _changes(now: dict[str, int], then: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: _change(now.get(k, 0), then.get(k, 0)) for k in sorted({*now, *then})}
