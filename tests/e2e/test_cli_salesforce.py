"""`renewals doctor`, `mappings validate --online` and `setup salesforce` against a fake org."""

from __future__ import annotations

import json

import pytest
import responses

from tests.conftest import cli_for
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import FakeOrg


@pytest.fixture
def org_cli(tmp_path, monkeypatch):
    config = salesforce_config(tmp_path, monkeypatch)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeOrg(rsps), cli_for(config)


def test_doctor_passes_on_a_ready_org_and_says_what_to_fix_otherwise(org_cli):
    org, cli = org_cli
    ok = cli("doctor")
    assert ok.exit_code == 0, ok.output
    assert "API version 59.0" in ok.output and "All" in ok.output
    org.schema["Opportunity"].remove("Renewal_Key__c")
    org.api_used = org.api_limit - 10
    bad = cli("doctor", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    failing = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert "daily API requests" in failing
    missing = failing["field Opportunity.Renewal_Key__c (renewal_opportunity.key)"]
    assert missing["fix"]


def test_online_mapping_check_reports_wrong_types_and_picklists(org_cli):
    org, cli = org_cli
    org.schema["Opportunity"].remove("Type")
    org.schema["Contract"].append("EndDate")  # still there
    result = cli("mappings", "validate", "--online")
    assert result.exit_code == 1
    assert "Opportunity.Type" in result.output and "does not exist" in result.output
    assert "picklist Opportunity.Type has 'Renewal'" in result.output


def test_setup_lists_missing_fields_and_creates_them_with_apply(org_cli):
    org, cli = org_cli
    org.schema["OpportunityLineItem"].remove("Renewal_Line_Key__c")
    listed = cli("setup", "salesforce")
    assert listed.exit_code == 1 and "Renewal_Line_Key__c: missing" in listed.output
    assert org.created_fields == []
    applied = cli("setup", "salesforce", "--apply")
    assert applied.exit_code == 0, applied.output
    (created,) = org.created_fields
    assert created["FullName"] == "OpportunityLineItem.Renewal_Line_Key__c"
    assert created["Metadata"]["externalId"] and created["Metadata"]["unique"]
    assert cli("setup", "salesforce").exit_code == 0
