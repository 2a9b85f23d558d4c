"""`renewals demo`, `signals import` and `report` as an admin or a script uses them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3

import pytest

from tests.conftest import ROOT, cli_for, write_config

AS_OF = "2026-11-23"


@pytest.fixture
def cli(tmp_path):
    invoke = cli_for(write_config(tmp_path))
    invoke.data = tmp_path / "data"
    return invoke


def test_demo_shows_the_health_mix_upsell_lines_qbr_tasks_and_the_report(cli):
    out = cli("demo", "--as-of", AS_OF)
    assert out.exit_code == 0, out.output
    mix = {g: int(n) for g, n in re.findall(r"│ (green|yellow|red)\s+│ (\d+)", out.output)}
    assert set(mix) == {"green", "yellow", "red"} and all(mix.values())
    assert "Second run: 0 writes" in out.output
    for title in ("Renewals 2025-11-23 .. 2026-11-23", "Coming due", "Reasons for non-renewal"):
        assert title in out.output
    assert "Segment migration" in out.output
    db = sqlite3.connect(cli.data / "sandbox.db")
    kinds = dict(
        db.execute(
            "SELECT json_extract(fields, '$.Line_Type__c'), count(*) FROM records "
            "WHERE object = 'OpportunityLineItem' GROUP BY 1"
        ).fetchall()
    )
    assert kinds["Upsell"] >= 5 and kinds["Cross-sell"] >= 1
    (qbrs,) = db.execute(
        "SELECT count(*) FROM records WHERE object = 'Task' "
        "AND json_extract(fields, '$.Dedupe_Key__c') LIKE '%:qbr:%'"
    ).fetchone()
    assert qbrs >= 10
    report = json.loads(cli("report", "--as-of", AS_OF, "--json").output)
    assert report["health"] == mix
    total = report["total"]
    assert total["due"] == total["renewed"] + total["lost"] + total["open"] > 0
    assert 0 < total["renewal_rate"] < 1
    assert total["churn_rate"] == pytest.approx(1 - total["renewal_rate"])
    assert sum(report["non_renewal_reasons"].values()) == total["lost"]
    assert report["segment_migration"]["matrix"]
    assert len(report["coming_due"]) == 12


def test_signals_import_keeps_good_rows_and_reports_bad_ones_by_line(cli, tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text(
        "account,measure,value,timestamp\n"
        "001A,seat_utilisation,0.82,2026-11-20T09:00:00Z\n"
        "001A,seat_utilisation,lots,2026-11-20T09:00:00Z\n"
        "001B,mood,3,2026-11-20T09:00:00Z\n"
        "001B,nps,35,1763629200000\n"
        "001C,active_users,12,2026-11-20 09:00\n"
    )
    out = cli("signals", "import", str(path), "--json")
    assert out.exit_code == 1
    data = json.loads(out.output)
    assert (data["rows"], data["stored"]) == (5, 2)
    assert [e["line"] for e in data["errors"]] == [3, 4, 6]
    assert "not a number" in data["errors"][0]["error"]
    assert "not in the scorecard" in data["errors"][1]["error"]
    assert "time zone" in data["errors"][2]["error"]
    again = cli("signals", "import", str(path))
    assert "0 signals stored, 2 already known, 3 rejected" in again.output
    assert "line" in again.output and again.exit_code == 1


def test_report_as_csv_by_month_and_bad_usage(cli):
    assert cli("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    cli("sync", "--as-of", AS_OF, "--json")
    out = cli("report", "--as-of", AS_OF, "--period", "month", "--from", "2026-08-01", "--csv")
    assert out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert set(rows[0]) == {"section", "key", "metric", "value"}
    sections = {r["section"] for r in rows}
    assert {"retention", "coming_due", "non_renewal_reasons", "segment_migration"} <= sections
    months = {r["key"] for r in rows if r["section"] == "retention"}
    assert months == {"2026-08", "2026-09", "2026-10", "2026-11", "total"}
    assert cli("report", "--json", "--csv").exit_code == 2
    assert cli("report", "--from", "2026-12-01", "--to", "2026-01-01").exit_code == 2


def test_the_report_reads_the_synced_data_without_logging_in_to_the_crm(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("SALESFORCE_")]:
        monkeypatch.delenv(name)  # no credentials at all: a login would fail
    config = write_config(
        tmp_path, crm="salesforce", mapping=str(ROOT / "mappings" / "salesforce.yaml")
    )
    out = cli_for(config)("report", "--as-of", AS_OF, "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["health"] == {"green": 0, "yellow": 0, "red": 0}  # nothing synced yet
    assert sum(p["due"] for p in report["periods"]) == 0


def test_report_by_owner_names_the_reps_in_json_csv_and_the_table(cli):
    assert cli("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    cli("sync", "--as-of", AS_OF, "--json")
    report = json.loads(cli("report", "--as-of", AS_OF, "--json").output)
    owners, total = report["by_owner"], report["total"]
    assert len(owners) > 3
    for key in ("due", "renewed", "lost", "open"):
        assert sum(r[key] for r in owners) == total[key]
    assert sum(r["value"] for r in owners) == pytest.approx(total["due_value"])
    assert all(r["owner"] != r["owner_id"] and " " in r["owner"] for r in owners)  # names
    out = cli("report", "--as-of", AS_OF, "--csv").output
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["section"] == "by_owner"]
    assert {r["key"] for r in rows} == {r["owner"] for r in owners}
    first = owners[0]
    assert {"key": first["owner"], "metric": "due", "value": str(first["due"])} in [
        {k: r[k] for k in ("key", "metric", "value")} for r in rows
    ]
    table = cli("report", "--as-of", AS_OF).output
    assert "By owner" in table and first["owner"] in table
