"""What a run read: its records by kind, and those that failed to map, grouped by kind,
field and reason with a few sample ids. The dry run's and the preview's `map_failures`, and
what the guard (connector.services.guard) weighs before the first write."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crm_renewals.connector.errors import MappingError, UnmappedValueError

#: sample record ids kept per (kind, field, reason)
SAMPLES = 5


@dataclass
class MapFailure:
    """Records of one kind that failed to map on one field for one reason."""

    kind: str
    field: str
    reason: str
    count: int = 0
    sample_ids: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.kind}.{self.field}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "field": self.field,
            "reason": self.reason,
            "count": self.count,
            "sample_ids": list(self.sample_ids),
        }


@dataclass
class Reading:
    """Records read (pulled, refetched or re-mapped from the mirror) and mapping failures."""

    read: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[str, str, str], MapFailure] = field(default_factory=dict)

    def fail(self, err: MappingError) -> None:
        reason = (
            f"value {err.value!r} has no mapping"
            if isinstance(err, UnmappedValueError)
            else err.reason
        )
        group = self.groups.setdefault(
            (err.kind, err.field, reason), MapFailure(err.kind, err.field, reason)
        )
        group.count += 1
        if len(group.sample_ids) < SAMPLES and err.record_id:
            group.sample_ids.append(err.record_id)

    @property
    def total_read(self) -> int:
        return sum(self.read.values())

    @property
    def total_failed(self) -> int:
        return sum(g.count for g in self.groups.values())

    def failed_by_kind(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for g in self.groups.values():
            out[g.kind] += g.count
        return dict(sorted(out.items()))

    def failures(self) -> list[MapFailure]:
        """The groups, most records first."""
        return sorted(self.groups.values(), key=lambda g: (-g.count, g.kind, g.field, g.reason))
