"""`renewals doctor`, `setup hubspot` and `mappings validate --online` against the fake portal."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from crm_renewals.connector.adapters.hubspot import TOKEN_ENV, HubSpotCrm
from crm_renewals.connector.cli import main
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.domain.policy import RenewalPolicy
from tests.fakes.hubspot_server import FakeHubSpot
from tests.hubspot.conftest import MAPPING, hubspot_config, settings


@pytest.fixture
def bare():
    """A portal without the connector's properties (before `setup hubspot --apply`)."""
    server = FakeHubSpot(search_per_second=0)
    server.start()
    yield server
    server.stop()


def cli(tmp_path, fake, monkeypatch, *args):
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    config = hubspot_config(tmp_path, fake)
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.output) if "--json" in args else result.output


def test_doctor_reports_token_objects_pipeline_and_limits(tmp_path, fake, monkeypatch):
    code, data = cli(tmp_path, fake, monkeypatch, "doctor", "--json")
    names = {c["name"]: c for c in data["checks"]}
    assert code == 0 and data["ok"]
    assert names["access token (HUBSPOT_ACCESS_TOKEN)"]["ok"]
    assert {"object deals", "object companies", "object line_items", "object tasks"} <= set(names)
    assert names["renewal pipeline default"]["detail"] == "4 stages"
    assert "100 requests per 10 s" in names["rate limits"]["detail"]


def test_doctor_names_the_token_setting_and_scopes_when_refused(tmp_path, fake, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    config = hubspot_config(tmp_path, fake)
    result = CliRunner().invoke(main, ["--config", str(config), "doctor", "--json"])
    data = json.loads(result.output)
    (bad,) = [c for c in data["checks"] if not c["ok"]]
    assert result.exit_code != 0 and "HUBSPOT_ACCESS_TOKEN" in bad["detail"]
    assert "crm.objects.deals.read/.write" in bad["fix"]


def test_doctor_flags_a_missing_scope(tmp_path, monkeypatch):
    fake = FakeHubSpot(search_per_second=0, scopes_denied={"line_items"})
    fake.start()
    fake.define_connector_properties()  # doctor checks the mapping too: only the scope is wrong
    try:
        code, data = cli(tmp_path, fake, monkeypatch, "doctor", "--json")
    finally:
        fake.stop()
    (bad,) = [c for c in data["checks"] if not c["ok"]]
    assert code != 0 and bad["name"] == "object line_items" and "scope" in bad["detail"]


def test_setup_reports_then_creates_the_properties_with_a_unique_renewal_key(
    tmp_path, bare, monkeypatch
):
    code, data = cli(tmp_path, bare, monkeypatch, "setup", "hubspot", "--json")
    missing = {c["name"] for c in data["checks"] if not c["ok"]}
    assert code != 0 and "property deals.renewal_key" in missing
    assert "renewal_key" not in bare.properties["deals"]  # a dry run changes nothing

    code, data = cli(tmp_path, bare, monkeypatch, "setup", "hubspot", "--apply", "--json")
    assert code == 0 and data["ok"]
    assert bare.properties["deals"]["renewal_key"]["hasUniqueValue"] is True
    assert bare.properties["line_items"]["renewal_line_key"]["hasUniqueValue"] is True
    assert bare.properties["deals"]["renewal_key"]["groupName"] == "renewals"
    assert bare.groups["deals"] == {"renewals"}

    code, data = cli(tmp_path, bare, monkeypatch, "setup", "hubspot", "--apply", "--json")
    assert code == 0 and all("exists" in c["detail"] for c in data["checks"])


def test_online_mapping_check_finds_missing_properties_and_a_key_that_is_not_unique(
    tmp_path, fake, monkeypatch
):
    code, data = cli(tmp_path, fake, monkeypatch, "mappings", "validate", "--online", "--json")
    assert code == 0, [c for c in data["checks"] if not c["ok"]]
    assert {"deals.renewal_key unique", "property deals.closedate"} <= {
        c["name"].removeprefix("property ") if "unique" in c["name"] else c["name"]
        for c in data["checks"]
    }
    fake.properties["deals"]["renewal_key"]["hasUniqueValue"] = False
    del fake.properties["line_items"]["hs_sku"]
    fake.properties["deals"]["amount"]["type"] = "string"
    code, data = cli(tmp_path, fake, monkeypatch, "mappings", "validate", "--online", "--json")
    bad = {c["name"]: c for c in data["checks"] if not c["ok"]}
    assert code != 0
    assert set(bad) == {
        "deals.renewal_key unique",
        "property line_items.hs_sku",
        "property deals.amount",
    }


def test_doctor_flags_a_tier_above_what_hubspot_allows(tmp_path, monkeypatch):
    fake = FakeHubSpot(search_per_second=0, burst=100)  # headers: X-HubSpot-RateLimit-Max 100
    fake.start()
    fake.define_connector_properties()
    try:
        monkeypatch.setenv(TOKEN_ENV, fake.token)
        config = hubspot_config(tmp_path, fake, hubspot={"limits": {"requests_per_10s": 190}})
        result = CliRunner().invoke(main, ["--config", str(config), "doctor", "--json"])
    finally:
        fake.stop()
    (bad,) = [c for c in json.loads(result.output)["checks"] if not c["ok"]]
    assert bad["name"] == "rate limits" and "HubSpot says 100" in bad["detail"]
    assert "requests_per_10s to 100" in bad["fix"]


def test_doctor_and_online_check_catch_a_wrong_property_and_a_stage_map_without_closed_lost(fake):
    """The issue's scenario on the fake portal: `amount` on a property the portal lacks, and a
    `stage` value map (pipeline stage ids -> app.yaml's stage names) without "Closed Lost"."""
    data = yaml.safe_load(MAPPING.read_text())
    fields = data["models"]["renewal_opportunity"]["fields"]
    fields["amount"] = {"field": "amount_total", "type": "number"}
    stages = {"appointmentscheduled": "Prospecting", "qualifiedtobuy": "Negotiation"}
    fields["stage"] = {"field": "dealstage", "map": {**stages, "closedwon": "Closed Won"}}
    crm = HubSpotCrm(
        Mapping.model_validate(data), settings(fake), fake.token, policy=RenewalPolicy()
    )
    try:
        online = {c.name: c for c in crm.check_mapping_online() if not c.ok}
        doctor = {c.name: c for c in crm.doctor() if not c.ok}
    finally:
        crm.close()
    assert doctor == online and set(online) == {
        "property deals.amount_total",
        "value map deals.dealstage (renewal_opportunity.stage)",
        "renewals.closed_lost_stages 'Closed Lost' in the value map of deals.dealstage",
    }
    assert "'closedlost'" in online["value map deals.dealstage (renewal_opportunity.stage)"].detail
    fix = online["renewals.closed_lost_stages 'Closed Lost' in the value map of deals.dealstage"]
    assert "models.renewal_opportunity.fields.stage.map" in fix.fix


def test_mappings_preview_checks_the_candidate_against_the_portals_properties(
    tmp_path, fake, monkeypatch
):
    """`mappings preview` on the fake portal names what doctor names: a property the portal
    lacks and a stage map without the pipeline's closed-lost stage."""
    data = yaml.safe_load(MAPPING.read_text())
    fields = data["models"]["renewal_opportunity"]["fields"]
    fields["amount"] = {"field": "amount_total", "type": "number"}
    stages = {"appointmentscheduled": "appointmentscheduled", "closedwon": "closedwon"}
    fields["stage"] = {"field": "dealstage", "map": stages}
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(data))
    code, out = cli(tmp_path, fake, monkeypatch, "mappings", "preview", str(candidate), "--json")
    names = {p["name"] for p in out["schema_problems"]}
    assert code == 1 and "property deals.amount_total" in names
    assert "value map deals.dealstage (renewal_opportunity.stage)" in names
