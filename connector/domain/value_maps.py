"""Value maps (a mapping field's `map:`) against the values a CRM field allows (a Salesforce
picklist, a HubSpot pipeline's stages or property options, the sandbox's schema) and against the
values app.yaml names (renewals.initial_stage, closed_won_stages, closed_lost_stages,
opportunity_type). Shared by every adapter's online mapping checks, and by `config check`
(without CRM values) for what the two files alone can tell. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from crm_renewals.connector.domain.mapping import FieldSpec, Mapping
from crm_renewals.connector.domain.models import READ_KINDS, WRITE_KINDS
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.ports import Check


def named_values(policy: RenewalPolicy) -> dict[tuple[str, str], list[tuple[str, tuple]]]:
    """Canonical values app.yaml names, by (kind, canonical field): [(setting, values)]."""
    return {
        ("renewal_opportunity", "stage"): [
            ("renewals.initial_stage", (policy.initial_stage,)),
            ("renewals.closed_won_stages", tuple(policy.closed_won_stages)),
            ("renewals.closed_lost_stages", tuple(policy.closed_lost_stages)),
        ],
        ("renewal_opportunity", "type"): [
            ("renewals.opportunity_type", (policy.opportunity_type,)),
        ],
    }


def wants_values(kind: str, canonical: str, spec: FieldSpec) -> bool:
    """Whether the field's allowed CRM values matter: it has a value map or app.yaml names
    values of it."""
    return bool(spec.map) or (kind, canonical) in named_values(RenewalPolicy())


def value_checks(
    kind: str,
    canonical: str,
    spec: FieldSpec,
    where: str,
    crm_values: Sequence[str] | None,
    policy: RenewalPolicy | None,
) -> list[Check]:
    """The field's value map against `crm_values` (the CRM's allowed values; None: unknown
    or not a picklist) and the values app.yaml names for it. `where` names the CRM field."""
    checks = []
    if spec.map and crm_values:
        checks.append(_completeness(kind, canonical, spec, where, list(crm_values)))
    if policy is not None:
        for setting, values in named_values(policy).get((kind, canonical), ()):
            for value in values:
                found = _named(kind, canonical, spec, where, crm_values, setting, value)
                if found is not None:
                    checks.append(found)
    return checks


def value_map_problems(mapping: Mapping, policy: RenewalPolicy) -> list[tuple[tuple, str]]:
    """What the mapping and app.yaml alone can tell, as (key path, message) like
    `check_mapping`: a value map that produces no value app.yaml names (a stage map without
    "Closed Lost" while renewals.closed_lost_stages names it)."""
    problems = []
    for kind, canonical in named_values(policy):
        om = mapping.models.get(kind)
        spec = om.fields.get(canonical) if om else None
        if spec is None or not spec.map:
            continue
        for c in value_checks(kind, canonical, spec, spec.field or canonical, None, policy):
            if not c.ok:
                problems.append(
                    (("models", kind, "fields", canonical, "map"), c.detail + "; " + c.fix)
                )
    return problems


def _completeness(kind, canonical, spec: FieldSpec, where: str, crm_values: list[str]) -> Check:
    """Read: every CRM value has a mapping (else its records fail to map). Written: every
    mapped value exists in the CRM (else the write is refused)."""
    name = f"value map {where} ({kind}.{canonical})"
    problems, fixes = [], []
    unmapped = [v for v in crm_values if v not in spec.map]
    if unmapped and kind in READ_KINDS and spec.direction != "out" and spec.otherwise is None:
        problems.append(
            f"CRM values with no mapping: {_list(unmapped)} (records with them fail to map)"
        )
        fixes.append(f"map them under models.{kind}.fields.{canonical}.map")
    unknown = [v for v in spec.map if v not in crm_values]
    if unknown and kind in WRITE_KINDS and spec.direction != "in":
        problems.append(
            f"mapped values the CRM does not offer: {_list(unknown)} (writes of them are "
            f"refused); it offers {_list(crm_values)}"
        )
        fixes.append("correct them in the map or add them to the CRM field's values")
    if problems:
        return Check(name, False, "; ".join(problems), "; ".join(fixes))
    return Check(name, True, f"{len(spec.map)} values mapped; the CRM offers {len(crm_values)}")


def _named(kind, canonical, spec: FieldSpec, where, crm_values, setting, value) -> Check | None:
    """One value app.yaml names: the value map must produce it, or (no map) the CRM offer it."""
    if spec.map:
        sources = [crm for crm, ours in spec.map.items() if ours == value]
        name = f"{setting} {value!r} in the value map of {where}"
        if sources:
            return Check(name, True, f"from {_list(sources)}")
        crm = value if crm_values and value in crm_values else "<CRM value>"
        return Check(
            name,
            False,
            f"{setting} in app.yaml names {value!r} but no {where} value maps to it: "
            "records with it fail to map and the run cannot write it",
            f'add "{crm}": "{value}" under models.{kind}.fields.{canonical}.map, or change '
            f"{setting}",
        )
    if crm_values is None:
        return None
    ok = value in crm_values
    return Check(
        f"picklist {where} has {value!r}",
        ok,
        f"values: {', '.join(crm_values)}",
        None if ok else f"add {value!r} to the CRM field's values or change {setting}",
    )


def _list(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)
