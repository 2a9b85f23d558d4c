"""SOQL for the mapping's objects (built with `format_soql`, never f-strings) and the shapes of
query answers: field names checked, `options.where` filters, records without `attributes`,
Salesforce's datetimes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from simple_salesforce import format_soql

from crm_renewals.connector.domain.mapping import Mapping as FieldMapping
from crm_renewals.connector.errors import ConfigError, Problem

#: Objects that have no IsDeleted field (queried without it, through /query).
NO_RECYCLE_BIN = {"User", "UserRole", "Profile", "PricebookEntry"}
SOQL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE"}
MAX_IDS_PER_QUERY = 200


def check_names(mapping: FieldMapping) -> None:
    """Every mapped object and field a plain SOQL name (they go into queries as literals)."""
    for kind, om in mapping.models.items():
        for name in mapping.source_fields(kind) + [om.object, om.key_field or "Id"]:
            if not SOQL_NAME.match(name):
                raise ConfigError(
                    [Problem(f"models.{kind}", f"{name!r} is not a Salesforce field name")]
                )


def select_list(mapping: FieldMapping, kind: str) -> list[str]:
    """The fields a read of `kind` selects: the mapping's, its modstamp, IsDeleted."""
    om = mapping.models[kind]
    names = mapping.source_fields(kind)
    if om.modified_field is None:
        names = names + ["SystemModstamp"]
    if om.object not in NO_RECYCLE_BIN and "IsDeleted" not in names:
        names = names + ["IsDeleted"]
    return names


def select(mapping: FieldMapping, kind: str, where: list[str], extra: Sequence[str] = ()) -> str:
    om = mapping.models[kind]
    names = select_list(mapping, kind) + [n for n in extra if SOQL_NAME.match(n)]
    soql = format_soql("SELECT {:literal} FROM {:literal}", ", ".join(names), om.object)
    if where:
        soql += " WHERE " + " AND ".join(where)
    return soql


def filters(om) -> list[str]:
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


def plain(rec: dict[str, Any]) -> dict[str, Any]:
    """A SOQL record without `attributes`, related records (Rel.Field) kept as dicts."""
    return {k: plain(v) if isinstance(v, dict) else v for k, v in rec.items() if k != "attributes"}


def parse_datetime(value: Any) -> datetime:
    """Salesforce datetimes: 2026-11-02T09:15:27.000+0000 (or Z)."""
    text = str(value).replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)
