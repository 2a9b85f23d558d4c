"""`renewals report` on the sandbox demo book: the customer journey's coverage (touchpoints due,
completed, overdue per segment; renewal rate of accounts that kept up against the others) in
its text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import date, timedelta

import pytest

from tests.conftest import cli_for, write_config
from tests.e2e.journey_readback import read_back_journey_tasks

AS_OF = date(2026, 11, 23)
LATER = AS_OF + timedelta(days=45)


def account_of(key: str) -> str:
    return key.split(":journey:")[0]


def done(key: str) -> bool:
    """Every other account (by its id's last digit) completed its journey tasks."""
    return int(account_of(key)[-1]) % 2 == 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo book synced on AS_OF, its journey tasks read back (`done`'s completed)."""
    folder = tmp_path_factory.mktemp("coverage")
    config = write_config(folder)
    cli = cli_for(config)
    assert cli("demo", "--as-of", AS_OF.isoformat()).exit_code == 0
    return cli, read_back_journey_tasks(config, done, AS_OF)


def journey(cli, as_of: date, *args: str) -> dict:
    return json.loads(cli("report", "--as-of", as_of.isoformat(), "--json", *args).output)[
        "journey"
    ]


def test_report_json_counts_journey_touchpoints_due_completed_and_overdue(demo):
    cli, tasks = demo
    due = [t for t in tasks if t.due_date <= LATER]
    completed = [t for t in due if t.status == "completed"]
    assert completed and len(completed) < len(due)
    j = journey(cli, LATER)
    assert len(j["segments"]) == 18
    total = j["total"]
    assert total["due"] == len(due)
    assert (total["completed"], total["overdue"], total["open"]) == (
        len(completed),
        len(due) - len(completed),
        0,
    )
    assert j["unread"] == 0
    by_segment = Counter(int(t.dedupe_key.split(":")[2]) for t in due)
    assert {r["segment"]: r["due"] for r in j["segments"] if r["due"]} == dict(by_segment)
    assert sum(r["completed"] for r in j["segments"]) == len(completed)
    accounts = {account_of(t.dedupe_key) for t in due}
    kept = {a for a in accounts if done(a + ":journey:")}
    assert j["kept_up"]["accounts"] == len(kept)
    assert j["behind"]["accounts"] == len(accounts - kept)
    for group in (j["kept_up"], j["behind"]):
        decided = group["renewed"] + group["lost"]
        rate = pytest.approx(group["renewed"] / decided) if decided else None
        assert group["renewal_rate"] == rate


def test_on_the_day_they_fall_due_touchpoints_are_open_not_overdue(demo):
    cli, tasks = demo
    today = [t for t in tasks if t.due_date == AS_OF]
    assert today
    total = journey(cli, AS_OF)["total"]
    assert total["due"] == len([t for t in tasks if t.due_date <= AS_OF])
    assert total["overdue"] == len(
        [t for t in tasks if t.due_date < AS_OF and not done(t.dedupe_key)]
    )
    assert total["open"] == len([t for t in today if not done(t.dedupe_key)])
    # a window that ends before they fall due counts none
    assert journey(cli, LATER, "--to", (AS_OF - timedelta(days=1)).isoformat())["total"][
        "due"
    ] == len([t for t in tasks if t.due_date < AS_OF])


def test_report_text_and_csv_show_journey_coverage(demo):
    cli, tasks = demo
    text = cli("report", "--as-of", LATER.isoformat()).output
    assert "Journey coverage: touchpoints due" in text
    assert "Renewal rate by journey coverage" in text and "kept up" in text
    printed = cli("report", "--as-of", LATER.isoformat(), "--csv").output
    rows = list(csv.DictReader(io.StringIO(printed)))
    table = {(r["key"], r["metric"]): r["value"] for r in rows if r["section"] == "journey"}
    j = journey(cli, LATER)
    assert table[("total", "completed")] == str(j["total"]["completed"])
    assert table[("kept_up", "accounts")] == str(j["kept_up"]["accounts"])
    assert table[("3", "due")] == str(j["segments"][2]["due"])
