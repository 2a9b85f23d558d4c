"""Field mappings: which CRM object and field feeds or receives each canonical field.

The mapping is data (loaded from `mappings/*.yaml`); this module checks it against the canonical
models and applies it in both directions. Pure: no I/O.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, fields
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from crm_renewals.connector.domain.models import (
    GROUPS,
    MODELS,
    READ_KINDS,
    WRITE_KINDS,
    Record,
    validate,
)
from crm_renewals.connector.errors import MappingError, UnmappedValueError

CrmType = Literal["string", "number", "integer", "boolean", "date", "datetime"]
Direction = Literal["both", "in", "out"]
EPOCH_MS = "epoch_ms"


class FieldSpec(BaseModel):
    """How one canonical field is fed from / written to the CRM."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str | None = None
    join: tuple[str, ...] | None = None
    type: CrmType | None = None
    format: str | None = None
    map: dict[str, Any] | None = None
    #: what a CRM value missing from `map` reads as (a picklist the CRM lets admins extend,
    #: such as a task's status); without it such a value fails to map
    otherwise: Any = None
    default: Any = None
    const: Any = None
    required: bool = False
    direction: Direction = "both"
    #: the CRM computes the value (Salesforce rolls Opportunity.Amount up from its line items
    #: and ignores writes to it while lines exist): written when the record is created, never
    #: rewritten, and a difference is never a rep's edit
    computed: bool = False

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML turns `true:`/`1:` keys into bool/int; CRM values are compared as text
        if isinstance(value, dict):
            return {_text(k): v for k, v in value.items()}
        return value


class ObjectMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    object: str
    id_field: str = "Id"
    key_field: str | None = None
    modified_field: str | None = None
    options: dict[str, Any] = {}
    fields: dict[str, FieldSpec]

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"field": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class Mapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    crm: Literal["sandbox", "salesforce", "hubspot"]
    models: dict[str, ObjectMapping]

    def source_fields(self, kind: str) -> list[str]:
        """CRM fields an adapter must fetch for `kind` (id, stamp and every inbound field)."""
        om = self.models[kind]
        wanted = [om.id_field] + ([om.modified_field] if om.modified_field else [])
        for spec in om.fields.values():
            if spec.direction == "out":
                continue
            for name in (spec.field, *(spec.join or ())):
                if name and name not in wanted:
                    wanted.append(name)
        return wanted

    def computed_fields(self, kind: str) -> frozenset[str]:
        """Canonical fields of `kind` whose CRM value the CRM computes (see FieldSpec)."""
        om = self.models.get(kind)
        return frozenset(n for n, s in om.fields.items() if s.computed) if om else frozenset()


# ---------------------------------------------------------------- canonical field types


def _canonical_type(annotation: Any) -> tuple[type, tuple | None]:
    """(python type, allowed literal values or None) of a canonical field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _canonical_type(args[0])
    if origin is Literal:
        return str, typing.get_args(annotation)
    return annotation, None


def _flat_fields(model: type) -> Iterator[tuple[str, Any, bool]]:
    """(name, annotation, required) of each mappable field; a group's fields stand flat."""
    hints = typing.get_type_hints(model)
    groups = GROUPS.get(model, {})
    for f in fields(model):
        if f.name in groups:
            yield from _flat_fields(groups[f.name])
        else:
            required = f.default is MISSING and f.default_factory is MISSING
            yield f.name, hints[f.name], required


FIELD_TYPES: dict[str, dict[str, tuple[type, tuple | None, bool]]] = {
    kind: {
        name: (*_canonical_type(annotation), required)
        for name, annotation, required in _flat_fields(model)
    }
    for kind, model in MODELS.items()
}

_COMPATIBLE: dict[type, set[str]] = {
    str: {"string"},
    int: {"integer", "number", "string"},
    Decimal: {"number", "integer", "string"},
    bool: {"boolean", "string"},
    date: {"date", "datetime", "string"},
    datetime: {"datetime", "string", "number"},
}


# ---------------------------------------------------------------- checking a mapping


def check_mapping(mapping: Mapping) -> list[tuple[tuple, str]]:
    """Problems as (key path, message); empty when the mapping fits the canonical models."""
    problems: list[tuple[tuple, str]] = []
    for kind in MODELS:
        if kind not in mapping.models:
            problems.append((("models",), f"missing model {kind!r}"))
    for kind, om in mapping.models.items():
        base = ("models", kind)
        if kind not in MODELS:
            problems.append((base, f"unknown model {kind!r}; expected one of {sorted(MODELS)}"))
            continue
        if kind in WRITE_KINDS and not om.key_field:
            problems.append((base, "key_field is required: writes are upserts by external key"))
        problems += _check_fields(kind, om, base)
    return problems


def _check_fields(kind: str, om: ObjectMapping, base: tuple) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    types_ = FIELD_TYPES[kind]
    for name, (_, _, required) in types_.items():
        if required and name not in om.fields:
            problems.append((base + ("fields",), f"required field {name!r} is not mapped"))
    for name, spec in om.fields.items():
        path = base + ("fields", name)
        if name not in types_:
            problems.append((path, f"unknown field {name!r} for {kind}; known: {sorted(types_)}"))
            continue
        py_type, allowed, _ = types_[name]
        problems += [(path + (k,), m) for k, m in _check_spec(kind, spec, py_type, allowed)]
    return problems


def _check_spec(kind: str, spec: FieldSpec, py_type: type, allowed: tuple | None):
    if spec.field is None and spec.const is None and not spec.join:
        yield (), "needs a CRM `field`, a `join` of fields or a `const`"
    if spec.computed and kind not in WRITE_KINDS:
        yield "computed", "only fields the connector writes can be marked computed"
    if spec.join and (spec.field or spec.direction != "in"):
        yield "join", "a join of fields is read only: drop `field` and set `direction: in`"
    if spec.field and "." in spec.field and spec.direction != "in" and kind in WRITE_KINDS:
        yield "direction", "a related-field path can only be read: set `direction: in`"
    if spec.type and spec.type not in _COMPATIBLE.get(py_type, {spec.type}):
        yield "type", f"CRM type {spec.type!r} cannot hold a {py_type.__name__} value"
    if spec.format and spec.format != EPOCH_MS:
        if py_type not in (date, datetime):
            yield "format", "a format applies to date and datetime fields only"
        else:
            try:
                sample = datetime(2027, 3, 31, 12, 30, 15)
                datetime.strptime(sample.strftime(spec.format), spec.format)
            except ValueError as exc:
                yield "format", f"not a usable date format: {exc}"
    for value in (spec.map or {}).values():
        if allowed and value not in allowed:
            yield "map", f"maps to {value!r}, which is not one of {list(allowed)}"
    one_to_one = len(set(map(_text, (spec.map or {}).values()))) == len(spec.map or {})
    if spec.direction != "in" and kind in WRITE_KINDS and not one_to_one:
        yield "map", "value map is not one-to-one, so it cannot be written back"
    if spec.otherwise is not None and spec.map is None:
        yield "otherwise", "applies to a value map only: add `map`"
    for label in ("default", "const", "otherwise"):
        value = getattr(spec, label)
        if value is not None:
            try:
                _coerce(value, py_type, spec.format)
            except (ValueError, TypeError, InvalidOperation):
                yield label, f"{value!r} is not a valid {py_type.__name__}"
            if allowed and value not in allowed:
                yield label, f"{value!r} is not one of {list(allowed)}"


# ---------------------------------------------------------------- applying a mapping


def to_model(mapping: Mapping, kind: str, raw: dict[str, Any]) -> Record:
    """CRM record (dict of CRM fields) -> canonical model, or MappingError."""
    om = mapping.models[kind]
    record_id = _text(get_path(raw, om.id_field))
    values: dict[str, Any] = {}
    for name, spec in om.fields.items():
        if spec.direction == "out":
            continue
        py_type, allowed, required = FIELD_TYPES[kind][name]
        if spec.const is not None:
            value = spec.const
        elif spec.join:
            value = " ".join(str(v) for v in (get_path(raw, f) for f in spec.join) if v) or None
        else:
            value = get_path(raw, spec.field)
        if value is None or value == "":
            value = spec.default
        elif spec.map is not None:
            key = _text(value)
            if key in spec.map:
                value = spec.map[key]
            elif spec.otherwise is not None:
                value = spec.otherwise
            else:
                raise UnmappedValueError(
                    kind,
                    record_id,
                    name,
                    value,
                    f"not in the value map of {spec.field} ({sorted(spec.map)})",
                )
        if value is None:
            if required or spec.required:
                raise MappingError(
                    kind, record_id, name, None, f"required value missing (CRM field {spec.field})"
                )
            continue
        try:
            value = _coerce(value, py_type, spec.format)
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise MappingError(
                kind, record_id, name, value, f"cannot convert to {py_type.__name__}: {exc}"
            ) from exc
        if allowed and value not in allowed:
            raise MappingError(kind, record_id, name, value, f"not one of {list(allowed)}")
        values[name] = value
    try:
        return validate(MODELS[kind], values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"]))
        raise MappingError(kind, record_id, field, err.get("input"), err["msg"]) from exc


def to_crm(mapping: Mapping, kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Canonical field values (any subset) -> CRM fields with JSON-safe values."""
    out: dict[str, Any] = {}
    for name, spec in mapping.models[kind].fields.items():
        if spec.direction == "in" or not spec.field:
            continue
        if spec.const is not None:
            out[spec.field] = spec.const
            continue
        if name not in values:
            continue
        value = values[name]
        if value is not None and spec.map is not None:
            value = next((crm for crm, ours in spec.map.items() if ours == value), value)
        out[spec.field] = _to_wire(value, spec)
    return out


def _to_wire(value: Any, spec: FieldSpec) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        if spec.format == EPOCH_MS:
            return int(value.timestamp() * 1000)
        return value.strftime(spec.format) if spec.format else value.isoformat()
    if isinstance(value, date):
        if spec.format == EPOCH_MS:
            return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
        return value.strftime(spec.format) if spec.format else value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if spec.type == "string" else float(value)
    if spec.type == "string":
        return _text(value)
    return value


def get_path(raw: dict[str, Any], path: str | None) -> Any:
    """A CRM field's value; `Rel.Field` reads a related record's field."""
    if path is None:
        return None
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(value: Any, py_type: type, fmt: str | None) -> Any:
    if py_type is str:
        return _text(value)
    if py_type is bool:
        if isinstance(value, bool):
            return value
        text = _text(value).strip().lower()
        if text in ("true", "1", "yes", "y"):
            return True
        if text in ("false", "0", "no", "n"):
            return False
        raise ValueError("not a boolean")
    if py_type is int:
        return int(Decimal(_text(value)))
    if py_type is Decimal:
        if isinstance(value, float):
            return Decimal(repr(value))
        return Decimal(_text(value).strip())
    if py_type is datetime:
        return _to_datetime(value, fmt)
    if py_type is date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if fmt == EPOCH_MS or (fmt is None and isinstance(value, int | float)):
            return datetime.fromtimestamp(int(value) / 1000, UTC).date()
        text = _text(value).strip()
        if fmt:
            return datetime.strptime(text, fmt).date()
        return date.fromisoformat(text[:10]) if "T" in text else date.fromisoformat(text)
    raise TypeError(f"unsupported canonical type {py_type}")


def _to_datetime(value: Any, fmt: str | None) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif fmt == EPOCH_MS or isinstance(value, int | float):
        parsed = datetime.fromtimestamp(int(value) / 1000, UTC)
    elif fmt:
        parsed = datetime.strptime(_text(value), fmt)
    else:
        parsed = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = [
    "FieldSpec",
    "Mapping",
    "ObjectMapping",
    "READ_KINDS",
    "check_mapping",
    "to_crm",
    "to_model",
]
