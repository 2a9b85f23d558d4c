"""The report page's journey coverage: the same figures `renewals report` prints (per segment,
and the renewal rates of accounts that kept up with their journey and of the others), its
chart, and its table as the CLI's CSV rows."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import AS_OF, cli_for
from tests.console.test_reports_settings import chart, marks, table_rows
from tests.e2e.journey_readback import read_back_journey_tasks

LATER = (AS_OF + timedelta(days=45)).isoformat()


@pytest.fixture
def console_config(console_config: Path) -> Path:
    """The demo book with its journey tasks read back, every other one completed."""
    flip = iter(range(10**6))
    read_back_journey_tasks(console_config, lambda _key: next(flip) % 2 == 0)
    return console_config


def pct(value: float | None) -> str:
    """As the page writes a share (a Decimal, rounded half even)."""
    return "–" if value is None else f"{Decimal(str(value)) * 100:.1f}%"


def test_the_report_page_shows_the_clis_journey_coverage(admin, console_config):
    printed = cli_for(console_config)("report", "--as-of", LATER, "--json").output
    j = json.loads(printed)["journey"]
    assert j["total"]["completed"] and j["total"]["overdue"]
    page = admin.get(f"/admin/reports?as_of={LATER}").get_data(as_text=True)
    rows = table_rows(page, "journey-table")
    assert rows == [
        [
            "total" if r["segment"] is None else str(r["segment"]),
            str(r["due"]),
            str(r["completed"]),
            str(r["overdue"]),
            str(r["open"]),
            pct(r["completion"]),
        ]
        for r in [*j["segments"], j["total"]]
    ]
    rates = table_rows(page, "journey-rates-table")
    assert [row[0] for row in rates] == ["kept up", "behind"]
    for row, group in zip(rates, (j["kept_up"], j["behind"]), strict=True):
        assert row[1:] == [
            str(group["accounts"]),
            str(group["contracts_due"]),
            str(group["renewed"]),
            str(group["lost"]),
            pct(group["renewal_rate"]),
        ]
    bars = marks(chart(page, "chart-journey"))
    assert bars  # completed and overdue bars for the segments with touchpoints due


def test_the_journey_table_downloads_as_the_clis_csv_rows(admin, console_config):
    printed = cli_for(console_config)("report", "--as-of", LATER, "--csv").output
    wanted = [r for r in csv.reader(io.StringIO(printed)) if r[0] == "journey"]
    answer = admin.get(f"/admin/reports/journey.csv?as_of={LATER}")
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["section", "key", "metric", "value"] and rows[1:] == wanted
