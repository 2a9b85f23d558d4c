"""HubSpot: a first sync of 10,000 contracts against FakeHubSpot (loopback, real
hubspot-api-client) with a public-app bucket of 110 requests per 10 s, time scaled.

Reports calls against the lower bound and how much of the rate limit the connector used.
Lower bound, from HubSpot's API limits (see ../shared/API_NOTES.md):
  reads   per read kind max(1, ceil(records / 200)) searches, plus ceil(records / 1000) v4
          association reads when the kind has association fields (live and archived records
          apart); one archived listing per object type (deleted records); owners: one page of
          active and one of archived.
  writes  upsert kinds: ceil(records / 100) batch upserts, plus as many v4 association creates
          (an upsert cannot carry associations); tasks (created once): ceil(n / 100) batch reads
          of existing dedupe keys plus ceil(n / 100) batch creates with inline associations.
Bucket use (sustained) = the write calls' rate, from the moment the bucket first ran dry to the
end of writing, against the rate the connector allows itself: `hubspot.limits.use_share` (0.9)
of the portal's limit (110 per 10 s), 99, as it leaves the rest to the portal's other apps; the
share of the portal's own limit is printed beside it. Also printed: the write calls against the
most a rolling window allows in the whole write phase, LIMIT x (floor(windows) + 1).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import yaml

from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot import TOKEN_ENV, HubSpotCrm
from crm_renewals.connector.config import load_config
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.sync import sync
from tests.fakes.hubspot_schema import RENEWAL_CONTACT_TYPE
from tests.fakes.hubspot_server import FakeHubSpot

AS_OF = date(2026, 3, 2)
ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO, TARGET_USE = 1.05, 0.90
LIMIT = 110  # public app: 110 requests every 10 seconds


#: the line items of each seeded deal: sku -> (quantity of the i-th deal, price)
LINES = {"SEAT": (lambda i: 10 + i % 7, 100), "SUPPORT": (lambda i: 1, 1000)}


def seed(
    fake: FakeHubSpot,
    contracts: int,
    accounts: int,
    *,
    owners: int = 50,
    end_of: Callable[[int], date] = lambda i: AS_OF + timedelta(days=20 + i % 95),
    skus: tuple[str, ...] = ("SEAT", "SUPPORT"),
    archived: int = 20,
) -> dict[str, int]:
    """A portal's book: owners, companies each with a renewal contact, closed-won deals (the
    i-th ending on `end_of(i)`) with a line item per sku, and `archived` deleted deals (the
    archived listing has something to find). The objects of each type."""
    reps = [fake.add_owner(f"Rep{i}", "Owner") for i in range(owners)]
    companies = []
    for i in range(accounts):
        company = fake.create(
            "companies", {"name": f"Company {i}", "hubspot_owner_id": reps[i % owners]}
        )
        companies.append(company)
        contact = fake.create("contacts", {"firstname": "Ann", "lastname": f"Buyer {i}"})
        fake.associate("contacts", contact, "companies", company, 1)
        fake.associate("contacts", contact, "companies", company, RENEWAL_CONTACT_TYPE)
    for i in range(contracts):
        end = end_of(i)
        deal = fake.create(
            "deals",
            {
                "dealname": f"Contract {i}",
                "pipeline": "default",
                "dealstage": "closedwon",
                "contract_start_date": (end - timedelta(days=365)).isoformat(),
                "contract_end_date": end.isoformat(),
                "deal_currency_code": "USD",
            },
        )
        fake.associate("deals", deal, "companies", companies[i % accounts], 5)
        for code in skus:
            quantity, price = LINES[code]
            item = fake.create(
                "line_items",
                {
                    "hs_sku": code,
                    "quantity": quantity(i),
                    "price": price,
                    "recurringbillingfrequency": "annually",
                },
            )
            fake.associate("line_items", item, "deals", deal, 20)
    for i in range(archived):
        fake.archive("deals", fake.create("deals", {"dealname": f"Gone {i}"}))
    return {t: len(fake.objects[t]) for t in ("companies", "contacts", "deals", "line_items")}


class Meter:
    """Records read per kind, records sent per (kind, method), and when writing went on."""

    def __init__(self, crm: HubSpotCrm):
        self.crm, self.read, self.sent, self.deleted = crm, Counter(), Counter(), Counter()
        self.write_start = self.write_end = 0.0
        self.write_calls = 0
        #: when a write first waited on the bucket (it ran dry), and the write calls before it
        self.dry_at, self.calls_before_dry = 0.0, 0
        reader = crm.read_changes

        def read_changes(kind, since):
            for page in reader(kind, since):
                self.read[kind] += len(page)
                self.deleted[kind] += sum(r.deleted for r in page)
                yield page

        crm.read_changes = read_changes
        for method in ("upsert", "create_missing", "delete"):
            setattr(crm, method, self._writer(method, getattr(crm, method)))

    def _writer(self, method, call):
        def write(kind, records):
            stats = self.crm.limits.general.stats
            calls, waits, started = stats.calls, stats.waits, time.monotonic()
            self.write_start = self.write_start or started
            try:
                return call(kind, records)
            finally:
                self.write_end = time.monotonic()
                if stats.waits > waits and not self.dry_at:
                    self.dry_at, self.calls_before_dry = started, self.write_calls
                self.write_calls += stats.calls - calls
                self.sent[kind, method] += len(records)

        return write

    def bound(self) -> tuple[int, int]:
        reads = 2  # owners, active and archived
        objects = set()
        for kind in READ_KINDS:
            n = self.read[kind]
            if kind == "owner":
                continue
            objects.add(self.crm.object_type(kind))
            reads += max(1, math.ceil(n / 200))
            if self.crm.kinds.linked_types(kind):  # live records, then archived ones
                live = n - self.deleted[kind]
                reads += math.ceil(live / 1000) + math.ceil(self.deleted[kind] / 1000)
        reads += len(objects)
        writes = 0
        for (kind, method), n in self.sent.items():
            batches = math.ceil(n / 100)
            links = bool(self.crm.kinds.linked_types(kind)) or kind == "renewal_line"
            writes += batches * (2 if method == "create_missing" or links else 1)
        return reads, writes


def run(contracts: int = 10_000, accounts: int = 6_000, scale: float = 1.25) -> list[Verdict]:
    interval = 10.0 / scale
    heading(f"HubSpot: first sync of {contracts:,} contracts, {LIMIT}/10 s bucket, time x{scale:g}")
    # the fake runs in its own process, so serving does not compete with the connector for the GIL
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.hubspot", str(contracts), str(accounts), str(interval)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(server.stdout.readline())
        row(
            "seeded in",
            f"{info['seconds']:.1f} s: "
            + ", ".join(f"{n:,} {t}" for t, n in info["counts"].items()),
        )
        with tempfile.TemporaryDirectory(prefix="renewals-bench-hs-") as tmp:
            ctx = _context(Path(tmp), info["url"], info["token"], interval)
            meter = Meter(ctx.crm)
            try:
                t0 = time.monotonic()
                report = sync(ctx, as_of=AS_OF)
                wall = time.monotonic() - t0
            finally:
                ctx.close()
        with urllib.request.urlopen(info["url"] + "/__fake__/stats") as resp:
            stats = json.loads(resp.read())
        return _report(report, wall, meter, stats, interval)
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def serve(contracts: int, accounts: int, interval: float) -> None:
    """The benchmark's fake HubSpot: seed, print where it listens, serve until stdin closes."""
    fake = FakeHubSpot(burst=LIMIT, interval=interval, search_per_second=5)
    fake.start()
    fake.define_connector_properties()
    t0 = time.perf_counter()
    counts = seed(fake, contracts, accounts)
    fake.requests = _Discard()
    info = {"url": fake.url, "token": fake.token, "counts": counts}
    print(json.dumps({**info, "seconds": time.perf_counter() - t0}), flush=True)
    sys.stdin.read()
    fake.stop()


class _Discard(list):
    """The benchmark keeps no request bodies."""

    def append(self, item) -> None:
        pass


def _context(tmp: Path, url: str, token: str, interval: float) -> Context:
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data.update(
        crm="hubspot", data_dir=str(tmp / "data"), mapping=str(ROOT / "mappings/hubspot.yaml")
    )
    data["hubspot"] = {"base_url": url, "limits": {"app_type": "public"}}
    data["renewals"].update(
        initial_stage="appointmentscheduled",
        closed_won_stages=["closedwon"],
        closed_lost_stages=["closedlost"],
    )
    (tmp / "app.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp / "app.yaml")
    mapping = load_mapping(config.mapping_path, expect_crm="hubspot")
    os.environ.setdefault(TOKEN_ENV, token)
    crm = HubSpotCrm(mapping, config.hubspot, token, interval=interval)
    return bootstrap.build(config, crm)


def _report(report, wall, meter: Meter, stats: dict, interval: float) -> list[Verdict]:
    reads, writes = meter.bound()
    bound = reads + writes
    ratio = report.api_calls / bound
    general = meter.crm.limits.general.stats
    throttled = stats["statuses"].get("429", 0)
    span = meter.write_end - meter.write_start
    # sustained use: once the bucket first ran dry (the first ~110 calls go at once), the call
    # rate against the limit's rate; a rolling window allows LIMIT per interval, no more
    steady = meter.write_end - meter.dry_at if meter.dry_at else 0.0
    steady_calls = meter.write_calls - meter.calls_before_dry
    allowed = meter.crm.settings.limits.burst  # the connector's own share of LIMIT
    use = steady_calls / (steady / interval * allowed) if steady else 0.0
    # strict: the most calls any client could make in the whole write phase
    most = LIMIT * (math.floor(span / interval) + 1)
    overall = general.calls / (wall / interval * LIMIT)
    row(
        "outcome",
        f"created {report.created:,}, failed {report.failed:,}, skipped {report.skipped:,}",
    )
    row("writes", ", ".join(f"{k} {v:,}" for k, v in report.writes.items()))
    row("records read", ", ".join(f"{k} {v:,}" for k, v in meter.read.items()))
    row("sync wall time", f"{wall:.1f} s (= {wall * 10 / interval:.0f} s at real time)")
    row("api calls (report.api_calls)", report.api_calls)
    row("lower bound (reads + writes)", f"{bound} ({reads} + {writes})")
    row("ratio", f"{ratio:.3f}x")
    row("search calls", f"{meter.crm.limits.search.stats.calls} (own budget, 4/s)")
    row("general bucket: calls / waits", f"{general.calls} / {general.waits} waits")
    row("write phase", f"{meter.write_calls} calls in {span:.1f} s ({span / interval:.2f} windows)")
    row(
        "bucket use, sustained",
        f"{use:.1%} of the connector's {allowed}/10 s ({use * allowed / LIMIT:.1%} of the "
        f"portal's {LIMIT}): {steady_calls} calls in the {steady:.1f} s after the bucket first "
        "ran dry",
    )
    row(
        "bucket use, strict",
        f"{meter.write_calls / most:.1%} of the {most} calls a rolling window allows in the "
        "whole write phase (any client)",
    )
    row("bucket use, whole sync", f"{overall:.1%} (reads wait on the search budget)")
    row("429 answers", throttled)
    print("  calls by endpoint (fake HubSpot's count):")
    for endpoint, n in sorted(stats["calls"].items()):
        print(f"    {n:>6}  {endpoint}")
    flush()
    return [
        verdict(
            Verdict(
                "hubspot",
                "first sync calls / lower bound",
                f"{report.api_calls} / {bound} = {ratio:.3f}x",
                f"<= {TARGET_RATIO:.2f}x",
                ratio <= TARGET_RATIO,
            )
        ),
        verdict(
            Verdict(
                "hubspot",
                "sustained bucket use while writing",
                f"{use:.1%} of {allowed}/10 s (use_share of {LIMIT}), {throttled} x 429",
                f">= {TARGET_USE:.0%}, 0 x 429",
                use >= TARGET_USE and throttled == 0,
            )
        ),
    ]


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
