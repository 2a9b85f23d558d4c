"""What changed between two mapping files, by model and field: the summary `renewals mappings
diff` prints above the text diff. Pure: takes the two files' parsed YAML."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldChange:
    """A model (field None: its object, keys or options) or one of its fields that was added,
    removed or changed; a changed value map lists its entries added, removed and changed."""

    model: str
    field: str | None
    change: str  # added | removed | changed
    before: Any = None
    after: Any = None
    map_added: dict[str, Any] = field(default_factory=dict)
    map_removed: dict[str, Any] = field(default_factory=dict)
    map_changed: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.model if self.field is None else f"{self.model}.{self.field}"


def mapping_changes(before: Any, after: Any) -> list[FieldChange]:
    """Models and fields added, removed or changed from `before` to `after` (parsed mapping
    files), in the order of the models and fields."""
    old, new = _models(before), _models(after)
    out: list[FieldChange] = []
    for name in _union(old, new):
        if name not in new or name not in old:
            change = "added" if name in new else "removed"
            out.append(FieldChange(name, None, change, old.get(name), new.get(name)))
            continue
        head_old, head_new = _head(old[name]), _head(new[name])
        if head_old != head_new:
            out.append(FieldChange(name, None, "changed", head_old, head_new))
        out += _field_changes(name, _fields(old[name]), _fields(new[name]))
    return out


def describe(c: FieldChange) -> str:
    """One line: + added, - removed, ~ changed (its value map's entries, or before -> after)."""
    if c.change != "changed":
        sign, spec = ("+", c.after) if c.change == "added" else ("-", c.before)
        return f"{sign} {c.where}: {_flow(spec)}"
    entries = [f"+{_flow(k)}: {_flow(v)}" for k, v in c.map_added.items()]
    entries += [f"-{_flow(k)}: {_flow(v)}" for k, v in c.map_removed.items()]
    entries += [f"{_flow(k)}: {_flow(o)} -> {_flow(n)}" for k, (o, n) in c.map_changed.items()]
    rest = [c.before, c.after]
    if entries:
        rest = [{k: v for k, v in s.items() if k != "map"} for s in (c.before, c.after)]
    said = [f"value map {', '.join(entries)}"] if entries else []
    if rest[0] != rest[1]:
        said.append(f"{_flow(rest[0])} -> {_flow(rest[1])}")
    return f"~ {c.where}: {'; '.join(said)}"


def _flow(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _field_changes(model: str, old: dict, new: dict) -> list[FieldChange]:
    out = []
    for name in _union(old, new):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None or b is None:
            out.append(FieldChange(model, name, "added" if a is None else "removed", a, b))
            continue
        maps = _dict(a.get("map")), _dict(b.get("map"))
        out.append(
            FieldChange(
                model,
                name,
                "changed",
                a,
                b,
                map_added={k: v for k, v in maps[1].items() if k not in maps[0]},
                map_removed={k: v for k, v in maps[0].items() if k not in maps[1]},
                map_changed={
                    k: [v, maps[1][k]]
                    for k, v in maps[0].items()
                    if k in maps[1] and maps[1][k] != v
                },
            )
        )
    return out


def _models(data: Any) -> dict[str, dict]:
    models = _dict(data.get("models")) if isinstance(data, dict) else {}
    return {str(k): _dict(v) for k, v in models.items()}


def _head(model: dict) -> dict:
    """A model's own keys (object, keys, options): all but its fields."""
    return {k: v for k, v in model.items() if k != "fields"}


def _fields(model: dict) -> dict[str, dict]:
    """Its fields, the shorthand `name: CrmField` as {field: CrmField}."""
    return {
        str(k): v if isinstance(v, dict) else {"field": v}
        for k, v in _dict(model.get("fields")).items()
    }


def _dict(value: Any) -> dict:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _union(a: dict, b: dict) -> list[str]:
    return list(a) + [k for k in b if k not in a]
