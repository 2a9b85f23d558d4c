"""CRM calls of a full sync against a freshly seeded sandbox, against the fewest calls possible.

Lower bound = sum over read kinds of max(1, ceil(records read / page_size)) + sum over the write
groups of connector.services.apply.STAGES of ceil(records sent / batch_size). Records read and
sent are counted by wrapping the sandbox's port methods on the instance (calls still go through,
and the sandbox itself counts api_calls: one a page read, one a batch written).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

import yaml

from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.adapters.sandbox.seed import seed
from crm_renewals.connector.bootstrap import build, build_sandbox, load
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.services.apply import STAGES
from crm_renewals.connector.services.sync import sync
from crm_renewals.connector.services.sync_report import SyncReport

AS_OF = date(2026, 3, 2)
TARGET_RATIO = 1.05
ROOT = Path(__file__).resolve().parent.parent


class CallCounter:
    """Counts records and API calls per kind (reads) and per (kind, method) (writes)."""

    def __init__(self, crm: SandboxCrm):
        self.crm = crm
        self.read_records: Counter[str] = Counter()
        self.read_calls: Counter[str] = Counter()
        self.sent: Counter[tuple[str, str]] = Counter()
        self.write_calls: Counter[tuple[str, str]] = Counter()
        read = crm.read_changes

        def read_changes(kind, since):
            before = crm.api_calls
            try:
                for page in read(kind, since):
                    self.read_records[kind] += len(page)
                    yield page
            finally:
                self.read_calls[kind] += crm.api_calls - before

        crm.read_changes = read_changes
        for method in ("upsert", "create_missing", "delete"):
            setattr(crm, method, self._writer(method, getattr(crm, method)))

    def _writer(self, method, call):
        def write(kind, records):
            before = self.crm.api_calls
            try:
                return call(kind, records)
            finally:
                self.sent[kind, method] += len(records)
                self.write_calls[kind, method] += self.crm.api_calls - before

        return write

    def reset(self) -> None:
        for counter in (self.read_records, self.read_calls, self.sent, self.write_calls):
            counter.clear()

    def read_bound(self) -> int:
        page = self.crm.page_size
        return sum(max(1, math.ceil(self.read_records[k] / page)) for k in READ_KINDS)

    def write_bound(self) -> int:
        batch = self.crm.max_batch
        return sum(math.ceil(self.sent[kind, method] / batch) for kind, _, method in STAGES)


def write_config(tmp: Path) -> Path:
    """The repository's app.yaml, with data_dir in `tmp` and the mapping as an absolute path."""
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data["data_dir"] = str(tmp / "data")
    data["mapping"] = str(ROOT / "mappings" / "sandbox.yaml")
    data["state"] = {"url": None}
    data.setdefault("sandbox", {})["database"] = None
    path = tmp / "app.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(contracts: int = 10_000, accounts: int = 6_000, seed_value: int | None = None):
    heading(f"CRM calls: sync of {contracts:,} contracts against the sandbox")
    with tempfile.TemporaryDirectory(prefix="renewals-bench-") as tmp:
        config = load(str(write_config(Path(tmp))))
        crm = build_sandbox(config)
        s = seed_value if seed_value is not None else config.sandbox.seed
        t0 = time.perf_counter()
        summary = seed(crm, seed=s, as_of=AS_OF, accounts=accounts, contracts=contracts)
        row("seeded in", f"{time.perf_counter() - t0:.1f} s (seed {s}, as_of {AS_OF})")
        crm.close()
        row(
            "seeded",
            f"{summary.users} users, {summary.accounts:,} accounts, {summary.contacts:,} contacts, "
            f"{summary.contracts:,} contracts, {summary.lines:,} lines; "
            f"{len(summary.broken)} deliberately broken records",
        )
        ctx = build(config)
        try:
            counter = CallCounter(ctx.crm)
            in_crm = {
                k: len(ctx.crm.all(ctx.mapping.models[k].object, include_deleted=True))
                for k in READ_KINDS
            }
            row("page_size / batch_size", f"{ctx.crm.page_size} / {ctx.crm.max_batch}")
            flush()
            first, wall = _sync(ctx)
            verdicts = _first(first, wall, counter, in_crm)
            counter.reset()
            second, wall = _sync(ctx)
            verdicts += _second(second, wall, counter)
        finally:
            ctx.close()
    return verdicts


def _sync(ctx) -> tuple[SyncReport, float]:
    t0 = time.perf_counter()
    report = sync(ctx, as_of=AS_OF)
    return report, time.perf_counter() - t0


def _reads(counter: CallCounter, in_crm: dict[str, int] | None = None) -> None:
    page = counter.crm.page_size
    print(f"  {'read kind':<44}{'in CRM':>9}{'read':>9}{'calls':>7}{'bound':>7}")
    extra = []
    for k in READ_KINDS:
        n = counter.read_records[k]
        have = f"{in_crm[k]:>9,}" if in_crm else f"{'':>9}"
        bound = max(1, math.ceil(n / page))
        print(f"  {k:<44}{have}{n:>9,}{counter.read_calls[k]:>7}{bound:>7}")
        if counter.read_calls[k] > bound:
            why = " (a whole number of full pages)" if n and n % page == 0 else ""
            extra.append(f"{k} +{counter.read_calls[k] - bound}{why}")
    if extra:
        row("read calls above the bound", "; ".join(extra))


def _writes(counter: CallCounter, report: SyncReport) -> None:
    batch = counter.crm.max_batch
    print(f"  {'write group (apply.STAGES)':<44}{'sent':>8}{'calls':>7}{'bound':>7}")
    for kind, ops, method in STAGES:
        n = counter.sent[kind, method]
        group = f"{kind} {method} ({'/'.join(ops)})"
        calls = counter.write_calls[kind, method]
        print(f"  {group:<44}{n:>8,}{calls:>7}{math.ceil(n / batch):>7}")
    row("report.writes", ", ".join(f"{k} {v:,}" for k, v in report.writes.items()) or "none")


def _outcome(report: SyncReport, wall: float) -> None:
    row(
        "outcome",
        f"created {report.created:,}, updated {report.updated:,}, "
        f"unchanged {report.unchanged:,}, skipped {report.skipped:,}, failed {report.failed:,}",
    )
    row("skip reasons", ", ".join(f"{k} {v:,}" for k, v in report.skip_reasons.items()))
    row("dead letters open", report.dead_letters)
    row("sync wall time", f"{wall:.2f} s (report.duration_s {report.duration_s:.2f} s)")


def _first(report: SyncReport, wall: float, counter: CallCounter, in_crm) -> list[Verdict]:
    print("  -- first sync (empty state)")
    _reads(counter, in_crm)
    _writes(counter, report)
    _outcome(report, wall)
    reads, writes = counter.read_bound(), counter.write_bound()
    bound = reads + writes
    ratio = report.api_calls / bound
    row("api calls (report.api_calls)", report.api_calls)
    row("lower bound (reads + writes)", f"{bound} ({reads} + {writes})")
    row("ratio", f"{ratio:.3f}x")
    return [
        verdict(
            Verdict(
                "calls",
                "first sync calls / lower bound",
                f"{report.api_calls} / {bound} = {ratio:.3f}x",
                f"<= {TARGET_RATIO:.2f}x",
                ratio <= TARGET_RATIO,
            )
        )
    ]


def _second(report: SyncReport, wall: float, counter: CallCounter) -> list[Verdict]:
    print("  -- second sync (nothing changed; re-reads records within overlap_seconds)")
    _reads(counter)
    _writes(counter, report)
    _outcome(report, wall)
    writes = sum(report.writes.values())
    bound = counter.read_bound() + counter.write_bound()
    row("api calls (report.api_calls)", f"{report.api_calls} (lower bound {bound})")
    row("writes", writes)
    return [
        verdict(
            Verdict(
                "calls",
                "second sync writes",
                f"{writes} writes in {report.api_calls} calls",
                "0 writes",
                writes == 0 and sum(counter.sent.values()) == 0,
            )
        )
    ]
