"""`renewals doctor`, `mappings validate --online` and `setup salesforce` for the Salesforce
adapter: login, API version, the daily allowance, every mapped object and field against the
org's describe results, picklist values against value maps and app.yaml's stages, and the
custom fields created through the Tooling
API."""

from __future__ import annotations

from typing import Any

from crm_renewals.connector.adapters.salesforce.transport import SalesforceTransport
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.domain.mapping import Mapping as FieldMapping
from crm_renewals.connector.domain.models import WRITE_KINDS
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.value_maps import value_checks, wants_values
from crm_renewals.connector.errors import FatalCrmError
from crm_renewals.connector.ports import Check, FieldInfo


class SalesforceDiagnosis:
    def __init__(
        self,
        transport: SalesforceTransport,
        mapping: FieldMapping,
        settings: SalesforceSettings,
        policy: RenewalPolicy,
    ):
        self.t, self.mapping, self.settings, self.policy = transport, mapping, settings, policy
        self._describes: dict[str, dict[str, Any] | None] = {}

    def doctor(self) -> list[Check]:
        self.t.guard_usage = False  # diagnosing a spent org must still work: a few calls
        checks = [Check("login", True, f"connected to {self.t.sf.sf_instance}")]
        versions = self.t.versions() or []
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
        limits = self.t.rest("GET", "limits/") or {}
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
            self.t.rest("POST", "tooling/sobjects/CustomField/", json=body)
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

    def object_fields(self, obj: str) -> list[FieldInfo]:
        """The fields of `obj` from its describe (the one `check_mapping_online` reads)."""
        describe = self._describe(obj) or {"fields": []}
        return sorted(
            (
                FieldInfo(
                    f["name"],
                    f.get("label") or f["name"],
                    f.get("type", ""),
                    tuple(_picklist(f) or ()),
                    not _writable(f),
                )
                for f in describe.get("fields", [])
            ),
            key=lambda f: f.name,
        )

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
                self._describes[obj] = self.t.rest("GET", f"sobjects/{obj}/describe")
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
        for canonical, spec in om.fields.items():
            if spec.field and "." not in spec.field and wants_values(kind, canonical, spec):
                values = _picklist(fields.get(spec.field))
                where = f"{om.object}.{spec.field}"
                checks += value_checks(kind, canonical, spec, where, values, self.policy)
        return checks


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


def _picklist(found: dict[str, Any] | None) -> list[str] | None:
    """A field's active picklist values from describe ([] for a missing field; None when it
    is not a picklist)."""
    if found is None:
        return []
    if found.get("type") not in ("picklist", "multipicklist"):
        return None
    return [p["value"] for p in found.get("picklistValues") or [] if p.get("active", True)]


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
