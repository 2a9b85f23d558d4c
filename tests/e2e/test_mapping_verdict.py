"""One verdict on a mapping, on the sandbox CRM, as an admin runs it: `config check`,
`mappings validate` (offline and --online) and `doctor` agree, in text and in JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_for, write_config

AS_OF = "2026-11-23"


def broken_mapping(folder: Path) -> Path:
    """The issue's scenario: `amount` pointed at a field the CRM does not have, and a `stage`
    value map without "Closed Lost" (which app.yaml's closed_lost_stages names)."""
    text = (ROOT / "mappings" / "sandbox.yaml").read_text()
    text = text.replace(
        "amount: {field: Amount, type: number, computed: true}",
        "amount: {field: Amount_Total__c, type: number, computed: true}",
    )
    text = text.replace(
        "      stage: StageName\n",
        "      stage: {field: StageName, map: {Prospecting: Prospecting, Negotiation: Negotiation,"
        ' "Closed Won": "Closed Won"}}\n',
    )
    path = folder / "broken.yaml"
    path.write_text(text)
    return path


def broken_config(seeded: Path) -> Path:
    """An app.yaml beside the seeded one, on the same sandbox, with the broken mapping."""
    folder = seeded / "broken"
    folder.mkdir(exist_ok=True)
    return write_config(folder, data_dir=str(seeded / "data"), mapping=str(broken_mapping(folder)))


def renewals(config: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "renewals"
    return subprocess.run(
        [str(exe), "--config", str(config), *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def seeded(tmp_path):
    config = write_config(tmp_path)
    assert cli_for(config)("sandbox", "seed", "--reset", "--as-of", AS_OF).exit_code == 0
    return tmp_path


def test_doctor_and_online_validate_agree_and_catch_a_wrong_field_and_a_stage_map(seeded):
    good = seeded / "app.yaml"
    for args in (("doctor",), ("mappings", "validate", "--online")):
        ok = renewals(good, *args)
        assert ok.returncode == 0 and "checks passed" in ok.stdout, ok.stdout

    bad = broken_config(seeded)
    found = {}
    for args in (("doctor", "--json"), ("mappings", "validate", "--online", "--json")):
        result = renewals(bad, *args)
        assert result.returncode == 1, result.stderr
        found[args[0]] = {c["name"]: c for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    assert found["doctor"] == found["mappings"]  # one verdict
    field = found["doctor"]["field Opportunity.Amount_Total__c (renewal_opportunity.amount)"]
    assert "does not exist" in field["detail"] and "did you mean Amount?" in field["fix"]
    stage = found["doctor"][
        "renewals.closed_lost_stages 'Closed Lost' in the value map of Opportunity.StageName"
    ]
    assert '"Closed Lost": "Closed Lost"' in stage["fix"]
    values = found["doctor"]["value map Opportunity.StageName (renewal_opportunity.stage)"]
    assert "'Closed Lost'" in values["detail"]


def test_offline_checks_name_the_stage_map_and_json_is_json_in_every_outcome(seeded):
    bad = broken_config(seeded)
    check = renewals(bad, "config", "check")
    assert check.returncode == 2
    assert "broken.yaml:97: models.renewal_opportunity.fields.stage.map" in check.stderr
    assert "renewals.closed_lost_stages in app.yaml names 'Closed Lost'" in check.stderr

    offline = renewals(bad, "mappings", "validate", "--json")
    data = json.loads(offline.stdout)
    assert offline.returncode == 2 and data["ok"] is False and data["files"] == []
    (problem,) = data["problems"]
    assert problem["path"] == "models.renewal_opportunity.fields.stage.map" and problem["line"]

    good = renewals(seeded / "app.yaml", "mappings", "validate", "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["files"][0]["models"] == 9

    missing = renewals(seeded / "nope.yaml", "doctor", "--json")
    error = json.loads(missing.stdout)
    assert missing.returncode == 2 and error["ok"] is False
    assert "configuration file not found" in error["problems"][0]["message"]
