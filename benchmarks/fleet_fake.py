"""The fleet benchmark's CRM side: the fleet's tenants (a book size each, skewed as real fleets
are; about a third of them Salesforce orgs, the rest HubSpot portals), and the process that
seeds them into one multi-tenant fake HubSpot (tests/fakes/fleet.py, HTTP) and one fleet of
fake Salesforce orgs (tests/fakes/fleet_salesforce.py, HTTPS) and serves both on loopback until
its stdin closes.

Run apart from the benchmark (`python -m benchmarks.fleet_fake SPEC.json`) so serving hundreds
of requests a second does not compete with the beat for one interpreter's GIL."""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from benchmarks.hubspot import seed
from tests.fakes.fleet import FleetHubSpot, FleetPortal
from tests.fakes.fleet_salesforce import FleetSalesforce, enterprise_allocation, seed_org

#: (share of the fleet, smallest book, largest book): most books small, a few big, one huge
TIERS = (
    ("huge", 0.001, 20_000, 20_000),
    ("large", 0.004, 5_000, 10_000),
    ("medium", 0.045, 1_000, 3_000),
    ("small", None, 100, 300),
)
#: HubSpot private app on a Free/Starter portal: 100 requests per rolling 10 s; search 5 a second
LIMIT, SEARCH_PER_SECOND, INTERVAL = 100, 5, 10.0
PORTAL_BASE = 40_000_000
#: every third tenant of the fleet (in tier order, from an offset drawn from the seed) is a
#: Salesforce org
SALESFORCE_EVERY = 3
#: a Salesforce org's user licences: one per CONTRACTS_PER_LICENCE contracts, at least 5
CONTRACTS_PER_LICENCE, MIN_LICENCES = 10, 5
#: the orgs' daily allocation is Enterprise Edition's divided by this: a simulated day of a
#: book uses well under 0.1 % of the real one; a hundredth of it makes use show in the report
ALLOCATION_DIVISOR = 100


@dataclass(frozen=True)
class Tenant:
    """One connection of the fleet: its name, CRM, portal (HubSpot; 0 for an org), access
    token and book size; a Salesforce org's id and daily API allocation."""

    name: str
    crm: str
    portal_id: int
    token: str
    contracts: int
    tier: str
    org_id: str = ""
    allocation: int = 0

    @property
    def external_id(self) -> str:
        """What the connection row names: the HubSpot portal id or the Salesforce org id."""
        return self.org_id if self.crm == "salesforce" else str(self.portal_id)


def plan_fleet(connections: int, seed: int, max_book: int | None = None) -> list[Tenant]:
    """`connections` tenants: one huge book per 1,000 (at least one), 0.4 % large, 4.5 %
    medium, the rest small; book sizes drawn within each tier (capped at `max_book`); every
    third one (of the list in tier order, from an offset drawn after the sizes) a Salesforce
    org `sf-NNNN`, the others HubSpot portals `hs-NNNN`."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    left = connections
    for tier, share, *_ in TIERS[:-1]:
        floor = 1 if connections >= {"huge": 1, "large": 10, "medium": 5}[tier] else 0
        counts[tier] = min(left, max(floor, round(connections * share)))
        left -= counts[tier]
    counts["small"] = left
    tenants: list[Tenant] = []
    for tier, _share, low, high in TIERS:
        for _ in range(counts[tier]):
            i = len(tenants)
            size = rng.randint(low, high)
            tenants.append(
                Tenant(
                    name=f"hs-{i:04d}",
                    crm="hubspot",
                    portal_id=PORTAL_BASE + i,
                    token=f"pat-na1-{secrets.token_hex(12)}",
                    contracts=min(size, max_book) if max_book else size,
                    tier=tier,
                )
            )
    offset = rng.randrange(SALESFORCE_EVERY)
    return [
        _salesforce(t, i) if i % SALESFORCE_EVERY == offset else t for i, t in enumerate(tenants)
    ]


def _salesforce(t: Tenant, i: int) -> Tenant:
    org_id = f"00DFL{i:010d}AAA"  # 18 characters, Organization's key prefix 00D
    licences = max(MIN_LICENCES, t.contracts // CONTRACTS_PER_LICENCE)
    return Tenant(
        name=f"sf-{i:04d}",
        crm="salesforce",
        portal_id=0,
        token=f"{org_id[:15]}!AQ{secrets.token_hex(24)}",  # an access token's shape
        contracts=t.contracts,
        tier=t.tier,
        org_id=org_id,
        allocation=enterprise_allocation(licences) // ALLOCATION_DIVISOR,
    )


def describe(tenants: list[Tenant]) -> list[str]:
    """The fleet's shape, a line per tier."""
    lines = []
    for tier, *_ in TIERS:
        sizes = [t.contracts for t in tenants if t.tier == tier]
        orgs = sum(1 for t in tenants if t.tier == tier and t.crm == "salesforce")
        if sizes:
            lines.append(
                f"{len(sizes):>5} {tier:<6} books of {min(sizes):,}-{max(sizes):,} contracts "
                f"({sum(sizes):,} in all; {len(sizes) - orgs} HubSpot, {orgs} Salesforce)"
            )
    return lines


def seed_portal(portal: FleetPortal, contracts: int, today: date, rng: random.Random) -> int:
    """A portal's book (benchmarks.hubspot.seed): 5 owners, a company (with a renewal contact)
    per two deals, closed-won deals whose terms end over the coming year, one line item each.
    Returns the objects created."""
    portal.define_connector_properties()
    made = seed(
        portal,
        contracts,
        max(1, contracts // 2),
        owners=5,
        end_of=lambda _: today + timedelta(days=rng.randint(-20, 365)),
        skus=("SEAT",),
        archived=0,
    )
    return 5 + sum(made.values())


def serve(spec: dict) -> None:
    """Seed every tenant of `spec`, print where the fleets listen (HubSpot's URL, Salesforce's,
    the CA the latter's certificate is signed by), serve until stdin closes."""
    fleet = FleetHubSpot()
    fleet.start(spec.get("port", 0))
    orgs = FleetSalesforce()
    orgs.start(spec.get("sf_port", 0), Path(spec["ca_path"]))
    started = time.perf_counter()
    today = date.fromisoformat(spec["today"])
    rng = random.Random(spec["seed"])
    objects = 0
    for t in spec["tenants"]:
        if t["crm"] == "salesforce":
            org = orgs.add(t["token"], t["org_id"], t["allocation"])
            objects += seed_org(org, t["contracts"], today, rng)
            continue
        portal = fleet.add(
            t["token"],
            t["portal_id"],
            burst=LIMIT,
            search_per_second=SEARCH_PER_SECOND,
            interval=INTERVAL,
        )
        objects += seed_portal(portal, t["contracts"], today, rng)
    info = {
        "url": fleet.url,
        "salesforce_url": orgs.url,
        "ca_path": spec["ca_path"],
        "seconds": time.perf_counter() - started,
        "objects": objects,
    }
    print(json.dumps(info), flush=True)
    sys.stdin.read()
    fleet.stop()
    orgs.stop()


def spec_of(
    tenants: list[Tenant], today: date, seed: int, port: int, sf_port: int, ca_path: Path
) -> dict:
    return {
        "today": today.isoformat(),
        "seed": seed,
        "port": port,
        "sf_port": sf_port,
        "ca_path": str(ca_path),
        "tenants": [asdict(t) for t in tenants],
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        serve(json.load(f))
