"""The report page's journey coverage: the same figures `renewals report` prints (per segment,
and the renewal rates of accounts that kept up with their journey and of the others), its
chart, and its table as the CLI's CSV rows; the health page's accounts with their place in
the journey, as `renewals explain` gives it."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
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
    read_back_journey_tasks(console_config, lambda _key: next(flip) % 2 == 0, AS_OF)
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


def contract_of(config: Path, account: str) -> str:
    """One of the account's contracts in the sandbox CRM (explain takes a contract)."""
    with sqlite3.connect(config.parent / "data" / "sandbox.db") as db:
        (found,) = db.execute(
            "SELECT id FROM records WHERE object = 'Contract' "
            "AND json_extract(fields, '$.AccountId') = ? LIMIT 1",
            (account,),
        ).fetchone()
    return found


def test_the_health_page_shows_each_accounts_journey_as_explain_does(admin, console_config):
    cli = cli_for(console_config)
    page = admin.get("/admin/health").get_data(as_text=True)
    rows = re.findall(r'<tr class="health-row.*?</tr>', page, re.S)
    assert rows and all('class="journey"' in r for r in rows)
    shown = 0
    for row in rows[:10]:
        account = re.search(r'<small class="muted">([^<]+)</small>', row).group(1)
        explained = json.loads(
            cli("explain", contract_of(console_config, account), "--json").output
        )
        j = explained["journey"]
        cell = re.sub(r"\s+", " ", re.search(r'class="journey">(.*?)</td>', row, re.S).group(1))
        if j["segment"] is not None:
            assert f"segment {j['segment']}/18 ({j['theme']})" in cell
            shown += 1
        if j["next_touchpoint"]:
            assert f"due {j['next_touchpoint']['due']}" in cell
    assert shown
