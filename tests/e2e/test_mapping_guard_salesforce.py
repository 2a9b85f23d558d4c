"""The mapping guard against the Salesforce fake: a `stage` value map without "Closed Lost"
stops `renewals sync` before it sends a single write to the org."""

from __future__ import annotations

import json
from datetime import timedelta

import responses

from tests.conftest import AS_OF, ROOT, cli_for
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import FakeOrg

STAGE_MAP = (
    '      stage: {field: StageName, map: {Prospecting: Prospecting, "Closed Won": "Closed Won"}}\n'
)


def writes_to(org: FakeOrg) -> int:
    """Calls that change the org: reads are GETs, and Composite calls of queries only."""
    reads = sum(
        all(sub["method"] == "GET" for sub in request["compositeRequest"])
        for request in org.composite.requests
    )
    return sum(method != "GET" and "login" not in path for method, path in org.calls) - reads


def test_renewals_closed_lost_in_the_org_stop_a_sync_with_an_incomplete_stage_map(
    tmp_path, monkeypatch
):
    text = (ROOT / "mappings" / "salesforce.yaml").read_text()
    assert "      stage: StageName\n" in text
    broken = tmp_path / "BROKEN.yaml"
    broken.write_text(text.replace("      stage: StageName\n", STAGE_MAP))
    good = cli_for(salesforce_config(tmp_path, monkeypatch))
    (tmp_path / "b").mkdir()
    bad = cli_for(
        salesforce_config(
            tmp_path / "b", monkeypatch, mapping=broken, data_dir=str(tmp_path / "data")
        )
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        org = FakeOrg(rsps)
        book = SalesforceBook(org)
        account = book.account("Acme")
        for n in range(8):
            book.contract(account, AS_OF + timedelta(days=100), number=f"{n:05d}")
        first = good("sync", "--as-of", AS_OF.isoformat(), "--json")
        assert first.exit_code == 0 and json.loads(first.stdout)["created"] == 8
        for renewal in book.opportunities():  # the reps lose them all
            org.edit("Opportunity", renewal["Id"], {"StageName": "Closed Lost"})
        preview = json.loads(
            bad("sync", "--dry-run", "--as-of", AS_OF.isoformat(), "--json").stdout
        )
        assert preview["map_failures"][0]["count"] == 8 and preview["guard"]
        sent = writes_to(org)
        result = bad("sync", "--as-of", (AS_OF + timedelta(days=1)).isoformat(), "--json")
        assert result.exit_code == 2
        data = json.loads(result.stdout)
        assert data["status"] == "stopped"
        assert data["error"].startswith("stopped before writing: 8 of ")
        assert "renewal_opportunity.stage: value 'Closed Lost' has no mapping (8)" in data["error"]
        assert writes_to(org) == sent  # not one write reached the org
        assert all(o["StageName"] == "Closed Lost" for o in book.opportunities())
        runs = json.loads(good("runs", "--json").stdout)
        assert [r["status"] for r in runs] == ["stopped", "ok"]


def test_mappings_preview_names_the_wrong_field_and_the_stage_map_from_the_orgs_describe(
    tmp_path, monkeypatch
):
    """The issue's scenario as `mappings preview` sees it on the Salesforce fake: the candidate
    is checked against describe (the org has no Amount_Total__c; StageName has Closed Lost)."""
    text = (ROOT / "mappings" / "salesforce.yaml").read_text()
    amount = "      amount: {field: Amount, type: number, computed: true}\n"
    wrong = "      amount: {field: Amount_Total__c, type: number, computed: true}\n"
    candidate = tmp_path / "CANDIDATE.yaml"
    candidate.write_text(text.replace(amount, wrong).replace("      stage: StageName\n", STAGE_MAP))
    good = cli_for(salesforce_config(tmp_path, monkeypatch))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        org = FakeOrg(rsps)
        book = SalesforceBook(org)
        book.contract(book.account("Acme"), AS_OF + timedelta(days=100), number="00001")
        assert good("sync", "--as-of", AS_OF.isoformat()).exit_code == 0
        sent = writes_to(org)
        result = good("mappings", "preview", str(candidate), "--as-of", AS_OF.isoformat(), "--json")
        assert writes_to(org) == sent  # a preview writes nothing
    assert result.exit_code == 1
    names = {p["name"] for p in json.loads(result.stdout)["schema_problems"]}
    assert "field Opportunity.Amount_Total__c (renewal_opportunity.amount)" in names
    assert any("StageName" in n and "Closed Lost" in n for n in names)
