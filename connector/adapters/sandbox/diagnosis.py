"""`renewals doctor`, `mappings validate --online` and `setup` for the sandbox: its database,
records of the objects a sync needs, and the mapping against the sandbox org's schema (objects,
fields, types, writability, external ids, picklist values and value maps), with the same checks
as on Salesforce and HubSpot."""

from __future__ import annotations

from difflib import get_close_matches

from crm_renewals.connector.adapters.sandbox.schema import OBJECTS, FieldDef, lookup
from crm_renewals.connector.adapters.sandbox.transport import SandboxTransport
from crm_renewals.connector.domain.mapping import FieldSpec, Mapping, ObjectMapping
from crm_renewals.connector.domain.models import WRITE_KINDS
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.value_maps import value_checks, wants_values
from crm_renewals.connector.ports import Check, FieldInfo

#: Mapping `type` -> the schema's field types that can hold it (as on Salesforce).
COMPATIBLE = {
    "date": {"date", "datetime"},
    "datetime": {"datetime"},
    "number": {"double", "currency", "percent", "int"},
    "integer": {"int", "double"},
    "boolean": {"boolean"},
}


class SandboxDiagnosis:
    def __init__(
        self, transport: SandboxTransport, mapping: Mapping, policy: RenewalPolicy | None = None
    ):
        self.t, self.mapping, self.policy = transport, mapping, policy

    def doctor(self) -> list[Check]:
        """The database, records to work on, then the mapping's online checks: doctor cannot
        pass while `mappings validate --online` fails."""
        checks = [Check("sandbox database", True, str(self.t.path))]
        for kind, om in self.mapping.models.items():
            (count,) = self.t.db.execute(
                "SELECT count(*) FROM records WHERE object = ? AND deleted = 0", (om.object,)
            ).fetchone()
            needed = kind in ("owner", "account", "contract")
            checks.append(
                Check(
                    f"records of {om.object} ({kind})",
                    count > 0 or not needed,
                    f"{count} records",
                    "seed the sandbox: renewals sandbox seed" if needed and not count else None,
                )
            )
        return checks + self.check_mapping_online()

    def check_mapping_online(self) -> list[Check]:
        """Every mapped object and field against the sandbox org's schema."""
        checks: list[Check] = []
        for kind, om in self.mapping.models.items():
            name = f"object {om.object} ({kind})"
            if om.object not in OBJECTS:
                checks.append(
                    Check(
                        name,
                        False,
                        f"no such object in the sandbox (it has {', '.join(OBJECTS)})",
                        f"fix models.{kind}.object in the mapping",
                    )
                )
                continue
            checks.append(Check(name, True, f"{len(OBJECTS[om.object])} fields"))
            fields = [c for c in self._field_checks(kind, om) if c is not None]
            good = sum(c.ok for c in fields)
            if good:
                checks.append(Check(f"fields of {om.object} ({kind})", True, f"{good} ok"))
            checks += [c for c in fields if not c.ok]
            checks += self._value_checks(kind, om)
        return checks

    def setup(self, apply: bool) -> list[Check]:
        return [Check("sandbox", True, "the sandbox needs no custom fields")]

    def object_fields(self, obj: str) -> list[FieldInfo]:
        """The sandbox org's fields of `obj`, from its schema (no database read)."""
        return [
            FieldInfo(name, label(name), f.type, f.picklist, f.read_only)
            for name, f in sorted(OBJECTS.get(obj, {}).items())
        ]

    def _field_checks(self, kind: str, om: ObjectMapping) -> list[Check | None]:
        checks = [
            self._field(kind, canonical, om, path, spec)
            for canonical, spec in om.fields.items()
            for path in (spec.join or (spec.field,))
            if path
        ]
        if om.key_field and om.key_field != "Id":
            key = OBJECTS[om.object].get(om.key_field)
            ok = key is not None and key.external_id
            checks.append(
                Check(
                    f"external id {om.object}.{om.key_field}",
                    ok,
                    "External ID, unique" if ok else "not an external id field of the sandbox",
                    None
                    if ok
                    else f"set models.{kind}.key_field to one of "
                    f"{[n for n, f in OBJECTS[om.object].items() if f.external_id] or ['Id']}",
                )
            )
        return checks

    def _field(self, kind, canonical, om: ObjectMapping, path: str, spec: FieldSpec) -> Check:
        name = f"field {om.object}.{path} ({kind}.{canonical})"
        found = lookup(om.object, path)
        if found is None:
            near = get_close_matches(path, OBJECTS[om.object], 1, 0.5)
            hint = f"did you mean {near[0]}?" if near else f"it has {', '.join(OBJECTS[om.object])}"
            return Check(
                name,
                False,
                f"does not exist on the sandbox's {om.object}",
                f"fix the field name under models.{kind}.fields.{canonical} in the mapping "
                f"({hint})",
            )
        problem = None if "." in path else _type_problem(spec, found)
        written = kind in WRITE_KINDS and spec.direction != "in" and "." not in path
        if problem is None and written and found.read_only and path != om.id_field:
            problem = "is read-only: the CRM sets it; set `direction: in` or map another field"
        if problem is None and written and found.computed and not spec.computed:
            problem = (
                f"is {found.computed}: mark it `computed: true` so it is written on create only"
            )
        return Check(name, problem is None, found.type, problem)

    def _value_checks(self, kind: str, om: ObjectMapping) -> list[Check]:
        checks = []
        for canonical, spec in om.fields.items():
            if not spec.field or not wants_values(kind, canonical, spec):
                continue
            found = lookup(om.object, spec.field)
            values = (found.picklist or None) if found is not None else []
            where = f"{om.object}.{spec.field}"
            checks += value_checks(kind, canonical, spec, where, values, self.policy)
        return checks


def label(name: str) -> str:
    """A field's label as Salesforce derives one: Segment__c -> Segment, OwnerId -> Owner ID."""
    text = name.removesuffix("__c").replace("_", " ")
    return text[:-2] + " ID" if text.endswith("Id") and text != "Id" else text


def _type_problem(spec: FieldSpec, found: FieldDef) -> str | None:
    allowed = COMPATIBLE.get(spec.type or "")
    if allowed and found.type not in allowed:
        return f"is {found.type}, the mapping reads it as {spec.type}"
    return None
