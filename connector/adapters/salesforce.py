"""The Salesforce adapter: the CRM port over simple-salesforce and the REST API.

Reads are SOQL built with `format_soql`, through queryAll so deleted and merged records come
back flagged, ordered by (SystemModstamp, Id) and paged with nextRecordsUrl. Writes go through
sObject Collections, 200 records a call with allOrNone false, upserting by the mapping's External
ID field, so every record gets its own result and a re-run never duplicates. Every REST call is
counted, its Sforce-Limit-Info read, and the run stops before the org's daily API use passes the
configured share.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from connector.config_sections import SalesforceSettings
from connector.domain.mapping import Mapping as FieldMapping
from connector.domain.models import WRITE_KINDS
from connector.domain.policy import RenewalPolicy
from connector.errors import (
    ApiLimitReached,
    ConfigError,
    CrmError,
    FatalCrmError,
    Problem,
    RetriableCrmError,
)
from connector.ports import Check, Cursor, OutboundRecord, SourceRecord, WriteResult

log = logging.getLogger(__name__)

#: Which environment variables each `salesforce.auth` variant reads.
AUTH_ENV = {
    "password": ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"),
    "jwt": ("SALESFORCE_USERNAME", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_PRIVATE_KEY_FILE"),
    "session": ("SALESFORCE_SESSION_ID", "SALESFORCE_INSTANCE_URL"),
}
#: Per-record or per-call codes worth another try (Salesforce's own advice: retry later).
RETRIABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"}
#: Objects that have no IsDeleted field (queried without it, through /query).
NO_RECYCLE_BIN = {"User", "UserRole", "Profile", "PricebookEntry"}
#: Fields sent only when a record is created: Salesforce refuses them on update (a line's
#: opportunity and price book entry), or an update would undo a rep's change (a renewal's price
#: book, which the connector sets on insert: a rep may switch it later).
CREATE_ONLY = {
    "OpportunityLineItem": ("OpportunityId", "PricebookEntryId"),
    "Opportunity": ("Pricebook2Id",),
}
#: Where a child record points at its renewal opportunity.
PARENT_FIELD = {"renewal_line": "OpportunityId", "task": "WhatId"}
SOQL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE"}
DUPLICATE_ID = re.compile(r"id:\s*([A-Za-z0-9]{15,18})")
MAX_IDS_PER_QUERY = 200


def connect(
    settings: SalesforceSettings,
    env: Mapping[str, str] = os.environ,
    session: requests.Session | None = None,
) -> Salesforce:
    """Log in as `salesforce.auth` says, with credentials from the environment only."""
    names = AUTH_ENV[settings.auth]
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ConfigError(
            [
                Problem(
                    "salesforce.auth",
                    f"auth: {settings.auth} needs the environment variable"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                    "app.yaml",
                )
            ]
        )
    common: dict[str, Any] = {"version": settings.api_version, "session": session}
    try:
        if settings.auth == "password":
            return Salesforce(
                username=env["SALESFORCE_USERNAME"],
                password=env["SALESFORCE_PASSWORD"],
                security_token=env["SALESFORCE_SECURITY_TOKEN"],
                domain=settings.domain,
                **common,
            )
        if settings.auth == "jwt":
            return Salesforce(
                username=env["SALESFORCE_USERNAME"],
                consumer_key=env["SALESFORCE_CONSUMER_KEY"],
                privatekey_file=env["SALESFORCE_PRIVATE_KEY_FILE"],
                domain=settings.domain,
                **common,
            )
        return Salesforce(
            session_id=env["SALESFORCE_SESSION_ID"],
            instance_url=env["SALESFORCE_INSTANCE_URL"],
            **common,
        )
    except SalesforceAuthenticationFailed as exc:
        raise FatalCrmError(
            f"Salesforce refused the login ({exc.code}: {exc.message}). Check "
            f"{', '.join(names)} and salesforce.domain ({settings.domain!r}: 'test' for sandbox "
            "orgs, 'yourdomain.my' for My Domain logins)",
            system="salesforce",
            status=401,
            code=str(exc.code),
        ) from None
    except requests.RequestException as exc:  # before OSError: ConnectionError is one
        raise RetriableCrmError(
            f"cannot reach Salesforce at {_login_host(settings, env)}: "
            f"{type(exc).__name__}; check the network (and HTTPS_PROXY) and salesforce.domain",
            system="salesforce",
        ) from None
    except (OSError, ValueError) as exc:  # unreadable key file, bad key
        if settings.auth != "jwt":
            raise
        raise ConfigError(
            [Problem("salesforce.auth", f"cannot use the JWT private key: {exc}", "app.yaml")]
        ) from None


def _login_host(settings: SalesforceSettings, env: Mapping[str, str]) -> str:
    """The host the login goes to: the instance of a session, else <domain>.salesforce.com."""
    if settings.auth == "session":
        return urlsplit(env["SALESFORCE_INSTANCE_URL"]).hostname or env["SALESFORCE_INSTANCE_URL"]
    return f"{settings.domain}.salesforce.com"


class SalesforceCrm:
    system = "salesforce"
    max_batch = 200

    def __init__(
        self,
        sf: Salesforce,
        mapping: FieldMapping,
        settings: SalesforceSettings,
        *,
        page_size: int = 2000,
        policy: RenewalPolicy | None = None,
    ):
        self.sf = sf
        self.mapping = mapping
        self.settings = settings
        self.page_size = page_size
        self.api_calls = 0
        #: (used, daily allowance) from the last Sforce-Limit-Info header.
        self.api_usage: tuple[int, int] | None = None
        #: (object, external key) -> record Id, learnt from reads and writes.
        self.ids: dict[tuple[str, str], str] = {}
        self._retry_after: float | None = None
        self._entries: dict[str, str] | None = None
        self._pricebook: str | None = settings.pricebook_id
        self._describes: dict[str, dict[str, Any] | None] = {}
        #: stop before the daily API use passes salesforce.api_usage_stop_share
        self.guard_usage = True
        self.policy = policy or RenewalPolicy()
        sf.session.hooks["response"].append(self._on_response)
        for kind, om in mapping.models.items():
            for name in mapping.source_fields(kind) + [om.object, om.key_field or "Id"]:
                if not SOQL_NAME.match(name):
                    raise ConfigError(
                        [Problem(f"models.{kind}", f"{name!r} is not a Salesforce field name")]
                    )

    # ------------------------------------------------------------------ reading

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        stamp = om.modified_field or "SystemModstamp"
        where = self._filters(om)
        if since is not None:
            if since.record_id:
                where.append(
                    format_soql(
                        "({:literal} > {} OR ({:literal} = {} AND Id > {}))",
                        stamp,
                        since.modified_at,
                        stamp,
                        since.modified_at,
                        since.record_id,
                    )
                )
            else:
                where.append(format_soql("{:literal} >= {}", stamp, since.modified_at))
        soql = self._select(kind, where) + format_soql(" ORDER BY {:literal}, Id", stamp)
        yield from self._pages(kind, soql)

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), MAX_IDS_PER_QUERY):
            chunk = unique[i : i + MAX_IDS_PER_QUERY]
            soql = self._select(kind, [format_soql("Id IN {}", chunk)])
            for page in self._pages(kind, soql):
                out += page
        return out

    def _select(self, kind: str, where: list[str]) -> str:
        om = self.mapping.models[kind]
        names = self.mapping.source_fields(kind)
        if om.modified_field is None:
            names = names + ["SystemModstamp"]
        if om.object not in NO_RECYCLE_BIN and "IsDeleted" not in names:
            names = names + ["IsDeleted"]
        soql = format_soql("SELECT {:literal} FROM {:literal}", ", ".join(names), om.object)
        if where:
            soql += " WHERE " + " AND ".join(where)
        return soql

    def _filters(self, om) -> list[str]:
        """`options.where` of a mapping: [{field, op, value}], e.g. lines of renewals only."""
        out = []
        for i, cond in enumerate(om.options.get("where", [])):
            field, op = cond.get("field", ""), str(cond.get("op", "=")).upper()
            if not SOQL_NAME.match(field) or op not in OPERATORS:
                raise ConfigError(
                    [
                        Problem(
                            f"{om.object}.options.where[{i}]",
                            f"needs a field name and an operator in {sorted(OPERATORS)}",
                        )
                    ]
                )
            out.append(format_soql("{:literal} {:literal} {}", field, op, cond.get("value")))
        return out

    def _pages(self, kind: str, soql: str) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        resource = "query/" if om.object in NO_RECYCLE_BIN else "queryAll/"
        headers = {"Sforce-Query-Options": f"batchSize={self.page_size}"}
        log.debug("SOQL %s", soql)
        body = self._json("GET", self.sf.base_url + resource, params={"q": soql}, headers=headers)
        while True:
            page = [self._source(om, rec) for rec in body.get("records", [])]
            if page:
                yield page
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            url = f"https://{self.sf.sf_instance}{body['nextRecordsUrl']}"
            body = self._json("GET", url, headers=headers)

    def _source(self, om, rec: dict[str, Any]) -> SourceRecord:
        fields = _plain(rec)
        stamp = fields.get(om.modified_field or "SystemModstamp")
        deleted = bool(fields.get("IsDeleted"))
        key = fields.get(om.key_field) if om.key_field and om.key_field != "Id" else None
        if key and not deleted:
            self.ids[(om.object, key)] = fields["Id"]
        return SourceRecord(fields["Id"], parse_datetime(stamp), fields, deleted)

    # ------------------------------------------------------------------ writing

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        om = self.mapping.models[kind]
        if om.key_field in (None, "Id"):
            return self._update_by_id(om.object, records)
        ready, results = self._prepare(kind, records)
        create_only = CREATE_ONLY.get(om.object, ())
        full = dict(ready)
        known = {i for i in full if create_only and self._exists(om.object, records[i])}
        ready = [(i, _without(body, create_only) if i in known else body) for i, body in ready]
        url = f"composite/sobjects/{om.object}/{om.key_field}"
        answers = self._collection("PATCH", url, [body for _, body in ready])
        for (i, _), answer in zip(ready, answers, strict=True):
            results[i] = self._result(om.object, records[i].key, answer)
        # guessed wrong whether a record exists (one more call, only then): one thought new
        # that exists refuses the insert-only fields, so it goes again without them; one
        # thought to exist that is gone (purged unseen) misses them, so it goes again with them
        again = []
        for i, body in ready:
            code = results[i].error_code
            if create_only and i not in known and code == "INVALID_FIELD_FOR_INSERT_UPDATE":
                again.append((i, _without(body, create_only)))
            elif i in known and code == "REQUIRED_FIELD_MISSING":
                again.append((i, full[i]))
        if again:
            answers = self._collection("PATCH", url, [body for _, body in again])
            for (i, _), answer in zip(again, answers, strict=True):
                results[i] = self._result(om.object, records[i].key, answer)
        return results  # type: ignore[return-value]

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        """Insert; a record whose external key exists already (DUPLICATE_VALUE) is left alone."""
        om = self.mapping.models[kind]
        ready, results = self._prepare(kind, records)
        answers = self._collection("POST", "composite/sobjects", [body for _, body in ready])
        for (i, _), answer in zip(ready, answers, strict=True):
            result = self._result(om.object, records[i].key, answer)
            if result.ok:
                result = WriteResult(result.key, True, result.crm_id, created=True)
            elif result.error_code == "DUPLICATE_VALUE":
                found = DUPLICATE_ID.search(result.message or "")
                result = WriteResult(records[i].key, True, found.group(1) if found else None)
            results[i] = result
        return results  # type: ignore[return-value]

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        om = self.mapping.models[kind]
        ids = self._ids_of(om.object, om.key_field, keys)
        present = [(k, ids[k]) for k in keys if k in ids]
        results = {k: WriteResult(k, True) for k in keys if k not in ids}
        if present:
            answers = self._json(
                "DELETE",
                self.sf.base_url + "composite/sobjects",
                params={"ids": ",".join(i for _, i in present), "allOrNone": "false"},
            )
            for (key, record_id), answer in zip(present, answers, strict=True):
                result = self._result(om.object, key, answer)
                if not result.ok and result.error_code == "ENTITY_IS_DELETED":
                    result = WriteResult(key, True, record_id)
                if result.ok:
                    self.ids.pop((om.object, key), None)
                results[key] = result
        return [results[k] for k in keys]

    def close(self) -> None:
        self.sf.session.close()

    def _prepare(
        self, kind: str, records: Sequence[OutboundRecord]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[WriteResult | None]]:
        """Request bodies for the records that can be sent, and failed results for the rest
        (unknown parent, product not in the price book)."""
        om = self.mapping.models[kind]
        results: list[WriteResult | None] = [None] * len(records)
        parents: dict[str, str] = {}
        if kind in PARENT_FIELD:
            parent = self.mapping.models["renewal_opportunity"]
            wanted = [r.parent_key for r in records if r.parent_key and not r.parent_id]
            parents = self._ids_of(parent.object, parent.key_field, wanted)
            if self.policy.renewal_mode == "cpq":
                parents.update(self._cpq_renewals([k for k in wanted if k not in parents]))
        ready, refreshed = [], False
        for i, rec in enumerate(records):
            body: dict[str, Any] = {"attributes": {"type": om.object}, **rec.fields}
            if om.key_field:
                body[om.key_field] = rec.key
            if kind == "renewal_opportunity" and "Pricebook2Id" not in body:
                body["Pricebook2Id"] = self._pricebook_id()
            if rec.parent_id:
                body[PARENT_FIELD[kind]] = rec.parent_id
            elif rec.parent_key:
                if rec.parent_key not in parents:
                    results[i] = _refused(
                        rec.key,
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"renewal {rec.parent_key} does not exist in Salesforce",
                    )
                    continue
                body[PARENT_FIELD[kind]] = parents[rec.parent_key]
            if om.object == "OpportunityLineItem" and "ProductCode" in body:
                code = body.pop("ProductCode")
                entries = self._entries_by_code()
                if code not in entries and not refreshed:  # activated since it was read
                    entries, refreshed = self._entries_by_code(refresh=True), True
                entry = entries.get(code)
                if entry is None:
                    results[i] = _refused(
                        rec.key,
                        "PRICEBOOK_ENTRY_MISSING",
                        f"product {code} has no active entry in price book {self._pricebook_id()}",
                    )
                    continue
                body["PricebookEntryId"] = entry
            ready.append((i, body))
        return ready, results

    def _exists(self, obj: str, rec: OutboundRecord) -> bool:
        """Known to be in the org: the connector says so, or this adapter read or wrote it."""
        return rec.exists or (obj, rec.key) in self.ids

    def _update_by_id(self, obj: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        body = [{"attributes": {"type": obj}, "id": r.key, **r.fields} for r in records]
        answers = self._collection("PATCH", "composite/sobjects", body)
        return [self._result(obj, r.key, a) for r, a in zip(records, answers, strict=True)]

    def _collection(self, method: str, path: str, records: list[dict]) -> list[dict[str, Any]]:
        if not records:
            return []
        if len(records) > self.max_batch:
            raise CrmError(
                f"batch of {len(records)} exceeds Salesforce's 200 records a call",
                system=self.system,
                code="EXCEEDED_MAX_BATCH",
            )
        return self._json(
            method, self.sf.base_url + path, json={"allOrNone": False, "records": records}
        )

    def _result(self, obj: str, key: str, answer: dict[str, Any]) -> WriteResult:
        if answer.get("success"):
            record_id = answer.get("id")
            if record_id:
                self.ids[(obj, key)] = record_id
            return WriteResult(key, True, record_id, created=bool(answer.get("created")))
        errors = answer.get("errors") or [{}]
        first = errors[0]
        code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN_ERROR"
        fields = first.get("fields") or []
        message = first.get("message", "") + (f" (fields: {', '.join(fields)})" if fields else "")
        return WriteResult(
            key, False, error_code=code, message=message, retriable=code in RETRIABLE_CODES
        )

    def _ids_of(self, obj: str, key_field: str | None, keys: Sequence[str]) -> dict[str, str]:
        """Record ids for external keys: from what this adapter has seen, else one query."""
        found = {k: self.ids[(obj, k)] for k in keys if (obj, k) in self.ids}
        missing = sorted({k for k in keys if k not in found})
        for i in range(0, len(missing), MAX_IDS_PER_QUERY):
            chunk = missing[i : i + MAX_IDS_PER_QUERY]
            soql = format_soql(
                "SELECT Id, {:literal} FROM {:literal} WHERE {:literal} IN {}",
                key_field,
                obj,
                key_field,
                chunk,
            )
            for rec in self._query_all(soql):
                found[rec[key_field]] = self.ids[(obj, rec[key_field])] = rec["Id"]
        return found

    def _cpq_renewals(self, keys: list[str]) -> dict[str, str]:
        """CPQ mode: renewal key (<contract>:<end>) -> the renewal opportunity CPQ made for the
        contract (SBQQ__RenewalOpportunity__c), when the contract's term still ends there."""
        fields = self.mapping.models["contract"].fields
        end, link = fields["end_date"].field, fields["cpq_renewal_id"].field
        contracts = sorted({k.rsplit(":", 1)[0] for k in keys})
        found: dict[str, str] = {}
        for i in range(0, len(contracts), MAX_IDS_PER_QUERY):
            soql = format_soql(
                "SELECT Id, {:literal}, {:literal} FROM Contract WHERE Id IN {}",
                end,
                link,
                contracts[i : i + MAX_IDS_PER_QUERY],
            )
            for rec in self._query_all(soql):
                if rec.get(link):
                    found[f"{rec['Id']}:{rec[end]}"] = rec[link]
        return {k: found[k] for k in keys if k in found}

    def _pricebook_id(self) -> str:
        if self._pricebook is None:
            rows = self._query_all("SELECT Id FROM Pricebook2 WHERE IsStandard = true LIMIT 1")
            if not rows:
                raise FatalCrmError(
                    "the org has no standard price book; set salesforce.pricebook_id",
                    system=self.system,
                )
            self._pricebook = rows[0]["Id"]
        return self._pricebook

    def _entries_by_code(self, refresh: bool = False) -> dict[str, str]:
        """Active price book entries of the renewal price book, by product code (one query,
        again on `refresh`: an admin may activate an entry while the process runs)."""
        if self._entries is None or refresh:
            soql = format_soql(
                "SELECT Id, Product2.ProductCode FROM PricebookEntry "
                "WHERE Pricebook2Id = {} AND IsActive = true",
                self._pricebook_id(),
            )
            self._entries = {
                r["Product2"]["ProductCode"]: r["Id"]
                for r in self._query_all(soql)
                if r.get("Product2") and r["Product2"].get("ProductCode")
            }
        return self._entries

    def _query_all(self, soql: str) -> list[dict[str, Any]]:
        out = []
        body = self._json("GET", self.sf.base_url + "query/", params={"q": soql})
        while True:
            out += [_plain(r) for r in body.get("records", [])]
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return out
            body = self._json("GET", f"https://{self.sf.sf_instance}{body['nextRecordsUrl']}")

    # ------------------------------------------------------------------ diagnosis

    def doctor(self) -> list[Check]:
        self.guard_usage = False  # diagnosing a spent org must still work: a few calls
        checks = [Check("login", True, f"connected to {self.sf.sf_instance}")]
        versions = self._json("GET", f"https://{self.sf.sf_instance}/services/data/") or []
        known = [v.get("version") for v in versions]
        wanted = self.settings.api_version
        checks.append(
            Check(
                f"API version {wanted}",
                wanted in known,
                f"the org offers {known[0]}..{known[-1]}" if known else "no versions listed",
                None if wanted in known else "set salesforce.api_version to one the org offers",
            )
        )
        limits = self._json("GET", self.sf.base_url + "limits/") or {}
        daily = limits.get("DailyApiRequests", {})
        if daily.get("Max"):
            used = daily["Max"] - daily.get("Remaining", 0)
            share = used / daily["Max"]
            ok = share < self.settings.api_usage_stop_share
            checks.append(
                Check(
                    "daily API requests",
                    ok,
                    f"{used:,} of {daily['Max']:,} used ({share:.0%})",
                    None if ok else "wait for the 24-hour window to roll on, or raise the limit",
                )
            )
        return checks + self.check_mapping_online()

    def check_mapping_online(self) -> list[Check]:
        """Every mapped object and field against the org's describe results."""
        checks: list[Check] = []
        for kind, om in self.mapping.models.items():
            describe = self._describe(om.object)
            if describe is None:
                checks.append(
                    Check(
                        f"object {om.object} ({kind})",
                        False,
                        "not found or not visible to the integration user",
                        "install/enable the object or grant the user access to it",
                    )
                )
                continue
            writes = kind in WRITE_KINDS
            can = describe.get("queryable") and (not writes or describe.get("createable"))
            checks.append(
                Check(
                    f"object {om.object} ({kind})",
                    bool(can),
                    "readable and writable" if writes else "readable",
                    None if can else "grant the integration user read/create on the object",
                )
            )
            fields = self._field_checks(kind, om, describe)
            good = [c for c in fields if c.ok]
            if good:
                checks.append(Check(f"fields of {om.object} ({kind})", True, f"{len(good)} ok"))
            checks += [c for c in fields if not c.ok]
        return checks

    def setup(self, apply: bool) -> list[Check]:
        """Custom fields of the mapping (no namespace) that the org lacks; created on --apply
        through the Tooling API."""
        checks = []
        for obj, name, spec in self._custom_fields():
            describe = self._describe("Task" if obj == "Activity" else obj) or {"fields": []}
            if name in {f["name"] for f in describe["fields"]}:
                checks.append(Check(f"field {obj}.{name}", True, "exists"))
                continue
            if not apply:
                checks.append(
                    Check(
                        f"field {obj}.{name}",
                        False,
                        f"missing: {_field_summary(spec)}",
                        "create it in Setup > Object Manager, or run renewals setup salesforce "
                        "--apply",
                    )
                )
                continue
            body = {"FullName": f"{obj}.{name}", "Metadata": spec}
            self._json("POST", self.sf.base_url + "tooling/sobjects/CustomField/", json=body)
            self._describes.pop("Task" if obj == "Activity" else obj, None)
            checks.append(
                Check(
                    f"field {obj}.{name}",
                    True,
                    f"created: {_field_summary(spec)}; grant field access to the integration "
                    "user's permission set",
                )
            )
        return checks

    def _custom_fields(self) -> list[tuple[str, str, dict[str, Any]]]:
        out, seen = [], set()
        for kind, om in self.mapping.models.items():
            if kind not in WRITE_KINDS and kind not in (
                "account",
                "contract",
                "contact",
                "contract_line",
            ):
                continue
            for name, spec in om.fields.items():
                obj, _, field = (spec.field or "").rpartition(".")
                if not field.endswith("__c") or "__" in field[:-3] or "." in obj:
                    continue  # standard, or a managed package's (namespace__X__c)
                # Rel.Field__c: a field of the related standard object (Opportunity, Product2)
                obj = obj or ("Activity" if om.object in ("Task", "Event") else om.object)
                if (obj, field) not in seen:
                    seen.add((obj, field))
                    out.append((obj, field, _field_metadata(field, name, spec, om.key_field)))
        return out

    def _describe(self, obj: str) -> dict[str, Any] | None:
        if obj not in self._describes:
            try:
                self._describes[obj] = self._json(
                    "GET", f"{self.sf.base_url}sobjects/{obj}/describe"
                )
            except FatalCrmError as exc:
                if exc.status != 404:
                    raise
                self._describes[obj] = None
        return self._describes[obj]

    def _field_checks(self, kind: str, om, describe: dict[str, Any]) -> list[Check]:
        fields = {f["name"]: f for f in describe.get("fields", [])}
        relations = {f.get("relationshipName"): f for f in describe.get("fields", [])}
        checks = []
        for canonical, spec in om.fields.items():
            if spec.field is None:
                continue
            head = spec.field.split(".")[0]
            found = relations.get(head) if "." in spec.field else fields.get(head)
            name = f"field {om.object}.{spec.field} ({kind}.{canonical})"
            if found is None:
                checks.append(
                    Check(
                        name,
                        False,
                        "does not exist",
                        "create it (renewals setup salesforce --apply) or fix the field name "
                        f"under models.{kind} in the mapping",
                    )
                )
                continue
            problem = None if "." in spec.field else _type_problem(spec, found)
            written = kind in WRITE_KINDS and spec.direction != "in"
            translated = (om.object, spec.field) in TRANSLATED
            if problem is None and written and not translated and not _writable(found):
                problem = "is read-only for the integration user"
            checks.append(Check(name, problem is None, found.get("type", ""), problem))
        if om.key_field and om.key_field != "Id" and om.key_field in fields:
            key = fields[om.key_field]
            ok = bool(key.get("externalId") and key.get("unique"))
            checks.append(
                Check(
                    f"external id {om.object}.{om.key_field}",
                    ok,
                    "External ID, unique" if ok else "not marked External ID and Unique",
                    None if ok else "edit the field: tick External ID and Unique",
                )
            )
        if kind == "renewal_opportunity":
            checks += self._picklist_checks(fields)
        return checks

    def _picklist_checks(self, fields: dict[str, dict]) -> list[Check]:
        checks = []
        for field, value, setting in (
            ("Type", self.policy.opportunity_type, "renewals.opportunity_type"),
            ("StageName", self.policy.initial_stage, "renewals.initial_stage"),
        ):
            values = [p["value"] for p in fields.get(field, {}).get("picklistValues", [])]
            ok = value in values
            checks.append(
                Check(
                    f"picklist Opportunity.{field} has {value!r}",
                    ok,
                    f"values: {', '.join(values)}",
                    None if ok else f"add {value!r} to the picklist or change {setting}",
                )
            )
        return checks

    # ------------------------------------------------------------------ HTTP

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._request(method, url, **kwargs)
        return response.json() if response.content else None

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self._check_budget()
        self._retry_after = None
        try:
            # simple-salesforce renews an expired session (INVALID_SESSION_ID) once and retries
            return self.sf._call_salesforce(
                method, url, name="", max_retries=1, timeout=self.settings.timeout_seconds, **kwargs
            )
        except SalesforceError as exc:
            raise self._translate(exc) from None
        except RuntimeError as exc:  # a given session id cannot be renewed
            raise FatalCrmError(
                f"the Salesforce session expired and cannot be renewed ({exc}); set a fresh "
                "SALESFORCE_SESSION_ID or use salesforce.auth: password or jwt",
                system=self.system,
                status=401,
                code="INVALID_SESSION_ID",
            ) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetriableCrmError(
                f"Salesforce did not answer: {type(exc).__name__}", system=self.system
            ) from None

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" not in response.url:
            return  # logins do not count against the API allowance
        self.api_calls += 1
        info = response.headers.get("Sforce-Limit-Info", "")
        found = re.search(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)", info)
        if found:
            self.api_usage = (int(found.group(1)), int(found.group(2)))
        after = response.headers.get("Retry-After")
        if after:
            try:
                self._retry_after = float(after)
            except ValueError:
                self._retry_after = None

    def _check_budget(self) -> None:
        if self.api_usage is None or not self.guard_usage:
            return
        used, total = self.api_usage
        share = self.settings.api_usage_stop_share
        if total and used / total >= share:
            raise ApiLimitReached(
                f"the org has used {used:,} of its {total:,} daily API requests "
                f"({used / total:.0%}), past salesforce.api_usage_stop_share ({share:.0%}); "
                "stopping cleanly: the next run resumes from its cursor",
                system=self.system,
                code="API_USAGE_SHARE_REACHED",
            )

    def _translate(self, exc: SalesforceError) -> CrmError:
        content = exc.content
        first = content[0] if isinstance(content, list) and content else {}
        first = first if isinstance(first, dict) else {}
        code = first.get("errorCode") or first.get("statusCode")
        message = first.get("message") or (content if isinstance(content, str) else "")
        where = f"{exc.status} from {exc.url.split('?')[0]}"
        kw = {"system": self.system, "status": exc.status, "code": code, "body": str(content)}
        if code == "REQUEST_LIMIT_EXCEEDED":
            return ApiLimitReached(
                f"Salesforce refused the call: the org's API request limit is exceeded "
                f"({message}); stopping: the next run resumes from its cursor",
                **kw,
            )
        if exc.status == 429 or exc.status >= 500 or code in RETRIABLE_CODES:
            return RetriableCrmError(
                f"Salesforce is busy ({code or exc.status}: {message}) [{where}]",
                retry_after=self._retry_after,
                **kw,
            )
        if exc.status == 401:
            return FatalCrmError(
                f"Salesforce rejected the session ({code}: {message}); check the "
                f"{' / '.join(AUTH_ENV[self.settings.auth])} environment variables",
                **kw,
            )
        if exc.status == 403:
            return FatalCrmError(
                f"Salesforce refused access ({code}: {message}) [{where}]; the integration "
                "user needs API Enabled and access to the mapped objects (renewals doctor)",
                **kw,
            )
        return FatalCrmError(
            f"Salesforce refused the request ({code or exc.status}: {message}) [{where}]; "
            "check the mapping against the org with `renewals mappings validate --online`",
            **kw,
        )


#: Canonical mapping types and the Salesforce field types that hold them.
COMPATIBLE = {
    "date": {"date", "datetime"},
    "datetime": {"datetime"},
    "number": {"double", "currency", "percent", "int", "long"},
    "integer": {"int", "long", "double"},
    "boolean": {"boolean"},
}


#: Mapped fields the adapter turns into others on write (ProductCode -> PricebookEntryId).
TRANSLATED = {("OpportunityLineItem", "ProductCode")}


def _writable(found: dict[str, Any]) -> bool:
    return bool(found.get("createable") or found.get("updateable"))


def _type_problem(spec, found: dict[str, Any]) -> str | None:
    allowed = COMPATIBLE.get(spec.type or "")
    if allowed and found.get("type") not in allowed:
        return f"is {found.get('type')}, the mapping reads it as {spec.type}"
    return None


def _field_metadata(field: str, canonical: str, spec, key_field: str | None) -> dict[str, Any]:
    label = field.removesuffix("__c").replace("_", " ")
    if field == key_field:
        return {"label": label, "type": "Text", "length": 200, "externalId": True, "unique": True}
    if canonical == "contract_id":
        return {
            "label": label,
            "type": "Lookup",
            "referenceTo": "Contract",
            "relationshipName": f"{field.removesuffix('__c')}s",
            "deleteConstraint": "SetNull",
        }
    if spec.type == "boolean":
        return {"label": label, "type": "Checkbox", "defaultValue": "false"}
    if spec.type == "date":
        return {"label": label, "type": "Date"}
    if spec.type == "number":
        kind = "Percent" if "percent" in canonical else "Number"
        return {"label": label, "type": kind, "precision": 16, "scale": 2}
    if spec.map:
        values = [{"fullName": v, "label": v, "default": False} for v in spec.map]
        return {
            "label": label,
            "type": "Picklist",
            "valueSet": {"valueSetDefinition": {"value": values}},
        }
    return {"label": label, "type": "Text", "length": 255}


def _field_summary(meta: dict[str, Any]) -> str:
    extra = [k for k in ("externalId", "unique") if meta.get(k)]
    target = f"({meta['referenceTo']})" if meta.get("referenceTo") else ""
    return f"{meta['type']}{target}" + (f" [{', '.join(extra)}]" if extra else "")


def _without(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names}


def _refused(key: str, code: str, message: str) -> WriteResult:
    return WriteResult(key, False, error_code=code, message=message)


def _plain(rec: dict[str, Any]) -> dict[str, Any]:
    """A SOQL record without `attributes`, related records (Rel.Field) kept as dicts."""
    return {k: _plain(v) if isinstance(v, dict) else v for k, v in rec.items() if k != "attributes"}


def parse_datetime(value: Any) -> datetime:
    """Salesforce datetimes: 2026-11-02T09:15:27.000+0000 (or Z)."""
    text = str(value).replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)
