"""The mapping safety loop on the sandbox, as an admin meets it (issue 13): a `stage` value
map without "Closed Lost" shows up in `sync --dry-run` and `mappings preview`, and a real
sync with it stops before writing unless forced."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.mapping_file import load_mapping
from tests.conftest import ROOT, cli_for, write_config

AS_OF, LATER = "2026-11-23", "2026-12-23"  # LATER: more renewals are due, so a sync writes
STAGE = "      stage: StageName\n"
BROKEN_STAGE = (
    '      stage: {field: StageName, map: {Prospecting: Prospecting, "Closed Won": "Closed Won"}}\n'
)
REASON = "value 'Closed Lost' has no mapping"


def broken_mapping(
    folder: Path, old: str = STAGE, new: str = BROKEN_STAGE, source: Path | None = None
) -> Path:
    """The shipped sandbox mapping (or `source`) with `old` replaced, as BROKEN.yaml."""
    text = (source or ROOT / "mappings" / "sandbox.yaml").read_text()
    assert old in text
    path = folder / "BROKEN.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture
def demo(tmp_path):
    """A seeded sandbox synced once with the shipped mapping: (good cli, broken cli, folder)."""
    good = cli_for(write_config(tmp_path))
    assert good("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    assert good("sync", "--as-of", AS_OF).exit_code == 1  # 4 records broken on purpose
    broken_folder = tmp_path / "broken"
    broken_folder.mkdir()
    mapping = broken_mapping(tmp_path)
    config = write_config(broken_folder, data_dir=str(tmp_path / "data"), mapping=str(mapping))
    return good, cli_for(config), tmp_path


def crm_writes(folder: Path) -> int:
    """Write calls the sandbox CRM committed (its api_log)."""
    with sqlite3.connect(folder / "data" / "sandbox.db") as db:
        return db.execute("select count(*) from api_log").fetchone()[0]


def state(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(folder / "data" / "state.db") as db:
        return db.execute(sql).fetchall()


def test_dry_run_shows_map_failures_the_skip_reason_change_and_the_open_dead_letters(demo):
    good, broken, folder = demo
    before = (crm_writes(folder), state(folder, "select * from dead_letters"))
    result = broken("sync", "--dry-run", "--as-of", AS_OF, "--json")
    data = json.loads(result.stdout)
    assert data["dead_letters"] == 4  # the ones open, not 0
    stage = data["map_failures"][0]
    assert (stage["kind"], stage["field"], stage["reason"], stage["count"]) == (
        "renewal_opportunity",
        "stage",
        REASON,
        7,
    )
    assert len(stage["sample_ids"]) == 5 and all(i.startswith("006") for i in stage["sample_ids"])
    assert {(f["kind"], f["count"]) for f in data["map_failures"][1:]} == {
        ("contract", 2),
        ("contract_line", 2),
    }
    assert data["skip_reasons_change"] == {"closed_renewal_exists": {"before": 7, "after": 0}}
    assert "renewal_opportunity.stage: value 'Closed Lost' has no mapping (7)" in data["guard"]
    text = broken("sync", "--dry-run", "--as-of", AS_OF).output
    assert "Records that would fail to map" in text and "A real sync would stop" in text
    assert "open dead letters │ 4" in text
    # a dry run writes nothing: no CRM write, no run, no dead letter, no mirror change
    assert (crm_writes(folder), state(folder, "select * from dead_letters")) == before
    assert len(json.loads(good("runs", "--json").stdout)) == 1


def test_a_sync_with_the_broken_value_map_stops_before_writing_and_force_writes(demo):
    good, broken, folder = demo
    writes, cursors = crm_writes(folder), state(folder, "select * from cursors")
    result = broken("sync", "--as-of", LATER)
    assert result.exit_code == 2
    assert "Run 2 (stopped)" in result.stdout
    line = result.stderr.strip()
    assert line.startswith("stopped before writing: 7 renewal_opportunity records failed to map")
    assert f"most: renewal_opportunity.stage: {REASON} (7)" in line
    assert line.endswith("use --force to write anyway")
    assert crm_writes(folder) == writes  # nothing written to the CRM
    assert state(folder, "select * from cursors") == cursors  # cursors did not move
    runs = json.loads(good("runs", "--json").stdout)
    assert (runs[0]["status"], runs[0]["error"]) == ("stopped", line)
    assert f"run 2: {line}" in good("runs").stdout  # the line says it stopped
    letters = json.loads(good("deadletters", "list", "--json").stdout)
    assert sum(d["kind"] == "renewal_opportunity" for d in letters) == 7  # kept, to look at
    again = broken("sync", "--as-of", LATER, "--json")  # stopped runs do not become the baseline
    assert again.exit_code == 2 and json.loads(again.stdout)["status"] == "stopped"
    forced = broken("sync", "--as-of", LATER, "--force", "--json")
    data = json.loads(forced.stdout)
    assert forced.exit_code == 1 and data["status"] == "partial" and data["guard"]
    assert data["created"] == 13 and crm_writes(folder) > writes
    assert data["failed"] == 11  # the 4 broken on purpose and the 7 whose renewal is unreadable


def test_dead_letters_of_renewals_and_renewal_lines_name_their_contract(demo):
    good, broken, folder = demo
    assert broken("sync", "--as-of", AS_OF, "--force").exit_code == 1
    line_map = "kind: {field: Line_Type__c, map: {Renewal: renewal, Upsell: upsell, "
    both = broken_mapping(
        folder, line_map, "kind: {field: Line_Type__c, map: {", folder / "BROKEN.yaml"
    )
    config = write_config(folder / "broken", data_dir=str(folder / "data"), mapping=str(both))
    assert cli_for(config)("sync", "--as-of", AS_OF, "--full", "--force").exit_code == 1
    letters = json.loads(good("deadletters", "list", "--json").stdout)
    crm = SandboxCrm(folder / "data" / "sandbox.db", load_mapping(ROOT / "mappings/sandbox.yaml"))
    contract_of = {o["Id"]: o["Renewal_Contract__c"] for o in crm.all("Opportunity")}
    crm.close()
    renewals = [d for d in letters if d["kind"] == "renewal_opportunity"]
    lines = [d for d in letters if d["kind"] == "renewal_line"]
    assert len(renewals) == 7 and len(lines) > 100
    assert all(d["contract_id"] == contract_of[d["record_id"]] for d in renewals)
    assert all(d["contract_id"] and d["contract_id"].startswith("800") for d in lines)


def test_mappings_preview_diffs_the_candidate_and_stores_nothing(demo):
    good, _, folder = demo
    config = folder / "app.yaml"
    before = (config.read_text(), crm_writes(folder), state(folder, "select * from mirror"))
    result = good("mappings", "preview", str(folder / "BROKEN.yaml"), "--as-of", LATER, "--json")
    assert result.exit_code == 1  # the guard would stop a sync with it
    data = json.loads(result.stdout)
    assert data["contracts"]["failed"] == {"current": 4, "candidate": 11, "change": 7}
    assert data["skip_reasons"]["closed_renewal_exists"] == {
        "current": 7,
        "candidate": 0,
        "change": -7,
    }
    assert data["writes"]["renewal_opportunity.create"]["current"] == 13
    assert data["map_failures"][0]["reason"] == REASON and data["map_failures"][0]["count"] == 7
    assert "none did with the current mapping" in data["guard"]
    assert data["unread_fields"] == {}
    text = good("mappings", "preview", str(folder / "BROKEN.yaml"), "--as-of", LATER).stdout
    assert "Candidate: map failures" in text and "closed_renewal_exists" in text
    assert "would stop before writing" in text
    after = (config.read_text(), crm_writes(folder), state(folder, "select * from mirror"))
    assert after == before and len(json.loads(good("runs", "--json").stdout)) == 1
    same = good("mappings", "preview", str(ROOT / "mappings" / "sandbox.yaml"), "--json")
    assert same.exit_code == 0 and json.loads(same.stdout)["guard"] is None


def test_mappings_preview_names_fields_the_mirror_does_not_hold(demo):
    good, _, folder = demo
    mapping = broken_mapping(
        folder, "      health_drivers: Health_Drivers__c\n", "      health_drivers: Drivers__c\n"
    )
    data = json.loads(good("mappings", "preview", str(mapping), "--json").stdout)
    assert data["unread_fields"] == {"renewal_opportunity": ["Drivers__c"]}


def test_mappings_preview_refuses_an_invalid_candidate_with_one_error(demo):
    good, _, folder = demo
    bad = folder / "bad.yaml"
    data = yaml.safe_load((ROOT / "mappings" / "sandbox.yaml").read_text())
    data["crm"] = "hubspot"
    del data["models"]["contract"]
    bad.write_text(yaml.safe_dump(data))
    text = good("mappings", "preview", str(bad))
    assert text.exit_code == 2 and "Traceback" not in text.output
    assert "missing model 'contract'" in text.stderr
    result = good("mappings", "preview", str(bad), "--json")
    assert result.exit_code == 2
    refused = json.loads(result.stdout)
    assert refused["ok"] is False and "not a usable sandbox mapping" in refused["error"]
    assert any("crm: sandbox" in p for p in refused["problems"])
    missing = json.loads(good("mappings", "preview", str(folder / "nope.yaml"), "--json").stdout)
    assert missing["ok"] is False and "cannot read file" in missing["problems"][0]


def test_mappings_preview_checks_the_candidate_against_the_crms_schema(demo):
    """The issue's other half: `amount` pointed at a field the CRM does not have is named by
    the preview (the CRM's schema, as `mappings validate --online` reads it), not only by doctor."""
    good, _, folder = demo
    amount = "      amount: {field: Amount, type: number, computed: true}\n"
    wrong = "      amount: {field: Amount_Total__c, type: number, computed: true}\n"
    mapping = broken_mapping(folder, amount, wrong)
    result = good("mappings", "preview", str(mapping), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    (problem,) = data["schema_problems"]
    assert problem["name"] == "field Opportunity.Amount_Total__c (renewal_opportunity.amount)"
    assert "does not exist" in problem["detail"] and "did you mean Amount?" in problem["fix"]
    text = good("mappings", "preview", str(mapping)).stdout
    assert "Candidate against the CRM's schema: 1 to fix" in text
    assert "Opportunity.Amount_Total__c" in text
    clean = json.loads(
        good("mappings", "preview", str(ROOT / "mappings/sandbox.yaml"), "--json").stdout
    )
    assert clean["schema_problems"] == []
