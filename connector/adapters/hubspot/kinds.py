"""What each canonical kind is in a HubSpot portal, from the mapping and `hubspot:` settings:
its object type, the search filters selecting its records (kinds share objects), the properties
to read, its association fields. Plain helpers shared by reads, writes and diagnosis."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_renewals.connector.config_sections import HubspotSettings
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.ports import OutboundRecord

ASSOC_FIELD = re.compile(r"^associated_(?P<name>.+)_id$")
LABEL_FIELD = "renewal_contact_label"
MERGED = "hs_merged_object_ids"
#: The association that makes a record the connector wrote its parent's (see `unlinked`).
PARENT_LINKS = {
    "renewal_line": "associated_deal_id",
    "renewal_opportunity": "associated_company_id",
}
#: Singular names used in `associated_<name>_id` mapping fields -> object types.
ALIASES = {
    "company": "companies",
    "deal": "deals",
    "contact": "contacts",
    "line_item": "line_items",
}


@dataclass
class Kinds:
    """The mapping and settings, read the HubSpot way (shared, so a swapped mapping is seen
    by every part)."""

    mapping: Mapping
    settings: HubspotSettings

    def object_type(self, kind: str) -> str:
        return self.mapping.models[kind].object

    def resolve_type(self, name: str) -> str:
        if name == "contract":
            return self.settings.contract_object
        return ALIASES.get(name, name)

    def filters(self, kind: str) -> list[dict]:
        """Search filters selecting the records of `kind` (kinds share objects: deals hold both
        contracts and renewals, line items both contract and renewal lines)."""
        s = self.settings
        renewal_key = self.mapping.models["renewal_opportunity"].key_field
        line_key = self.mapping.models["renewal_line"].key_field
        if kind == "contract" and s.contract_source == "deals":
            out = [
                {"propertyName": "dealstage", "operator": "IN", "values": list(s.contract_stages)}
            ]
            if s.contract_pipeline:
                out.append(
                    {"propertyName": "pipeline", "operator": "EQ", "value": s.contract_pipeline}
                )
            return out + [{"propertyName": renewal_key, "operator": "NOT_HAS_PROPERTY"}]
        if kind == "renewal_opportunity":
            return [{"propertyName": renewal_key, "operator": "HAS_PROPERTY"}]
        if kind == "contract_line":
            return [{"propertyName": line_key, "operator": "NOT_HAS_PROPERTY"}]
        if kind == "renewal_line":
            return [{"propertyName": line_key, "operator": "HAS_PROPERTY"}]
        if kind == "task":  # the tasks the connector wrote, not the reps' own
            task_key = self.mapping.models["task"].key_field
            return [{"propertyName": task_key, "operator": "HAS_PROPERTY"}]
        return []

    def predicate(self, kind: str) -> Callable[[dict], bool]:
        """The same filters, applied to records the search did not select (archived, batch
        reads)."""
        tests = []
        for f in self.filters(kind):
            name, op = f["propertyName"], f["operator"]
            if op == "IN":
                tests.append(lambda p, n=name, v=set(f["values"]): p.get(n) in v)
            elif op == "EQ":
                tests.append(lambda p, n=name, v=f["value"]: p.get(n) == v)
            elif op == "HAS_PROPERTY":
                tests.append(lambda p, n=name: p.get(n) not in (None, ""))
            else:
                tests.append(lambda p, n=name: p.get(n) in (None, ""))
        return lambda props: all(t(props) for t in tests)

    def properties(self, kind: str) -> list[str]:
        om = self.mapping.models[kind]
        wanted = [f for f in self.mapping.source_fields(kind) if not synthetic(f)]
        extra = [om.modified_field, MERGED] + [f["propertyName"] for f in self.filters(kind)]
        return list(dict.fromkeys(w for w in wanted + extra if w and w != "hs_object_id"))

    def linked_types(self, kind: str) -> dict[str, str]:
        """Mapped association fields a read of `kind` fills: field name -> object type."""
        out = {}
        for spec in self.mapping.models[kind].fields.values():
            m = ASSOC_FIELD.match(spec.field or "") if spec.direction != "out" else None
            if m:
                out[spec.field] = self.resolve_type(m["name"])
        if kind == "contact" and self.settings.renewal_contact_label:
            out.setdefault("associated_company_id", "companies")
        if kind in PARENT_LINKS:
            name = ASSOC_FIELD.match(PARENT_LINKS[kind])["name"]
            out.setdefault(PARENT_LINKS[kind], self.resolve_type(name))
        return out

    def by_id(self, kind: str) -> bool:
        om = self.mapping.models[kind]
        return om.key_field in ("Id", "hs_object_id", om.id_field)

    def split(self, rec: OutboundRecord) -> tuple[dict, dict[str, str]]:
        """Outbound fields -> (properties, {object type: id to associate with})."""
        props, links = {}, {}
        for name, value in rec.fields.items():
            m = ASSOC_FIELD.match(name)
            if m:
                if value not in (None, ""):
                    links[self.resolve_type(m["name"])] = str(value)
            elif name != LABEL_FIELD:
                props[name] = value
        return props, links


#: The owners API's fields (owners have no properties API): its PublicOwner schema.
OWNER_FIELDS = (
    ("id", "Owner ID", "string"),
    ("email", "Email", "string"),
    ("firstName", "First name", "string"),
    ("lastName", "Last name", "string"),
    ("userId", "User ID", "number"),
    ("archived", "Archived", "bool"),
    ("createdAt", "Created at", "datetime"),
    ("updatedAt", "Updated at", "datetime"),
)


def association_fields(obj: str) -> list[tuple[str, str]]:
    """(name, label) of the fields the adapter fills from `obj`'s associations."""
    out = [
        (f"associated_{alias}_id", f"Associated {alias.replace('_', ' ')} (association)")
        for alias, target in (*ALIASES.items(), ("contract", ""))
        if target != obj
    ]
    if obj == "contacts":
        out.append((LABEL_FIELD, "Renewal contact (association label)"))
    return out


def synthetic(field: str) -> bool:
    """Fields the adapter fills from associations, not properties."""
    return bool(ASSOC_FIELD.match(field)) or field == LABEL_FIELD


def unlinked(kind: str, fields: dict[str, Any]) -> bool:
    """A record the connector writes under a parent (a renewal line under its deal, a renewal
    deal under its company) that is not linked to it: written, but a crash came before the
    association (a separate call). Such a record is not read as the connector's, so the next
    run plans it again and sends it with its association; upserts by key never duplicate it."""
    return kind in PARENT_LINKS and not fields.get(PARENT_LINKS[kind])


def check_batch(size: int, max_batch: int) -> None:
    if size > max_batch:
        raise CrmError(
            f"batch of {size} exceeds HubSpot's {max_batch} inputs a call",
            system="hubspot",
            status=400,
            code="EXCEEDED_MAX_BATCH",
        )


def parse_time(value: Any) -> datetime:
    """HubSpot stamps: ISO 8601 text (Z), or epoch milliseconds as text."""
    if value is None or value == "":
        return datetime.fromtimestamp(0, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
