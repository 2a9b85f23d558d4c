"""The renewal report as one value (connector.domain.reports computes its parts): its JSON, and
its tables as CSV rows `section,key,metric,value`, all of them (`renewals report --csv`) or one
table (the console's CSV downloads), written by the same code."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from crm_renewals.connector.domain.journey_report import JourneyCoverage
from crm_renewals.connector.domain.reports import DueMonth, OwnerRow, Period, Retention

Row = tuple[str, str, str, Any]


@dataclass
class Report:
    as_of: date
    start: date
    end: date
    period: Period
    periods: list[Retention]
    total: Retention
    coming_due: list[DueMonth]
    loss_reasons: dict[str, int]
    migration_from: str | None
    migration_to: str | None
    migration: dict[str, dict[str, int]] = field(default_factory=dict)
    health: dict[str, int] = field(default_factory=dict)
    by_owner: list[OwnerRow] = field(default_factory=list)
    journey: JourneyCoverage | None = None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(
            {
                "as_of": self.as_of,
                "from": self.start,
                "to": self.end,
                "period": self.period,
                "health": self.health,
                "periods": [asdict(r) for r in self.periods],
                "total": asdict(self.total),
                "coming_due": [asdict(d) for d in self.coming_due],
                "non_renewal_reasons": self.loss_reasons,
                "segment_migration": {
                    "from_period": self.migration_from,
                    "to_period": self.migration_to,
                    "matrix": self.migration,
                },
                "by_owner": [asdict(r) for r in self.by_owner],
                "journey": asdict(self.journey) if self.journey else None,
            }
        )

    def rows(self, section: str | None = None) -> list[Row]:
        """(section, key, metric, value) rows, for CSV: every table's, or one's (SECTIONS)."""
        data = self.to_json()
        chosen = SECTIONS if section is None else {section: SECTIONS[section]}
        return [row for rows_of in chosen.values() for row in rows_of(self, data)]


def _retention(_r: Report, data: dict) -> Iterator[Row]:
    for r in [*data["periods"], data["total"]]:
        yield from (("retention", r["period"], k, v) for k, v in r.items() if k != "period")


def _coming_due(_r: Report, data: dict) -> Iterator[Row]:
    for d in data["coming_due"]:
        yield ("coming_due", d["month"], "contracts", d["contracts"])
        yield ("coming_due", d["month"], "value", d["value"])
        yield from (("coming_due", d["month"], f"health_{g}", n) for g, n in d["health"].items())


def _reasons(r: Report, _data: dict) -> Iterator[Row]:
    yield from (("non_renewal_reasons", reason, "count", n) for reason, n in r.loss_reasons.items())


def _migration(r: Report, _data: dict) -> Iterator[Row]:
    span = f"{r.migration_from}->{r.migration_to}"
    for src, row in r.migration.items():
        yield from (("segment_migration", span, f"{src}->{dst}", n) for dst, n in row.items())


def _health(r: Report, _data: dict) -> Iterator[Row]:
    yield from (("health", "accounts", g, n) for g, n in r.health.items())


def _by_owner(_r: Report, data: dict) -> Iterator[Row]:
    for row in data["by_owner"]:
        yield from (("by_owner", row["owner"], k, v) for k, v in row.items() if k != "owner")


def _journey(_r: Report, data: dict) -> Iterator[Row]:
    j = data["journey"] or {}
    for row in [*j.get("segments", []), *([j["total"]] if j else [])]:
        key = "total" if row["segment"] is None else str(row["segment"])
        yield from (("journey", key, k, v) for k, v in row.items() if k != "segment")
    for group in ("kept_up", "behind"):
        yield from (("journey", group, k, v) for k, v in (j.get(group) or {}).items())


#: the report's tables, in the order `renewals report --csv` prints them
SECTIONS: dict[str, Callable[[Report, dict], Iterator[Row]]] = {
    "retention": _retention,
    "coming_due": _coming_due,
    "non_renewal_reasons": _reasons,
    "segment_migration": _migration,
    "health": _health,
    "by_owner": _by_owner,
    "journey": _journey,
}


def report_csv(report: Report, section: str | None = None) -> str:
    """CSV with a header row: every table's rows, or one table's (a key of SECTIONS)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "key", "metric", "value"))
    writer.writerows(("" if v is None else v for v in row) for row in report.rows(section))
    return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
