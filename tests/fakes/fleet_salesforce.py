"""Many fake Salesforce orgs behind one loopback HTTPS server, for the fleet benchmark.

Each org is a FakeOrg (tests/fakes/salesforce_org.py: its records, SOQL, sObject Collections,
Sforce-Limit-Info on every REST answer, 403 REQUEST_LIMIT_EXCEEDED past its daily allocation)
served by `FakeOrg.answer` from one server that routes each request by its bearer token: an
OAuth connection's instance_url is https://127.0.0.1:PORT and its access token names its org.
The server's certificate comes from an in-process CA (trustme); clients trust it through
REQUESTS_CA_BUNDLE (`ca_path`), as simple-salesforce's requests session reads it.

Salesforce limits an org by a daily allocation of API requests (no rolling per-second limit);
Enterprise Edition: 100,000 + 1,000 per user licence (developer.salesforce.com, Salesforce
Developer Limits and Allocations Quick Reference, "API Request Limits and Allocations"). Every
org counts what it sees: requests, those refused, its use against its allocation (its share).

Admin over HTTP (the benchmark's workers are other processes): GET /__fleet__/stats (every
org's counters and duplicate keys), POST /__fleet__/edit (users change records)."""

from __future__ import annotations

import random
import ssl
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.fleet import Discard, TenantServer, extra_copies
from tests.fakes.loopback import send_json, send_text, serve
from tests.fakes.salesforce_org import INVALID_SESSION, FakeOrg

#: what identifies a record the connector writes: a key seen twice among live records is a
#: duplicate (the external id fields of mappings/salesforce.yaml)
KEYS = {
    "Opportunity": "Renewal_Key__c",
    "OpportunityLineItem": "Renewal_Line_Key__c",
    "Task": "Dedupe_Key__c",
}


def enterprise_allocation(licences: int) -> int:
    """An Enterprise Edition org's daily API requests: 100,000 + 1,000 per user licence."""
    return 100_000 + 1_000 * licences


class FleetOrg(FakeOrg):
    """One org of the fleet: FakeOrg answering one access token, counting what it serves."""

    def __init__(self, token: str, org_id: str, allocation: int):
        super().__init__(None, daily_limit=allocation)
        self.session = token
        self.org_id = org_id
        self.calls = Discard()
        self.lock = threading.Lock()
        self.requests = 0
        self.statuses: Counter[int] = Counter()

    def serve(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, str]:
        with self.lock:  # one request at a time: FakeOrg's records are plain dicts
            self.requests += 1
            answer = self.answer(method, target, headers, body)
            self.statuses[answer[0]] += 1
            return answer

    def duplicates(self) -> int:
        """Live records sharing a connector key (renewal opportunities, their lines, tasks)."""
        with self.lock:
            return sum(
                extra_copies(
                    r.get(field) for rid, r in self.records[obj].items() if rid not in self.deleted
                )
                for obj, field in KEYS.items()
            )

    def summary(self) -> dict[str, Any]:
        duplicates = self.duplicates()
        with self.lock:
            return {
                "org_id": self.org_id,
                "requests": self.requests,
                "refused": self.refused,
                "used": self.api_used,
                "allocation": self.api_limit,
                "renewals": sum(
                    1
                    for rid, r in self.records["Opportunity"].items()
                    if rid not in self.deleted and r.get("Renewal_Key__c")
                ),
                "duplicates": duplicates,
            }


def seed_org(org: FleetOrg, contracts: int, today: date, rng: random.Random) -> int:
    """An org's book, shaped as the fleet's HubSpot ones: 5 owners, an account (with a renewal
    contact) per two contracts, activated contracts whose terms end over the coming year, one
    line each (a line item of the deal the contract came from). Returns the records created."""
    org.now = datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=2)
    owners = [
        org.insert("User", {"Name": f"Rep{i} Owner", "Email": f"rep{i}@x.test", "IsActive": True})
        for i in range(5)
    ]
    product = org.insert("Product2", {"Name": "SEAT", "ProductCode": "SEAT", "ListPrice": 100.0})
    accounts = []
    for i in range(max(1, contracts // 2)):
        account = org.insert("Account", {"Name": f"Account {i}", "OwnerId": owners[i % 5]})
        org.insert(
            "Contact",
            {
                "AccountId": account,
                "Name": f"Ann Buyer {i}",
                "Email": f"ann{i}@acme.test",
                "Renewal_Contact__c": True,
            },
        )
        accounts.append(account)
    for i in range(contracts):
        end = today + timedelta(days=rng.randint(-20, 365))
        contract = org.insert(
            "Contract",
            {
                "AccountId": accounts[i % len(accounts)],
                "ContractNumber": f"{i:08d}",
                "Status": "Activated",
                "StartDate": (end - timedelta(days=365)).isoformat(),
                "EndDate": end.isoformat(),
                "CurrencyIsoCode": "USD",
            },
        )
        org.contract_line(contract, product, 10, 100.0)
    return 5 + 2 + 2 * len(accounts) + 3 * contracts  # users, product + entry; origin + line


class FleetSalesforce(TenantServer):
    """Orgs by access token behind one loopback HTTPS server."""

    kind = "orgs"

    def __init__(self) -> None:
        super().__init__()
        self.ca_pem = b""

    def add(self, token: str, org_id: str, allocation: int) -> FleetOrg:
        return self._register(token, org_id, FleetOrg(token, org_id, allocation))

    def start(self, port: int = 0, ca_path: Path | None = None) -> str:
        """Serve on 127.0.0.1:`port` over HTTPS; the CA's certificate (PEM) written to
        `ca_path` if given (what REQUESTS_CA_BUNDLE should name), and kept in `ca_pem`."""
        import trustme  # dev extra: only the fleet's fakes make certificates

        ca = trustme.CA()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
        self.ca_pem = ca.cert_pem.bytes()
        if ca_path is not None:
            Path(ca_path).write_bytes(self.ca_pem)
        self.server = serve(self._handle, port, tls)
        return self.url

    def edit(self, org: FleetOrg, obj: str, count: int, changes: dict[str, Any]) -> list[str]:
        """An org's users change the first `count` live records of `obj`: their ids."""
        with org.lock:
            ids = [rid for rid in org.records[obj] if rid not in org.deleted][:count]
            for rid in ids:
                org.edit(obj, rid, changes)
        return ids

    def _id_of(self, spec: dict) -> str:
        return str(spec["org_id"])

    def _error(self, message: str) -> list:
        return [{"message": message}]

    def _unknown(self, h: BaseHTTPRequestHandler) -> None:
        send_json(h, 401, INVALID_SESSION)

    def _serve(self, org: FleetOrg, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        status, headers, text = org.serve(h.command, h.path, h.headers, body)
        send_text(h, status, text, headers)
