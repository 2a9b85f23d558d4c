"""`renewals mappings preview`: what a candidate mapping would change, before it is installed.
Both the current and the candidate mapping re-map the mirror's raw CRM records (as last
read; no CRM call, nothing stored), plan the whole book with each and count the writes they
would plan, as a dry run does. Re-mapping the mirror (like `deadletters retry`) rather than
pulling keeps the comparison exact (the same records for both) and costs no API call; the
mirror holds only the CRM fields the current mapping reads, so fields only the candidate
reads are named (`unread_fields`): they are previewed as empty."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from connector.domain.book import Book
from connector.domain.mapping import Mapping
from connector.domain.models import READ_KINDS
from connector.services.context import Context
from connector.services.gather import map_record
from connector.services.guard import Baseline, verdict
from connector.services.reading import Reading
from connector.services.runs import tally
from connector.services.sync import apply, plan
from connector.services.sync_report import SyncReport


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
