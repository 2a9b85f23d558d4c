"""A Salesforce org in memory, behind `responses` (or any transport calling `answer`: the
fleet's loopback server, tests/fakes/fleet_salesforce.py): the REST wire format our adapter speaks.

It answers the SOAP login, /query and /queryAll (the SOQL subset the adapter writes: field
lists with Rel.Field paths, WHERE conditions joined by AND, ORDER BY, LIMIT), nextRecordsUrl
paging, sObject Collections (upsert by External ID, create, update, delete) with per-record
errors shaped as in the fixtures, describe, limits and the Tooling API's CustomField create;
Composite requests (salesforce_composite.py) and Bulk API 2.0 query and ingest jobs
(salesforce_bulk.py, salesforce_ingest.py) with their documented rules.
Every REST answer carries Sforce-Limit-Info; past the daily allocation (`daily_limit`) calls are
refused with 403 REQUEST_LIMIT_EXCEEDED. Tests queue faults and can expire the session.

The admin side (insert/edit/remove/get/all) matches the sandbox CRM's, so one test harness
seeds both.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import responses

from tests.fakes.salesforce_bulk import FakeBulkJobs
from tests.fakes.salesforce_composite import FakeComposite
from tests.fakes.salesforce_ingest import FakeIngestJobs

INSTANCE = "fake.my.salesforce.com"
VERSION = "59.0"
BASE = f"https://{INSTANCE}/services/data/v{VERSION}/"
PREFIXES = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "AccountContactRole": "02Z",
    "Contract": "800",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Task": "00T",
}
EXTERNAL_IDS = {
    "Opportunity": "Renewal_Key__c",
    "OpportunityLineItem": "Renewal_Line_Key__c",
    "Task": "Dedupe_Key__c",
}
CREATE_ONLY = {"OpportunityLineItem": ("OpportunityId", "PricebookEntryId")}
REQUIRED = {
    "Opportunity": ("Name", "StageName", "CloseDate"),
    "OpportunityLineItem": ("OpportunityId", "PricebookEntryId", "Quantity"),
    "Task": ("Subject",),
}
#: Read-only fields Salesforce derives on save.
DERIVED = {
    "OpportunityLineItem": {"ProductCode", "Product2Id"},
    "Task": {"AccountId", "CompletedDateTime"},
}
#: Task statuses whose TaskStatus.IsClosed is true ("Multiple task status values can represent
#: a closed task": developer.salesforce.com object_reference, TaskStatus); of the standard ones,
#: Completed only
CLOSED_TASK_STATUSES = {"Completed"}
LOGIN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>
<serverUrl>https://{instance}/services/Soap/u/{version}/00D000000000062</serverUrl>
<sessionId>{session}</sessionId></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
LOGIN_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>
<faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN</faultstring><detail>
<sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>
<sf:exceptionMessage>Invalid username, password, security token; or user locked out.
</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>
</soapenv:Envelope>"""
#: Field types for describe (per object; anything else is a string).
TYPES = {
    "Id": "id",
    "IsActive": "boolean",
    "IsDeleted": "boolean",
    "Renewal_Contact__c": "boolean",
    "StartDate": "date",
    "EndDate": "date",
    "CloseDate": "date",
    "ActivityDate": "date",
    "Amount": "currency",
    "UnitPrice": "currency",
    "Quantity": "double",
    "Renewal_Uplift__c": "percent",
    "SystemModstamp": "datetime",
    "CompletedDateTime": "datetime",
    "StageName": "picklist",
    "Type": "picklist",
    "Status": "picklist",
    "Priority": "picklist",
    "Line_Type__c": "picklist",
    "NPS__c": "double",
    "Open_Tickets__c": "double",
    "High_Priority_Tickets__c": "double",
    "Late_Payments__c": "double",
    "Health_Score__c": "double",
    "Last_Meeting_Date__c": "date",
    "Executive_Sponsor__c": "boolean",
    "Loss_Reason__c": "picklist",
    "IsRecurring__c": "boolean",
    "IsStandard": "boolean",
    "IsPrimary": "boolean",
    "SBQQ__RenewalForecast__c": "boolean",
    "SBQQ__Renewal__c": "boolean",
}
REFERENCES = {
    "OwnerId": "User",
    "ManagerId": "User",
    "AccountId": "Account",
    "ContractId": "Contract",
    "Contract__c": "Contract",
    "Renewal_Contract__c": "Contract",
    "OpportunityId": "Opportunity",
    "Product2Id": "Product2",
    "PricebookEntryId": "PricebookEntry",
    "Pricebook2Id": "Pricebook2",
    "WhatId": ("Opportunity", "Account", "Contract"),  # polymorphic (what the task is about)
    "WhoId": "Contact",
    "ContactId": "Contact",
    "SBQQ__RenewalOpportunity__c": "Opportunity",
    "SBQQ__RenewedContract__c": "Contract",
}
SCHEMA = {
    "User": "Id Name Email IsActive ManagerId SystemModstamp",
    "Account": "Id Name OwnerId Type NPS__c Open_Tickets__c High_Priority_Tickets__c "
    "Late_Payments__c Last_Meeting_Date__c Executive_Sponsor__c Health_Score__c Health_Grade__c "
    "Health_Drivers__c Health_Trend__c SystemModstamp IsDeleted",
    "Contact": "Id AccountId Name Email Title Renewal_Contact__c SystemModstamp IsDeleted",
    "Contract": "Id AccountId ContractNumber Status StartDate EndDate OwnerId "
    "Renewal_Uplift__c CurrencyIsoCode SBQQ__RenewalForecast__c SBQQ__RenewalOpportunity__c "
    "SystemModstamp IsDeleted",
    "AccountContactRole": "Id AccountId ContactId Role IsPrimary SystemModstamp IsDeleted",
    "Product2": "Id Name ProductCode IsRecurring__c SystemModstamp IsDeleted",
    "Pricebook2": "Id Name IsStandard IsActive SystemModstamp IsDeleted",
    "PricebookEntry": "Id Pricebook2Id Product2Id UnitPrice IsActive SystemModstamp",
    "Opportunity": "Id Name AccountId StageName CloseDate Amount OwnerId Type Pricebook2Id "
    "Contract__c Renewal_Key__c Renewal_Contract__c Health_Score__c Health_Grade__c "
    "Health_Drivers__c Loss_Reason__c SystemModstamp IsDeleted",
    "OpportunityLineItem": "Id OpportunityId PricebookEntryId Product2Id ProductCode Quantity "
    "UnitPrice Description Line_Type__c Renewal_Line_Key__c SystemModstamp IsDeleted",
    "Task": "Id Subject Description OwnerId WhatId WhoId AccountId ActivityDate Status "
    "Priority Dedupe_Key__c Renewal_Key__c CompletedDateTime SystemModstamp IsDeleted",
}
#: Salesforce's error bodies, as the official samples have them: a refused session (401) and
#: the 403 past the daily allocation
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
INVALID_SESSION = json.loads((SAMPLES / "error_invalid_session_id.json").read_text())
LIMIT_EXCEEDED = json.loads((SAMPLES / "error_request_limit_exceeded.json").read_text())
RELATIONS = {
    "Product2": "Product2Id",
    "Opportunity": "OpportunityId",
    "Account": "AccountId",
    "Contact": "ContactId",
}


class FakeOrg:
    def __init__(
        self,
        rsps: responses.RequestsMock | None,
        *,
        daily_limit: int = 1_000_000,
        sessions: Callable[[str], bool] | None = None,
    ):
        self.rsps = rsps
        #: opt-in: the bearer tokens the org accepts are those this says are live (an OAuth
        #: login server's, tests/fakes/salesforce_oauth.py: FakeSalesforceLogin.live), not the
        #: session of a SOAP or JWT login
        self.sessions = sessions
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in PREFIXES}
        self._ext: dict[tuple[str, Any], list[str]] = {}  # (object, external id) -> ids
        self.deleted: set[str] = set()
        self.counter = itertools.count(1)
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        self.tick = timedelta(seconds=1)
        self.api_used, self.api_limit = 0, daily_limit
        self.refused = 0  # calls answered REQUEST_LIMIT_EXCEEDED
        self.session = "SESSION-1"
        self.logins = 0
        self.password_ok = True
        self.faults: list[tuple[int, Any, dict[str, str]]] = []
        self.calls: list[tuple[str, str]] = []
        self.cursors: dict[str, list[dict]] = {}
        self.schema = {o: f.split() for o, f in SCHEMA.items()}
        self.created_fields: list[dict] = []
        self.token_requests: list[dict] = []
        self.origins: dict[str, str] = {}  # contract id -> the opportunity it came from
        #: per-record refusals inside a successful collection call: (object, record fields)
        #: -> (statusCode, message), or None to let the record through
        self.refuse_record: Callable[[str, dict], tuple[str, str] | None] | None = None
        self.lines_of: dict[str, set[str]] = {}  # opportunity id -> its line items' ids
        #: what the org runs after a record is saved through the API: (object, before, after)
        self.after_save: list[Callable[[str, dict, dict], None]] = []
        #: Bulk API 2.0 query jobs (tests/fakes/salesforce_bulk.py)
        self.bulk = FakeBulkJobs(self)
        #: Bulk API 2.0 ingest jobs (tests/fakes/salesforce_ingest.py)
        self.ingest = FakeIngestJobs(self, VERSION)
        #: Composite requests (tests/fakes/salesforce_composite.py)
        self.composite = FakeComposite(self, VERSION)
        self.standard_pricebook = self.insert(
            "Pricebook2", {"Name": "Standard Price Book", "IsStandard": True, "IsActive": True}
        )
        if rsps is not None:  # None: another transport calls `answer` (a loopback server)
            self._routes()

    # ------------------------------------------------------------------ admin side

    def insert(self, obj: str, fields: dict[str, Any], ext_key: str | None = None) -> str:
        record_id = f"{PREFIXES[obj]}FK{next(self.counter):010d}AAA"
        rec = {**fields, "Id": record_id, "SystemModstamp": self._stamp()}
        if ext_key is not None:
            rec[EXTERNAL_IDS[obj]] = ext_key
        if obj == "Product2":  # every product gets an entry in the standard price book
            self.records[obj][record_id] = rec
            self._index(obj, record_id, rec)
            self.insert(
                "PricebookEntry",
                {
                    "Pricebook2Id": self.standard_pricebook,
                    "Product2Id": record_id,
                    "UnitPrice": fields.get("ListPrice", 0),
                    "IsActive": True,
                },
            )
            return record_id
        self._derive(obj, rec)
        self.records[obj][record_id] = rec
        self._index(obj, record_id, rec)
        if obj == "OpportunityLineItem":
            self.lines_of.setdefault(rec.get("OpportunityId"), set()).add(record_id)
            self._roll_up(rec.get("OpportunityId"))
        return record_id

    def edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        rec = self.records[obj][record_id]
        if obj == "Opportunity" and self.line_items(record_id):
            changes = {k: v for k, v in changes.items() if k != "Amount"}  # derived, see _roll_up
        rec.update(changes, SystemModstamp=self._stamp())
        self._index(obj, record_id, rec)
        if obj == "Task":
            self._derive(obj, rec)
        if obj == "OpportunityLineItem":
            self._roll_up(rec.get("OpportunityId"))

    def remove(self, obj: str, record_id: str) -> None:
        self.deleted.add(record_id)
        self.records[obj][record_id]["SystemModstamp"] = self._stamp()
        if obj == "OpportunityLineItem":
            self._roll_up(self.records[obj][record_id].get("OpportunityId"))

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        return dict(self.records[obj][record_id])

    def all(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [
            dict(r)
            for i, r in sorted(self.records[obj].items())
            if include_deleted or i not in self.deleted
        ]

    def contract_line(self, contract_id: str, product_id: str, qty: float, price: float) -> str:
        """A contract line as the Salesforce mapping reads them: a line item of the (closed won)
        opportunity the contract came from, created with the first line."""
        origin = self.origins.get(contract_id)
        if origin is None:
            origin = self.origins[contract_id] = self.insert(
                "Opportunity",
                {
                    "Name": "Original deal",
                    "AccountId": self.get("Contract", contract_id)["AccountId"],
                    "StageName": "Closed Won",
                    "CloseDate": "2025-01-01",
                    "Contract__c": contract_id,
                    "Pricebook2Id": self.standard_pricebook,
                },
            )
        entry = next(
            i for i, e in self.records["PricebookEntry"].items() if e["Product2Id"] == product_id
        )
        return self.insert(
            "OpportunityLineItem",
            {
                "OpportunityId": origin,
                "PricebookEntryId": entry,
                "Quantity": qty,
                "UnitPrice": price,
            },
        )

    def expire_session(self) -> None:
        self.session = f"SESSION-{self.logins + 2}"  # the old token no longer works

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.faults.append((status, body, headers or {}))

    def calls_to(self, fragment: str) -> int:
        return sum(fragment in path for _, path in self.calls)

    # ------------------------------------------------------------------ wire

    def _routes(self) -> None:
        r = self.rsps
        r.add_callback(
            "POST",
            re.compile(r"https://(login|test)\.salesforce\.com/services/Soap/u/.*"),
            self._login,
        )
        r.add_callback(
            "POST",
            re.compile(r"https://(login|test)\.salesforce\.com/services/oauth2/token"),
            self._token,
        )
        pattern = re.compile(re.escape(f"https://{INSTANCE}/services/data/") + ".*")
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            r.add_callback(method, pattern, self._rest)

    def _login(self, request) -> tuple[int, dict, str]:
        if not self.password_ok:
            return 500, {"Content-Type": "text/xml"}, LOGIN_FAULT
        self.logins += 1
        self.session = f"SESSION-{self.logins}"
        body = LOGIN_XML.format(instance=INSTANCE, version=VERSION, session=self.session)
        return 200, {"Content-Type": "text/xml"}, body

    def _token(self, request) -> tuple[int, dict, str]:
        """OAuth 2.0 token endpoint (JWT bearer grant); the assertion is kept for tests."""
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.token_requests.append(form)
        if not self.password_ok:
            error = {
                "error": "invalid_grant",
                "error_description": "user hasn't approved this consumer",
            }
            return 400, {}, json.dumps(error)
        self.logins += 1
        self.session = f"SESSION-{self.logins}"
        answer = {"access_token": self.session, "instance_url": f"https://{INSTANCE}"}
        return 200, {}, json.dumps(answer)

    def _rest(self, request) -> tuple[int, dict, str]:
        return self.answer(request.method, request.url, request.headers, request.body)

    def answer(self, method: str, url: str, headers, body) -> tuple[int, dict, str]:
        """One REST request (a full URL, or a path with its query; headers with a
        case-insensitive `get`; body as sent): (status, headers, text). Whatever carries the
        request: `responses` here, a loopback server in tests/fakes/fleet_salesforce.py."""
        parts = urlparse(url)
        path = parts.path.removeprefix(f"/services/data/v{VERSION}/")
        self.calls.append((method, path))
        if parts.path == "/services/data/":  # versions: no auth, no usage header
            versions = [{"version": v, "url": f"/services/data/v{v}"} for v in ("58.0", VERSION)]
            return 200, {}, json.dumps(versions)
        if not self._authorised(headers.get("Authorization") or ""):
            return 401, {}, json.dumps(INVALID_SESSION)
        if self.api_used >= self.api_limit:
            # errorcodes.htm: 403 "If the error code is REQUEST_LIMIT_EXCEEDED, you've exceeded
            # API request limits in your org"; a refused call uses none of the allocation
            self.refused += 1
            usage = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}
            return 403, usage, json.dumps(LIMIT_EXCEEDED)
        self.api_used += 1
        usage = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}
        if self.faults:
            status, answer, extra = self.faults.pop(0)
            return status, {**usage, **extra}, json.dumps(answer)
        if method != "GET":
            self.now += self.tick  # records written by one call share their SystemModstamp
        if path.startswith("jobs/ingest"):  # Bulk API 2.0 ingest jobs: CSV up and down
            status, extra, text = self.ingest.answer(method, path, body, headers)
            return status, {**usage, **extra}, text
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        sent = json.loads(body) if body else None
        if path.startswith("jobs/query"):  # Bulk API 2.0 query jobs: CSV results
            status, extra, text = self.bulk.answer(method, path, query, sent)
            return status, {**usage, **extra}, text
        status, answer = self.dispatch(method, path, query, sent, headers)
        return status, usage, json.dumps(answer) if answer is not None else ""

    def _authorised(self, header: str) -> bool:
        if self.sessions is None:
            return header == f"Bearer {self.session}"
        return header.startswith("Bearer ") and self.sessions(header.removeprefix("Bearer "))

    def dispatch(self, method: str, path: str, query: dict, body: Any, headers) -> tuple:
        """(status, JSON answer) of one REST request under the versioned base URL (a Composite
        subrequest comes here too)."""
        try:
            return self._dispatch(method, path, query, body, headers)
        except SoqlError as exc:
            return 400, [{"message": str(exc), "errorCode": "MALFORMED_QUERY"}]

    def _dispatch(self, method: str, path: str, query: dict, body: Any, headers) -> tuple:
        if method == "POST" and path == "composite":
            return self.composite.answer(body, headers)
        if method == "GET" and path in ("query/", "queryAll/"):
            found = re.search(r"batchSize=(\d+)", headers.get("Sforce-Query-Options") or "")
            size = int(found.group(1)) if found else 2000
            rows = self._soql(query["q"], include_deleted=path == "queryAll/")
            return 200, self._page(rows, size)
        if method == "GET" and path.startswith("query/"):
            return 200, self._next(path.removeprefix("query/"))
        if method == "GET" and path == "limits/":
            return 200, {
                "DailyApiRequests": {
                    "Max": self.api_limit,
                    "Remaining": self.api_limit - self.api_used,
                }
            }
        if method == "GET" and path.startswith("sobjects/") and path.endswith("/describe"):
            return self._describe(path.split("/")[1])
        if path.startswith("composite/sobjects"):
            parts = path.split("/")[2:]
            sent = len(body["records"]) if body else len(query.get("ids", "").split(","))
            if sent > 200:  # "up to 200 records" (resources_composite_sobjects_collections_*
                # .htm); the error's code as integrations report it (unconfirmed in the docs)
                return 400, [
                    {
                        "message": "record limit reached. cannot submit more than 200 records "
                        "into this call",
                        "errorCode": "EXCEEDED_ID_LIMIT",
                    }
                ]
            if method == "PATCH" and len(parts) == 2:
                return 200, [
                    self._refused(parts[0], r) or self._upsert(parts[0], parts[1], r)
                    for r in body["records"]
                ]
            if method == "POST" and not parts:
                return 200, [self._refused(None, r) or self._create(r) for r in body["records"]]
            if method == "PATCH" and not parts:
                return 200, [self._refused(None, r) or self._update(r) for r in body["records"]]
            if method == "DELETE":
                return 200, [self._delete(i) for i in query["ids"].split(",")]
        if method == "POST" and path == "tooling/sobjects/CustomField/":
            obj, name = body["FullName"].split(".")
            self.schema["Task" if obj == "Activity" else obj].append(name)
            self.created_fields.append(body)
            return 201, {"id": "00NFAKE", "success": True, "errors": []}
        return 404, [{"message": f"no fake for {method} {path}", "errorCode": "NOT_FOUND"}]

    def _page(self, rows: list[dict], size: int) -> dict:
        first, rest = rows[:size], rows[size:]
        page: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": first}
        if rest:
            token = f"01gFAKE{next(self.counter)}-{size}"
            self.cursors[token] = [size, rest]  # type: ignore[list-item]
            page["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{token}"
        return page

    def _next(self, token: str) -> dict:
        size, rows = self.cursors.pop(token)
        return self._page(rows, size)

    # ------------------------------------------------------------------ SOQL subset

    def _soql(self, soql: str, include_deleted: bool) -> list[dict]:
        obj, names, rows = self.select_rows(soql, include_deleted)
        return [self._shape(obj, r, names) for r in rows]

    def select_rows(self, soql: str, include_deleted: bool) -> tuple[str, list[str], list[dict]]:
        """The object, the selected names and the matching records (IsDeleted set) of a query
        in the subset the adapter writes."""
        m = re.fullmatch(
            r"SELECT (?P<fields>.+?) FROM (?P<obj>\w+)(?: WHERE (?P<where>.+?))?"
            r"(?: ORDER BY (?P<order>[\w., ]+?))?(?: LIMIT (?P<limit>\d+))?",
            soql.strip(),
        )
        if not m:
            raise SoqlError(f"unsupported SOQL: {soql}")
        obj = m["obj"]
        names = [f.strip() for f in m["fields"].split(",")]
        for name in names:
            head = name.split(".")[0]
            if head not in self.schema[obj] and _ref_field(head) not in self.schema[obj]:
                raise SoqlError(f"No such column '{name}' on entity '{obj}'")
        conds = [_expr(c) for c in _split(m["where"], " AND ")] if m["where"] else []
        out = []
        for rid, rec in self.records[obj].items():
            if rid in self.deleted and not include_deleted:
                continue
            full = {**rec, "IsDeleted": rid in self.deleted}
            if all(self._match(obj, full, c) for c in conds):
                out.append(full)
        if m["order"]:
            keys = [k.strip() for k in m["order"].split(",")]
            out.sort(key=lambda r: tuple(_sortable(self._value(obj, r, k)) for k in keys))
        if m["limit"]:
            out = out[: int(m["limit"])]
        return obj, names, out

    def _value(self, obj: str, rec: dict, name: str) -> Any:
        if "." not in name:
            return rec.get(name)
        rel, field = name.split(".", 1)
        target_id = rec.get(_ref_field(rel))
        for records in self.records.values():
            if target_id in records:
                return self._value("", records[target_id], field)
        return None

    def _match(self, obj: str, rec: dict, cond: tuple) -> bool:
        if cond[0] in ("AND", "OR"):
            test = all if cond[0] == "AND" else any
            return test(self._match(obj, rec, c) for c in cond[1])
        name, op, want = cond
        have = self._value(obj, rec, name)
        if name == "SystemModstamp" and have is not None:
            have = _dt(have)
        if op == "IN":
            return have in want
        if op in ("=", "!="):
            return (have == want) == (op == "=")
        if have is None:
            return False
        return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op]

    def _shape(self, obj: str, rec: dict, names: list[str]) -> dict:
        out: dict[str, Any] = {"attributes": {"type": obj, "url": f"/sobjects/{obj}/{rec['Id']}"}}
        for name in names:
            if "." in name:
                rel, field = name.split(".", 1)
                value = self._value(obj, rec, name)
                if rec.get(_ref_field(rel)) is None:
                    out[rel] = None
                else:
                    out.setdefault(rel, {"attributes": {"type": rel}})[field] = value
            else:
                out[name] = rec.get(name)
        return out

    # ------------------------------------------------------------------ writes

    def _refused(self, obj: str | None, rec: dict) -> dict | None:
        """A test's per-record refusal (UNABLE_TO_LOCK_ROW, ...): one record of a call fails."""
        obj = obj or rec.get("attributes", {}).get("type", "")
        refusal = self.refuse_record(obj, rec) if self.refuse_record else None
        return _error(*refusal) if refusal else None

    def _upsert(self, obj: str, ext_field: str, rec: dict) -> dict:
        if rec.get("attributes", {}).get("type") != obj:
            return _error("INVALID_TYPE", "attributes.type must match the URI's sObject")
        key = rec.get(ext_field)
        found = self._by_ext(obj, ext_field, key)
        fields = {k: v for k, v in rec.items() if k != "attributes"}
        if found:
            bad = [f for f in CREATE_ONLY.get(obj, ()) if f in fields]
            if bad:
                return _error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(bad)}.",
                    bad,
                )
            return self._save(obj, found[0], fields, created=False)
        return self._save(obj, None, fields, created=True)

    def _index(self, obj: str, rid: str, rec: dict) -> None:
        """Keep the external-id lookup of `_by_ext` (a scan of every record before: minutes
        for a 10,000-contract benchmark)."""
        field = EXTERNAL_IDS.get(obj)
        if field and rec.get(field) is not None:
            ids = self._ext.setdefault((obj, rec[field]), [])
            if rid not in ids:
                ids.append(rid)

    def _by_ext(self, obj: str, field: str, key: Any) -> list[str]:
        """Live records of `obj` whose `field` is `key`, oldest first."""
        if field != EXTERNAL_IDS.get(obj):
            return [
                i
                for i, r in self.records[obj].items()
                if r.get(field) == key and i not in self.deleted
            ]
        records = self.records[obj]
        return [
            i
            for i in self._ext.get((obj, key), ())
            if i in records and i not in self.deleted and records[i].get(field) == key
        ]

    def _create(self, rec: dict) -> dict:
        obj = rec["attributes"]["type"]
        fields = {k: v for k, v in rec.items() if k != "attributes"}
        ext = EXTERNAL_IDS.get(obj)
        taken = self._by_ext(obj, ext, fields[ext]) if ext and fields.get(ext) else []
        if taken:
            return _error(
                "DUPLICATE_VALUE",
                f"duplicate value found: {ext} duplicates value on record with id: {taken[0]}",
                [ext],
            )
        result = self._save(obj, None, fields, created=True)
        result.pop("created", None)
        return result

    def _update(self, rec: dict) -> dict:
        obj = rec["attributes"]["type"]
        rid = rec.get("id")
        if rid not in self.records[obj] or rid in self.deleted:
            return _error("ENTITY_IS_DELETED", "entity is deleted")
        fields = {k: v for k, v in rec.items() if k not in ("attributes", "id")}
        result = self._save(obj, rid, fields, created=False)
        result.pop("created", None)
        return result

    def _delete(self, rid: str) -> dict:
        for obj, records in self.records.items():
            if rid in records:
                if rid in self.deleted:
                    return _error("ENTITY_IS_DELETED", "entity is deleted")
                self.remove(obj, rid)
                return {"id": rid, "success": True, "errors": []}
        return _error("INVALID_CROSS_REFERENCE_KEY", f"invalid id: {rid}")

    def _save(self, obj: str, rid: str | None, fields: dict, created: bool) -> dict:
        merged = {**(self.records[obj].get(rid, {}) if rid else {}), **fields}
        unknown = [f for f in fields if f not in self.schema[obj] or f in DERIVED.get(obj, ())]
        if unknown:
            return _error("INVALID_FIELD", f"No such column '{unknown[0]}' on sobject {obj}")
        missing = [f for f in REQUIRED.get(obj, ()) if merged.get(f) in (None, "")]
        if missing:
            return _error(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing
            )
        owner = merged.get("OwnerId")
        if owner is not None and not self.records["User"].get(owner, {}).get("IsActive"):
            return _error(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{owner}] as owner of {obj.lower()}",
            )
        for name, target in REFERENCES.items():
            value = merged.get(name)
            targets = target if isinstance(target, tuple) else (target,)
            if name in fields and value and not any(value in self.records[t] for t in targets):
                return _error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}")
        entry = self.records["PricebookEntry"].get(fields.get("PricebookEntryId"))
        if obj == "OpportunityLineItem" and entry and not entry.get("IsActive"):
            return _error(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry is inactive)",
                ["PricebookEntryId"],
            )
        if obj == "Opportunity" and rid and self.line_items(rid):
            # help.salesforce.com 004052228: with products, Amount is the sum of their Total
            # Price and not editable; an update that sets it succeeds and leaves it unchanged
            merged["Amount"] = self.records[obj][rid].get("Amount")
        if rid is None:
            rid = f"{PREFIXES[obj]}FK{next(self.counter):010d}AAA"
        merged.update(Id=rid, SystemModstamp=self._stamp(advance=False))
        self._derive(obj, merged)
        before = self.records[obj].get(rid, {})
        self.records[obj][rid] = merged
        self._index(obj, rid, merged)
        for hook in self.after_save:
            hook(obj, before, merged)
        if obj == "OpportunityLineItem":
            self.lines_of.setdefault(merged.get("OpportunityId"), set()).add(rid)
            self._roll_up(merged.get("OpportunityId"))
        return {"id": rid, "success": True, "errors": [], "created": created}

    def line_items(self, opportunity_id: str) -> list[dict]:
        """The live line items of an opportunity (what its Amount is rolled up from)."""
        items = self.records["OpportunityLineItem"]
        return [
            items[i]
            for i in sorted(self.lines_of.get(opportunity_id, ()))
            if i in items and i not in self.deleted  # a purged one is gone from records
        ]

    def _roll_up(self, opportunity_id: str | None) -> None:
        """Opportunity.Amount = the sum of its line items' TotalPrice (Quantity x UnitPrice),
        saved as a change of the opportunity (it shows in change reads)."""
        opp = self.records["Opportunity"].get(opportunity_id or "")
        lines = self.line_items(opportunity_id or "")
        if opp is None or not lines:
            return
        total = sum(float(r.get("Quantity") or 0) * float(r.get("UnitPrice") or 0) for r in lines)
        opp.update(Amount=round(total, 2), SystemModstamp=self._stamp(advance=False))

    def _derive(self, obj: str, rec: dict) -> None:
        if obj == "OpportunityLineItem" and rec.get("PricebookEntryId"):
            entry = self.records["PricebookEntry"][rec["PricebookEntryId"]]
            rec["Product2Id"] = entry["Product2Id"]
            rec["ProductCode"] = self.records["Product2"][entry["Product2Id"]].get("ProductCode")
        if obj == "Task":  # Task.AccountId is derived from WhatId, else WhoId (not writable)
            what, who = rec.get("WhatId"), rec.get("WhoId")
            if what in self.records["Account"]:
                rec["AccountId"] = what
            elif what in self.records["Opportunity"] or what in self.records["Contract"]:
                parent = self.records["Opportunity"].get(what) or self.records["Contract"][what]
                rec["AccountId"] = parent.get("AccountId")
            else:
                rec["AccountId"] = self.records["Contact"].get(who or "", {}).get("AccountId")
            # CompletedDateTime: set when the task is saved with a closed status, else empty
            closed = rec.get("Status") in CLOSED_TASK_STATUSES
            rec["CompletedDateTime"] = (
                (rec.get("CompletedDateTime") or self._stamp(False)) if closed else None
            )

    def _describe(self, obj: str) -> tuple[int, Any]:
        if obj not in self.schema:
            return 404, [
                {"message": f"sObject type '{obj}' is not supported.", "errorCode": "NOT_FOUND"}
            ]
        fields = []
        for name in self.schema[obj]:
            kind = TYPES.get(name, "reference" if name in REFERENCES else "string")
            fields.append(
                {
                    "name": name,
                    "type": kind,
                    "externalId": EXTERNAL_IDS.get(obj) == name,
                    "unique": EXTERNAL_IDS.get(obj) == name,
                    "idLookup": name == "Id" or EXTERNAL_IDS.get(obj) == name,
                    "createable": name not in ("Id", "SystemModstamp", "IsDeleted")
                    and name not in DERIVED.get(obj, ()),
                    "updateable": name not in ("Id", "SystemModstamp", "IsDeleted")
                    and name not in CREATE_ONLY.get(obj, ())
                    and name not in DERIVED.get(obj, ()),
                    "referenceTo": _targets(REFERENCES.get(name, ())),
                    "relationshipName": _relationship(name),
                    "picklistValues": [
                        {
                            "active": True,
                            "defaultValue": False,
                            "label": v,
                            "validFor": None,
                            "value": v,
                        }
                        for v in PICKLISTS.get((obj, name), ())
                    ],
                }
            )
        return 200, {
            "name": obj,
            "queryable": True,
            "createable": True,
            "updateable": True,
            "fields": fields,
        }

    def _stamp(self, advance: bool = True) -> str:
        if advance:
            self.now += self.tick
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


#: Picklist values describe serves (`picklistValues`: active, defaultValue, label, validFor,
#: value). Contract.Status and the Task ones are Salesforce's defaults; Line_Type__c is what
#: `renewals setup salesforce --apply` creates (the mapping's value map keys).
PICKLISTS = {
    ("Opportunity", "Type"): ("New Business", "Renewal"),
    ("Opportunity", "StageName"): ("Prospecting", "Negotiation", "Closed Won", "Closed Lost"),
    ("Contract", "Status"): ("Draft", "In Approval Process", "Activated"),
    ("Task", "Status"): (
        "Not Started",
        "In Progress",
        "Completed",
        "Waiting on someone else",
        "Deferred",
    ),
    ("Task", "Priority"): ("High", "Normal", "Low"),
    ("OpportunityLineItem", "Line_Type__c"): ("Renewal", "Upsell", "Cross-sell"),
}


#: fields that differ between two orgs holding the same data (ids, save times)
VOLATILE = {"Id", "SystemModstamp", "CreatedDate", "LastModifiedDate"}


def written_state(org: FakeOrg) -> dict[str, dict[str, dict[str, Any]]]:
    """What the connector wrote, comparable across orgs: each record under its external key,
    its lookups to written records as their keys."""
    keys = {
        r["Id"]: r.get(field)
        for obj, field in EXTERNAL_IDS.items()
        for r in org.all(obj)
        if r.get(field)
    }
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for obj, field in EXTERNAL_IDS.items():
        out[obj] = {
            r[field]: {k: keys.get(v, v) for k, v in r.items() if k not in VOLATILE}
            for r in org.all(obj)
            if r.get(field)
        }
    return out


def _ref_field(relationship: str) -> str:
    """The lookup field behind a relationship name (Account -> AccountId, X__r -> X__c)."""
    if relationship.endswith("__r"):
        return relationship[:-3] + "__c"
    return RELATIONS.get(relationship, relationship + "Id")


def _relationship(field: str) -> str | None:
    """A lookup's relationship name: AccountId -> Account, Contract__c -> Contract__r."""
    if field.endswith("__c") and field in REFERENCES:
        return field[:-3] + "__r"
    return field[:-2] if field.endswith("Id") and field != "Id" else None


def _targets(target: str | tuple[str, ...]) -> list[str]:
    return list(target) if isinstance(target, tuple) else [target]


class SoqlError(ValueError):
    pass


def _error(code: str, message: str, fields: list[str] | None = None) -> dict:
    return {
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
    }


def _split(text: str, joiner: str) -> list[str]:
    """Split at `joiner` outside parentheses and quotes."""
    parts, depth, quoted, current, i = [], 0, False, "", 0
    while i < len(text):
        ch = text[i]
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if not quoted and depth == 0 and text.startswith(joiner, i):
            parts.append(current)
            current, i = "", i + len(joiner)
            continue
        current += ch
        i += 1
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _expr(text: str) -> tuple:
    """A condition tree: ("OR"|"AND", [subtrees]) or (field, op, value)."""
    text = text.strip()
    ors = _split(text, " OR ")
    if len(ors) > 1:
        return ("OR", [_expr(t) for t in ors])
    ands = _split(text, " AND ")
    if len(ands) > 1:
        return ("AND", [_expr(t) for t in ands])
    if text.startswith("(") and text.endswith(")") and not re.match(r"[\w.]+ (NOT )?IN ", text):
        return _expr(text[1:-1])
    return _cond(text)


def _cond(text: str) -> tuple[str, str, Any]:
    m = re.fullmatch(r"([\w.]+) (=|!=|<=|>=|<|>|IN) (.+)", text)
    if not m:
        raise SoqlError(f"unsupported condition: {text}")
    name, op, raw = m.groups()
    if op == "IN":
        items = re.findall(r"'((?:[^'\\]|\\.)*)'", raw)
        return name, op, {i.replace("\\'", "'") for i in items}
    return name, op, _literal(raw)


def _literal(raw: str) -> Any:
    if raw.startswith("'"):
        return raw[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\dT.*", raw):
        return _dt(raw)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", raw):
        return raw
    return float(raw)


def _dt(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)


def _sortable(value: Any) -> tuple:
    return (value is not None, str(value) if value is not None else "")
