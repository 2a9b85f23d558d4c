"""What the mapping pages show and read: a mapping's fields in words, a diff's lines, and the
field form turned into the options `connector.mapping_text.set_field` writes."""

from __future__ import annotations

from collections.abc import Mapping as Form
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml

from crm_renewals.connector.domain.mapping import (
    EPOCH_MS,
    FIELD_TYPES,
    FieldSpec,
    Mapping,
    ObjectMapping,
)
from crm_renewals.connector.domain.models import READ_KINDS, WRITE_KINDS
from crm_renewals.connector.state import Version

TYPES = ("", "string", "number", "integer", "boolean", "date", "datetime")
DIRECTIONS = ("both", "in", "out")
#: how much of a value map the table shows before "and N more"
MAP_SHOWN = 4
#: our fields' Python types, as the edit page names them
TYPE_WORDS = {
    "str": "text",
    "Decimal": "number",
    "int": "whole number",
    "bool": "true or false",
    "date": "date",
    "datetime": "date and time",
}


class BadForm(ValueError):
    """A field form with a value no option allows."""


@dataclass(frozen=True)
class FieldRow:
    name: str
    spec: FieldSpec | None  # None: a canonical field the mapping leaves out
    crm: str  # Object.Field, Object.A + B (a join), or the constant
    arrow: str
    words: str
    required: bool  # the canonical model needs it


@dataclass(frozen=True)
class ModelView:
    kind: str
    om: ObjectMapping
    rows: list[FieldRow]


def models(mapping: Mapping) -> list[ModelView]:
    """Each model's fields, mapped ones first (as the file lists them), then the unmapped."""
    out = []
    for kind, om in mapping.models.items():
        known = FIELD_TYPES.get(kind, {})
        rows = [_row(kind, om, name, spec, known) for name, spec in om.fields.items()]
        rows += [
            FieldRow(name, None, "", "", "not mapped", req)
            for name, (_, _, req) in known.items()
            if name not in om.fields
        ]
        out.append(ModelView(kind, om, rows))
    return out


def _row(kind: str, om: ObjectMapping, name: str, spec: FieldSpec, known: dict) -> FieldRow:
    if spec.join:
        crm = f"{om.object}." + " + ".join(spec.join)
    elif spec.field:
        crm = f"{om.object}.{spec.field}"
    else:
        crm = f"always {_flow(spec.const)}"
    reads, writes = flows(kind, spec)
    arrow = "↔" if reads and writes else "←" if reads else "→" if writes else ""
    required = known.get(name, (0, 0, False))[2]
    return FieldRow(name, spec, crm, arrow, words(spec, reads, writes), required)


def flows(kind: str, spec: FieldSpec) -> tuple[bool, bool]:
    """Whether the connector reads the field from the CRM, and whether it writes it: the
    kind says which it does at all (it never writes an account), `direction` narrows it."""
    return (
        kind in READ_KINDS and spec.direction != "out",
        kind in WRITE_KINDS and spec.direction != "in",
    )


def words(spec: FieldSpec, reads: bool = True, writes: bool = True) -> str:
    """A field's transforms in a sentence: type, format, value map, default, constant,
    required, direction, computed."""
    said = []
    if spec.type:
        said.append(f"held as {spec.type}")
    if spec.format:
        said.append("epoch milliseconds" if spec.format == EPOCH_MS else f"format {spec.format}")
    if spec.join:
        said.append("the fields joined with spaces")
    if spec.map:
        pairs = [f"{k} → {_flow(v)}" for k, v in list(spec.map.items())[:MAP_SHOWN]]
        more = len(spec.map) - MAP_SHOWN
        said.append("value map " + ", ".join(pairs) + (f" and {more} more" if more > 0 else ""))
    if spec.const is not None:
        said.append(f"always {_flow(spec.const)}")
    if spec.default is not None:
        said.append(f"{_flow(spec.default)} when empty")
    if spec.required:
        said.append("required (empty: the record goes to dead letters)")
    if reads or writes:
        said.append("read and written" if reads and writes else "read" if reads else "written")
    else:
        said.append("neither read nor written: check its direction")
    if spec.computed:
        said.append("computed by the CRM: written on create only")
    return "; ".join(said)


def _flow(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def newest_first(versions: list[Version]) -> list[Version]:
    """Versions by their latest event, a save or a run: a version saved a minute ago comes
    before the one the runs used until then."""
    return sorted(
        versions,
        key=lambda v: max(v.first_used_at, v.last_used_at or v.first_used_at),
        reverse=True,
    )


def diff_lines(diff: list[str]) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff."""
    out = []
    for line in diff:
        text = line.rstrip("\n")
        if line.startswith(("+++", "---")):
            out.append(("head", text))
        elif line.startswith("@@"):
            out.append(("hunk", text))
        elif line.startswith("+"):
            out.append(("add", text))
        elif line.startswith("-"):
            out.append(("del", text))
        else:
            out.append(("", text))
    return out


def spec_from_form(form: Form[str, str]) -> dict[str, Any] | None:
    """The field form's options (None: unmap the field); BadForm for a value no option has."""
    if form.get("unmap"):
        return None
    spec: dict[str, Any] = {}
    path = (form.get("path") or "").strip() or (form.get("crm_field") or "").strip()
    if path:
        spec["field"] = path
    type_ = form.get("type", "")
    if type_ not in TYPES:
        raise BadForm(f"unknown type {type_!r}: one of {', '.join(TYPES[1:])}")
    if type_:
        spec["type"] = type_
    if fmt := (form.get("format") or "").strip():
        spec["format"] = fmt
    for key in ("default", "const"):
        if raw := (form.get(key) or "").strip():
            spec[key] = _scalar(raw)
    if form.get("required"):
        spec["required"] = True
    direction = form.get("direction") or "both"
    if direction not in DIRECTIONS:
        raise BadForm(f"unknown direction {direction!r}: one of {', '.join(DIRECTIONS)}")
    if direction != "both":
        spec["direction"] = direction
    if form.get("computed"):
        spec["computed"] = True
    return spec


def _scalar(raw: str) -> Any:
    """A default or constant as YAML reads it (false, 0, USD), else the text as it is."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, str | int | float | bool | date) else raw
