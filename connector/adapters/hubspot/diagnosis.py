"""`renewals doctor`, `mappings validate --online` and `setup hubspot` for the HubSpot adapter:
the token and its scopes, the mapped objects and properties (types, `renewal_key` unique), value
maps and app.yaml's stages against property options and the renewal pipeline's stage ids, and
the custom properties the connector creates through the properties API."""

from __future__ import annotations

from typing import Any

from crm_renewals.connector.adapters.hubspot.kinds import (
    MERGED,
    OWNER_FIELDS,
    Kinds,
    association_fields,
    synthetic,
)
from crm_renewals.connector.adapters.hubspot.transport import SCOPES, HubSpotTransport
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.value_maps import value_checks, wants_values
from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.ports import Check, FieldInfo

#: Health written onto renewal deals and companies alike.
HEALTH_PROPERTIES = (
    ("renewal_health_score", "Renewal health score", "number", "number", False),
    ("renewal_health_grade", "Renewal health grade", "string", "text", False),
    ("renewal_health_drivers", "Renewal health drivers", "string", "textarea", False),
)
#: Properties the connector needs and `setup hubspot --apply` creates:
#: object -> (name, label, type, fieldType, unique)
CONNECTOR_PROPERTIES: dict[str, tuple[tuple[str, str, str, str, bool], ...]] = {
    "deals": (
        ("renewal_key", "Renewal key", "string", "text", True),
        ("renewal_contract_id", "Renewal of contract", "string", "text", False),
        ("contract_status", "Contract status", "string", "text", False),
        ("contract_start_date", "Contract start date", "date", "date", False),
        ("contract_end_date", "Contract end date", "date", "date", False),
        ("renewal_uplift_percent", "Renewal uplift %", "number", "number", False),
        *HEALTH_PROPERTIES,
        ("renewal_loss_reason", "Renewal loss reason", "string", "text", False),
    ),
    "companies": (
        ("customer_segment", "Customer segment", "string", "text", False),
        *HEALTH_PROPERTIES,
        ("renewal_health_trend", "Renewal health trend", "string", "text", False),
        ("nps_score", "NPS score", "number", "number", False),
        ("open_tickets", "Open tickets", "number", "number", False),
        ("high_priority_tickets", "High-priority tickets (90 days)", "number", "number", False),
        ("late_payments", "Late payments", "number", "number", False),
        ("last_meeting_date", "Last meeting date", "date", "date", False),
        ("executive_sponsor", "Executive sponsor", "bool", "booleancheckbox", False),
    ),
    "line_items": (
        ("renewal_line_key", "Renewal line key", "string", "text", True),
        ("renewal_deal_key", "Renewal deal key", "string", "text", False),
        ("renewal_line_type", "Renewal line type", "string", "text", False),
    ),
    "tasks": (
        ("renewal_task_key", "Renewal task key", "string", "text", True),
        ("renewal_deal_key", "Renewal deal key", "string", "text", False),
    ),
}
#: Mapping `type` -> HubSpot property types that can hold it.
COMPATIBLE = {
    "number": {"number"},
    "integer": {"number"},
    "date": {"date", "datetime"},
    "datetime": {"datetime", "date"},
    "boolean": {"bool", "enumeration"},
}
#: Fields of the owners API and the adapter's own association fields are not properties.
NOT_PROPERTIES = {"hs_object_id", MERGED}


class HubSpotDiagnosis:
    """Diagnosable: doctor, online mapping checks and setup over the transport."""

    def __init__(self, transport: HubSpotTransport, kinds: Kinds, policy: RenewalPolicy | None):
        self.t, self.k = transport, kinds
        #: app.yaml's stages (stage ids, or canonical values of a `stage` value map) and
        #: opportunity type, checked against the renewal pipeline and property options
        self.policy = policy

    def doctor(self) -> list[Check]:
        checks = [Check("API base URL", True, self.t.base_url)]
        try:
            self.t.call("list owners", self.t.api("owners.owners_api").get_page, limit=1)
        except CrmError as err:
            return checks + [Check("access token (HUBSPOT_ACCESS_TOKEN)", False, str(err), _fix())]
        checks.append(
            Check("access token (HUBSPOT_ACCESS_TOKEN)", True, "accepted; owners readable")
        )
        for obj in self._objects():
            checks.append(self._access(obj))
        checks.append(self._pipeline())
        checks.append(self._limits())
        # one verdict: doctor cannot pass while `mappings validate --online` fails
        return _dedupe(checks + self.check_mapping_online())

    def _limits(self) -> Check:
        """The configured tier against what HubSpot's rate-limit headers say."""
        lim = self.k.settings.limits
        detail = (
            f"{lim.burst} of {lim.tier} requests per 10 s ({lim.app_type} app), search "
            f"{lim.search_per_second}/s; bucket shared by this process"
        )
        said = {k.lower(): v for k, v in self.t.last_limits.items()}
        top = said.get("x-hubspot-ratelimit-max")
        window = said.get("x-hubspot-ratelimit-interval-milliseconds")
        if not top or window != "10000":
            return Check("rate limits", True, detail)
        detail += f"; HubSpot says {top} per 10 s"
        if int(top) < lim.tier:
            return Check(
                "rate limits",
                False,
                detail,
                f"set hubspot.limits.requests_per_10s to {top} or less (above it: 429s)",
            )
        return Check("rate limits", True, detail)

    def check_mapping_online(self) -> list[Check]:
        checks = []
        for obj in self._objects():
            try:
                have = self._properties(obj)
            except CrmError as err:
                checks.append(Check(f"object {obj}", False, str(err), _fix()))
                continue
            for kind, om in self.k.mapping.models.items():
                if om.object != obj:
                    continue
                for spec in om.fields.values():
                    name = spec.field
                    if not name or synthetic(name) or name in NOT_PROPERTIES:
                        continue
                    checks.append(_property_check(obj, kind, name, spec.type, have.get(name)))
                checks += self._value_checks(kind, om, have)
                if om.key_field and om.key_field in have:
                    unique = bool(have[om.key_field].get("hasUniqueValue"))
                    checks.append(
                        Check(
                            f"{obj}.{om.key_field} unique",
                            unique,
                            "hasUniqueValue" if unique else "not unique: batch upsert needs it",
                            None if unique else "create it with `renewals setup hubspot --apply`",
                        )
                    )
        return _dedupe(checks)

    def _value_checks(self, kind: str, om, have: dict[str, dict[str, Any]]) -> list[Check]:
        """Value maps and app.yaml's stages against the CRM's values: a deal's `dealstage`
        takes the stage ids of its pipeline, an enumeration property its options."""
        checks = []
        for canonical, spec in om.fields.items():
            name = spec.field
            if not name or synthetic(name) or not wants_values(kind, canonical, spec):
                continue
            if om.object == "deals" and name == "dealstage" and kind == "renewal_opportunity":
                values = self._stage_ids()
            else:
                values = _options(have.get(name))
            where = f"{om.object}.{name}"
            checks += value_checks(kind, canonical, spec, where, values, self.policy)
        return checks

    def _stage_ids(self) -> list[str] | None:
        """Stage ids of hubspot.renewal_pipeline (None when it cannot be read: doctor's
        pipeline check says why)."""
        try:
            data = self._read_pipeline()
        except CrmError:
            return None
        return [s["id"] for s in data.get("stages") or [] if not s.get("archived")]

    def _read_pipeline(self) -> dict[str, Any]:
        return self.t.call(
            "read pipeline",
            self.t.api("pipelines.pipelines_api").get_by_id,
            "deals",
            self.k.settings.renewal_pipeline,
        )

    def setup(self, apply: bool) -> list[Check]:
        checks = []
        for obj, wanted in CONNECTOR_PROPERTIES.items():
            try:
                have = self._properties(obj)
            except CrmError as err:
                checks.append(Check(f"object {obj}", False, str(err), _fix()))
                continue
            missing = [p for p in wanted if p[0] not in have]
            if missing and apply:
                checks.append(self._group(obj))
            for name, label, type_, field_type, unique in wanted:
                found = have.get(name)
                title = f"property {obj}.{name}"
                if found is not None:
                    ok = found.get("type") == type_ and bool(found.get("hasUniqueValue")) == unique
                    detail = f"exists ({found.get('type')}" + (", unique)" if unique else ")")
                    fix = None if ok else f"expected {type_}{', unique' if unique else ''}"
                    checks.append(Check(title, ok, detail, fix))
                elif not apply:
                    checks.append(
                        Check(title, False, "missing", "run `renewals setup hubspot --apply`")
                    )
                else:
                    checks.append(self._create(obj, name, label, type_, field_type, unique))
        return checks

    def object_fields(self, obj: str) -> list[FieldInfo]:
        """`obj`'s properties (the ones `check_mapping_online` reads) and the association
        fields the adapter fills; the owners API's fields for `owners`."""
        if obj == "owners":
            return [FieldInfo(n, label, t, read_only=True) for n, label, t in OWNER_FIELDS]
        try:
            have = self._properties(obj)
        except CrmError as err:
            if err.status in (400, 404):  # "Unable to infer object type from: <obj>"
                return []
            raise
        fields = [
            FieldInfo(n, p.get("label") or n, p.get("type", ""), tuple(_options(p) or ()), _ro(p))
            for n, p in have.items()
        ]
        fields += [FieldInfo(n, label, "association") for n, label in association_fields(obj)]
        return sorted(fields, key=lambda f: f.name)

    # ------------------------------------------------------------------ helpers

    def _objects(self) -> list[str]:
        objs = [om.object for om in self.k.mapping.models.values() if om.object != "owners"]
        return list(dict.fromkeys(objs))

    def _access(self, obj: str) -> Check:
        try:
            self.t.call(f"read {obj}", self.t.api("objects.basic_api").get_page, obj, limit=1)
        except CrmError as err:
            return Check(f"object {obj}", False, str(err), _fix())
        return Check(f"object {obj}", True, "readable")

    def _properties(self, obj: str) -> dict[str, dict[str, Any]]:
        data = self.t.call(f"properties of {obj}", self.t.api("properties.core_api").get_all, obj)
        return {p["name"]: p for p in data.get("results") or []}

    def _pipeline(self) -> Check:
        pipeline = self.k.settings.renewal_pipeline
        title = f"renewal pipeline {pipeline}"
        try:
            data = self._read_pipeline()
        except CrmError as err:
            return Check(title, False, str(err), "set hubspot.renewal_pipeline to a deal pipeline")
        # app.yaml's stages against these ids: the value checks of check_mapping_online
        return Check(title, True, f"{len(data.get('stages') or [])} stages")

    def _group(self, obj: str) -> Check:
        from hubspot.crm.properties import PropertyGroupCreate

        group = self.k.settings.property_group
        body = PropertyGroupCreate(name=group, label="Renewals", display_order=-1)
        try:
            self.t.call(
                f"create group {obj}", self.t.api("properties.groups_api").create, obj, body
            )
        except CrmError as err:
            if err.status != 409:  # already there
                return Check(f"property group {obj}.{group}", False, str(err), _fix())
        return Check(f"property group {obj}.{group}", True, "present")

    def _create(self, obj, name, label, type_, field_type, unique) -> Check:
        from hubspot.crm.properties import PropertyCreate

        body = PropertyCreate(
            name=name,
            label=label,
            type=type_,
            field_type=field_type,
            group_name=self.k.settings.property_group,
            has_unique_value=unique,
            form_field=False,
        )
        try:
            self.t.call(
                f"create property {obj}.{name}", self.t.api("properties.core_api").create, obj, body
            )
        except CrmError as err:
            return Check(f"property {obj}.{name}", False, str(err), _fix())
        return Check(f"property {obj}.{name}", True, "created" + (" (unique)" if unique else ""))


def _property_check(obj, kind, name, crm_type, found) -> Check:
    title = f"property {obj}.{name}"
    if found is None:
        return Check(
            title,
            False,
            f"does not exist (mapped in {kind})",
            "run `renewals setup hubspot --apply` or fix the mapping",
        )
    allowed = COMPATIBLE.get(crm_type or "string")
    if allowed and found.get("type") not in allowed:
        return Check(
            title,
            False,
            f"is {found.get('type')}, the mapping reads it as {crm_type}",
            f"change the mapping's type for {kind} or the property",
        )
    return Check(title, True, f"{found.get('type')}")


def _options(found: dict[str, Any] | None) -> list[str] | None:
    """An enumeration property's option values ([] for a missing property; None when it is
    not an enumeration or lists no options, as the owner or a pipeline property may)."""
    if found is None:
        return []
    if found.get("type") != "enumeration" or not found.get("options"):
        return None
    return [o["value"] for o in found["options"] if not o.get("hidden")]


def _ro(found: dict[str, Any]) -> bool:
    """HubSpot computes it (a calculated property, or one only HubSpot sets)."""
    meta = found.get("modificationMetadata") or {}
    return bool(found.get("calculated") or meta.get("readOnlyValue"))


def _dedupe(checks: list[Check]) -> list[Check]:
    seen, out = set(), []
    for c in checks:
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out


def _fix() -> str:
    return f"set HUBSPOT_ACCESS_TOKEN to a private app token with the scopes: {SCOPES}"
