"""Bulk API 2.0 CSV rows in the shape queryAll's JSON has, so both reads give the mapping the
same records: text made booleans, numbers and REST's datetime form by each field's describe
type, empty cells made null, `Rel.Field` columns nested into a dict per relationship, and a
relationship whose lookup is empty made null (as REST answers `"Account": null`).

CSV has no null: an empty cell is the only way Salesforce writes one, and Salesforce keeps no
empty text (an empty text field is null), so empty means null for every type. A related record
whose selected fields are all null cannot be told from no related record by those cells alone:
the lookup field (OpportunityId for `Opportunity.X`) is read too and decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from crm_renewals.connector.adapters.salesforce.soql import parse_datetime

#: describe field types -> how a CSV cell becomes the JSON value REST gives
NUMBERS = {"double", "currency", "percent"}


def _value(kind: str, text: str) -> Any:
    if text == "":
        return None
    if kind == "boolean":
        return text.lower() == "true"
    if kind in ("int", "long"):
        return int(float(text))
    if kind in NUMBERS:
        return float(text)
    if kind == "datetime":  # Bulk writes ...000Z, REST ...000+0000
        stamp = parse_datetime(text)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"
    return text


class BulkShape:
    """What a bulk read of one object's SELECT list needs: the extra lookup columns to ask for,
    and `record(row)` giving a row the queryAll shape.

    `describe(object) -> {field name: describe field}` (cached by the caller)."""

    def __init__(
        self,
        obj: str,
        names: Sequence[str],
        describe: Callable[[str], dict[str, dict[str, Any]]],
    ):
        self.names = list(names)
        self.describe = describe
        self.types: dict[str, str] = {}
        #: relationship path ("Opportunity", "A.B") -> the column of its lookup field
        self.lookups: dict[str, str] = {}
        for name in self.names:
            self.types[name] = self._type(obj, name.split("."))
            parts = name.split(".")
            for depth in range(1, len(parts)):
                path = ".".join(parts[:depth])
                if path not in self.lookups:
                    self.lookups[path] = self._lookup(obj, parts[:depth])
        #: lookup columns not in the SELECT list: asked for, then dropped from the record
        self.extra = [c for c in dict.fromkeys(self.lookups.values()) if c and c not in names]
        for column in self.extra:
            self.types[column] = "reference"

    def record(self, row: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            value = _value(self.types[name], row.get(name, ""))
            parts = name.split(".")
            if len(parts) == 1:
                out[name] = value
                continue
            if self._absent(row, parts[:-1]):
                self._nest(out, self._first_absent(row, parts[:-1]), None)
                continue
            self._nest(out, parts, value)
        return out

    # ---------------------------------------------------------------- relationships

    def _absent(self, row: dict[str, str], rel: list[str]) -> bool:
        return self._first_absent(row, rel) is not None

    def _first_absent(self, row: dict[str, str], rel: list[str]) -> list[str] | None:
        """The shortest relationship path along `rel` whose lookup is empty, if any."""
        for depth in range(1, len(rel) + 1):
            path = ".".join(rel[:depth])
            column = self.lookups.get(path)
            if column and row.get(column, "") == "":
                return rel[:depth]
            if not column and all(
                row.get(n, "") == "" for n in self.names if n.startswith(path + ".")
            ):
                return rel[:depth]  # lookup unknown to describe: all its cells empty
        return None

    @staticmethod
    def _nest(out: dict[str, Any], parts: list[str], value: Any) -> None:
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None and part in node:
                return  # the relationship above is null already
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def _target(self, obj: str, rel: str) -> tuple[str | None, list[str]]:
        """The lookup field of relationship `rel` on `obj`, and the objects it points to."""
        for field in self.describe(obj).values():
            if field.get("relationshipName") == rel:
                return field["name"], list(field.get("referenceTo") or [])
        return None, []

    def _lookup(self, obj: str, rel: list[str]) -> str:
        """The column holding the lookup behind relationship path `rel` ("" when unknown)."""
        for part in rel[:-1]:
            _, targets = self._target(obj, part)
            if not targets:
                return ""
            obj = targets[0]
        field, _ = self._target(obj, rel[-1])
        return ".".join([*rel[:-1], field]) if field else ""

    def _type(self, obj: str, parts: list[str]) -> str:
        objects = [obj]
        for part in parts[:-1]:
            targets: list[str] = []
            for o in objects:
                targets += self._target(o, part)[1]
            objects = targets
        for o in objects:  # polymorphic lookups: the first target that has the field
            field = self.describe(o).get(parts[-1])
            if field:
                return str(field.get("type", "string"))
        return "string"
