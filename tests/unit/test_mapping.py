"""Mappings: declared transforms in both directions, and problems located in the file."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from crm_renewals.connector.domain.mapping import to_crm, to_model
from crm_renewals.connector.domain.models import Account, HealthMeasures, to_json, validate
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.errors import ConfigError, MappingError
from crm_renewals.connector.mapping_file import load_mapping, mapping_from_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(ROOT / "mappings" / "sandbox.yaml")


@pytest.mark.parametrize("name", ["sandbox", "salesforce", "hubspot"])
def test_shipped_mapping_files_validate(name):
    assert load_mapping(ROOT / "mappings" / f"{name}.yaml").crm == name


def test_crm_record_maps_with_coercion_value_map_and_default(mapping):
    raw = {
        "Id": "800X",
        "AccountId": "001X",
        "Status": "Activated",
        "EndDate": "2027-03-31",
        "StartDate": "2026-04-01",
        "Renewal_Uplift__c": 4.5,
        "ContractNumber": 17,
    }
    c = to_model(mapping, "contract", raw)
    assert (c.status, c.end_date, c.uplift_percent) == ("active", date(2027, 3, 31), Decimal("4.5"))
    assert (c.number, c.currency) == ("17", "USD")


def test_unknown_picklist_value_names_record_field_and_value(mapping):
    raw = {"Id": "800X", "AccountId": "001X", "Status": "Paused", "EndDate": "2027-03-31"}
    with pytest.raises(MappingError) as exc:
        to_model(mapping, "contract", raw)
    assert (exc.value.record_id, exc.value.field, exc.value.value) == ("800X", "status", "Paused")


def test_bad_date_is_a_mapping_error_not_a_crash(mapping):
    raw = {"Id": "800X", "AccountId": "001X", "Status": "Activated", "EndDate": "31/03/2027"}
    with pytest.raises(MappingError, match="end_date"):
        to_model(mapping, "contract", raw)


def test_related_field_paths_are_read(mapping):
    raw = {
        "Id": "811X",
        "ContractId": "800X",
        "Quantity": "3",
        "UnitPrice": "9.5",
        "Product2": {"ProductCode": "SEAT", "Name": "Seat"},
    }
    ln = to_model(mapping, "contract_line", raw)
    assert (ln.product_code, ln.quantity, ln.recurring) == ("SEAT", Decimal("3"), True)


def test_account_health_measures_map_flat_into_a_group_that_is_none_when_empty(mapping):
    raw = {"Id": "001X", "Name": "Acme", "NPS__c": 35, "Executive_Sponsor__c": False}
    acc = to_model(mapping, "account", raw)
    assert acc.measures == HealthMeasures(nps=Decimal(35), executive_sponsor=False)
    assert to_model(mapping, "account", {"Id": "001Y", "Name": "Bare"}).measures is None


def test_account_json_keeps_the_measures_flat_and_reads_back(mapping):
    acc = to_model(mapping, "account", {"Id": "001X", "Name": "Acme", "Late_Payments__c": 2})
    data = to_json(acc)
    assert data == {
        "id": "001X",
        "name": "Acme",
        "owner_id": None,
        "segment": None,
        "nps": None,
        "open_tickets": None,
        "high_priority_tickets": None,
        "late_payments": 2,
        "last_meeting_date": None,
        "executive_sponsor": None,
    }
    assert validate(Account, data) == acc
    bare = validate(Account, {**data, "late_payments": None})
    assert bare.measures is None and to_json(bare) == {**data, "late_payments": None}


def test_writes_invert_value_maps_and_format_dates(mapping):
    fields = to_crm(
        mapping, "task", {"priority": "high", "due_date": date(2027, 1, 4), "status": "open"}
    )
    assert fields == {"Priority": "High", "ActivityDate": "2027-01-04", "Status": "Not Started"}


def test_mapping_problems_are_all_reported_with_file_and_line(tmp_path):
    text = (ROOT / "mappings" / "sandbox.yaml").read_text()
    text = text.replace("      email: Email\n", "      emial: Email\n", 1)
    text = text.replace(
        "end_date: {field: EndDate, type: date",
        "end_date: {field: EndDate, type: date, format: '%Q'",
        1,
    )
    text = text.replace("    key_field: Dedupe_Key__c\n", "", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_mapping(bad)
    found = {p.path: p for p in exc.value.problems}
    assert "models.owner.fields.emial" in found
    assert (
        found["models.owner.fields.emial"].line == text.splitlines().index("      emial: Email") + 1
    )
    assert "models.contract.fields.end_date.format" in found
    assert "models.task" in found and "key_field" in found["models.task"].message
    assert all(p.file == str(bad) for p in exc.value.problems)


def test_invalid_yaml_reports_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncrm: sandbox\nmodels:\n  owner: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_mapping(bad)
    assert exc.value.problems[0].line is not None and "invalid YAML" in str(exc.value)


@pytest.mark.parametrize("text", ["0", "- a\n- b\n", "just text"])
def test_a_document_that_is_not_a_mapping_is_a_problem_not_a_traceback(text):
    with pytest.raises(ConfigError, match="not a mapping file"):
        mapping_from_text(text, "candidate.yaml")


def test_a_candidate_text_is_checked_against_app_yamls_stages_with_its_lines():
    text = (ROOT / "mappings" / "sandbox.yaml").read_text()
    text = text.replace(
        "      stage: StageName", "      stage: {field: StageName, map: {Open: Open}}"
    )
    policy = RenewalPolicy()
    with pytest.raises(ConfigError) as caught:
        mapping_from_text(text, "candidate.yaml", expect_crm="sandbox", policy=policy)
    (problem, *_) = caught.value.problems
    assert problem.file == "candidate.yaml" and problem.path.endswith("stage.map")
    assert (
        problem.line
        == text.splitlines().index("      stage: {field: StageName, map: {Open: Open}}") + 1
    )


def test_a_mapping_file_read_again_unchanged_is_not_parsed_again_and_an_edit_is_seen(tmp_path):
    path = tmp_path / "sandbox.yaml"
    text = (ROOT / "mappings" / "sandbox.yaml").read_text()
    path.write_text(text)
    first = load_mapping(path, expect_crm="sandbox")
    assert load_mapping(path, expect_crm="sandbox") is first  # a worker's next task
    path.write_text(text.replace("crm: sandbox", "crm: hubspot", 1))  # same size, same second
    with pytest.raises(ConfigError, match="hubspot"):
        load_mapping(path, expect_crm="sandbox")
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read file"):
        load_mapping(path, expect_crm="sandbox")
