"""Incremental runs cost what changed: a sandbox book of N contracts (100,000 by default) is
synced whole, then runs as the scheduler makes them (`incremental_sync`, every 15 minutes):

1. nothing changed: wall time and API calls (target: under 2 s, and only the read calls of an
   empty change set, one per read kind);
2. 100 contracts changed by a rep (their end date moved into the renewal window, so each gets
   its renewal, lines and tasks): wall time (target: under 4 s) and what it planned;
3. a full run afterwards writes nothing: the incremental runs left the CRM as a full run
   would (asserted).

The sandbox's clock runs 20 minutes behind ours, as if every change in the CRM had been made
at least that long before the run reading it (the scheduler's 15-minute interval): a run
re-reads only what changed after the last read's start less `sync.overlap_seconds`, so the
records the first sync wrote are read back once, not on every run. Also printed: the first
run of the next day (its scope: accounts due by the planning index, and why).
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks.calls import write_config
from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.adapters.sandbox.seed import seed
from crm_renewals.connector.bootstrap import build, load, load_mapping
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.services.sync import sync

AS_OF = date(2026, 3, 2)
CHANGED = 100
TARGET_QUIET_S, TARGET_CHANGED_S = 2.0, 4.0
LAG = timedelta(minutes=20)


def run(contracts: int = 100_000, seed_value: int = 7) -> list[Verdict]:
    heading(f"incremental runs on a {contracts:,}-contract sandbox book")
    with tempfile.TemporaryDirectory(prefix="renewals-inc-") as tmp:
        config = load(str(write_config(Path(tmp))))

        def sandbox() -> SandboxCrm:
            return SandboxCrm(
                Path(config.sandbox_path),
                load_mapping(config.mapping_path),
                batch_size=config.sandbox.batch_size,
                page_size=config.sync.page_size,
                clock=lambda: datetime.now(UTC) - LAG,
                policy=config.renewals,
            )

        crm = sandbox()
        t0 = time.perf_counter()
        seed(crm, seed=seed_value, as_of=AS_OF, accounts=contracts * 3 // 5, contracts=contracts)
        crm.close()
        row("seeded", f"{contracts:,} contracts in {time.perf_counter() - t0:.0f} s")
        ctx = build(config, crm=sandbox())
        try:
            for label in ("first sync (whole book)", "second (reads its writes back)"):
                report, wall = _timed(ctx, AS_OF)
                _line(label, report, wall)
            quiet, quiet_s = _timed(ctx, AS_OF)
            _line("nothing changed", quiet, quiet_s)
            moved = _move_into_window(ctx.crm, CHANGED)
            changed, changed_s = _timed(ctx, AS_OF)
            _line(f"{len(moved)} contracts changed", changed, changed_s)
            full, full_s = _timed(ctx, AS_OF, full=True)
            _line("full run afterwards", full, full_s)
            nextday, nextday_s = _timed(ctx, AS_OF + timedelta(days=1))
            _line("first run of the next day", nextday, nextday_s)
        finally:
            ctx.close()
    reads = len(READ_KINDS)
    renewals = changed.writes.get("renewal_opportunity.create", 0)
    full_writes = sum(full.writes.values())
    return [
        verdict(
            Verdict(
                "incremental",
                f"nothing changed, {contracts:,} contracts",
                f"{quiet_s:.2f} s, {quiet.api_calls} calls",
                f"< {TARGET_QUIET_S:g} s, {reads} calls",
                quiet_s < TARGET_QUIET_S and quiet.api_calls <= reads,
            )
        ),
        verdict(
            Verdict(
                "incremental",
                f"{CHANGED} contracts changed",
                f"{changed_s:.2f} s, {renewals} renewals created",
                f"< {TARGET_CHANGED_S:g} s, {len(moved)} renewals",
                changed_s < TARGET_CHANGED_S and renewals == len(moved),
            )
        ),
        verdict(
            Verdict(
                "incremental",
                "full run after the incremental ones",
                f"{full_writes} writes",
                "0 writes (same CRM state)",
                full_writes == 0,
            )
        ),
    ]


def _timed(ctx, as_of: date, full: bool = False):
    t0 = time.perf_counter()
    report = sync(ctx, as_of=as_of, full=full)
    return report, time.perf_counter() - t0


def _line(label: str, report, wall: float) -> None:
    writes = sum(report.writes.values())
    scope = "whole book" if report.scope is None else json.dumps(report.scope)
    row(
        label,
        f"{wall:6.2f} s, {report.api_calls:3d} calls, {sum(report.records_read.values()):,} "
        f"read, {writes:,} writes; planned: {scope}",
    )
    flush()


def _move_into_window(crm: SandboxCrm, n: int) -> list[str]:
    """`n` active contracts whose renewal window is not open yet, their end date moved to
    100 days from now (inside the 120-day window), as a rep would."""
    end = (AS_OF + timedelta(days=100)).isoformat()
    horizon = (AS_OF + timedelta(days=200)).isoformat()
    rows = crm.transport.db.execute(
        "SELECT id FROM records WHERE object = 'Contract' AND deleted = 0 "
        "AND json_extract(fields, '$.Status') = 'Activated' "
        "AND json_extract(fields, '$.EndDate') > ? ORDER BY id LIMIT ?",
        (horizon, n),
    ).fetchall()
    for (record_id,) in rows:
        crm.edit("Contract", record_id, {"EndDate": end})
    return [r[0] for r in rows]
