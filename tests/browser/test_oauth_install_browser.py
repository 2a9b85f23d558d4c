"""Issue 19, done when: from the console, a new user connects the fake HubSpot portal and the
fake Salesforce org by OAuth, and both sync.

A real `renewals serve` on loopback, headless Chromium, the two CRMs' fakes on loopback (the
HubSpot portal with its public app's install page and token endpoint; Salesforce's login server
with PKCE). The admin signs in, clicks Connect HubSpot and Connect Salesforce on the Connections
page, approves on each CRM's page (the fakes approve as a user clicking Allow does) and lands
back on the console, connected. Then each connection syncs its own book: the HubSpot one against
the fake portal, the Salesforce one against FakeOrg (behind `responses`, accepting exactly the
tokens the login server issued), each run in its own state, and the default sandbox connection
untouched."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import timedelta

import pytest
import responses
import yaml

from crm_renewals.connector.secretbox import new_key
from tests.browser.conftest import add_admin, serve_env, serving, signed_in_page
from tests.conftest import AS_OF, ROOT, cli_for, write_config
from tests.contract.test_sync_contract import SalesforceBook
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port
from tests.fakes import hubspot_oauth, salesforce_oauth
from tests.fakes.hubspot_server import FakeHubSpot
from tests.fakes.salesforce_oauth import FakeSalesforceLogin
from tests.fakes.salesforce_org import FakeOrg
from tests.hubspot.conftest import HubBook

HUB, SF = "acme-hub", "acme-sf"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """app.yaml (the sandbox demo as `default`), both CRMs' fakes, a console admin, and
    `renewals serve` with the apps' credentials in its environment."""
    folder = tmp_path_factory.mktemp("oauth-install")
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    portal = FakeHubSpot("pat-the-private-app-token", search_per_second=0)
    portal.start()
    portal.define_connector_properties()
    portal.oauth.register(f"{site}/oauth/hubspot/callback")
    login = FakeSalesforceLogin(callbacks=(f"{site}/oauth/salesforce/callback",))
    login.start()
    config = write_config(
        folder,
        hubspot={"base_url": portal.url},
        oauth={
            "redirect_base_url": site,
            "hubspot_authorize_url": f"{portal.url}/oauth/authorize",
            "salesforce_login_url": login.url,
        },
    )
    own = folder / "connections"
    own.mkdir()
    (own / f"{HUB}.yaml").write_text(
        yaml.safe_dump(
            {
                "mapping": str(ROOT / "mappings" / "hubspot.yaml"),
                "renewals": {
                    "initial_stage": "appointmentscheduled",
                    "closed_won_stages": ["closedwon"],
                    "closed_lost_stages": ["closedlost"],
                },
            }
        )
    )
    (own / f"{SF}.yaml").write_text(
        yaml.safe_dump({"mapping": str(ROOT / "mappings" / "salesforce.yaml")})
    )
    env = serve_env(
        folder,
        RENEWALS_ENCRYPTION_KEY=new_key(),
        HUBSPOT_APP_CLIENT_ID=hubspot_oauth.CLIENT_ID,
        HUBSPOT_APP_CLIENT_SECRET=hubspot_oauth.CLIENT_SECRET,
        SALESFORCE_APP_CONSUMER_KEY=salesforce_oauth.CLIENT_ID,
        SALESFORCE_APP_CONSUMER_SECRET=salesforce_oauth.CLIENT_SECRET,
    )
    cli = [*renewals_cli(), "--config", str(config)]
    subprocess.run([*cli, "demo", "--as-of", AS_OF.isoformat()], check=True, capture_output=True,
                   env=env)  # fmt: skip
    add_admin(cli, env)
    try:
        with serving(cli, env, folder, port) as site:
            yield {"site": site, "config": config, "portal": portal, "login": login, "env": env}
    finally:
        portal.stop()
        login.stop()


@pytest.fixture(scope="module")
def admin_page(browser, deployment):
    with signed_in_page(browser, deployment["site"]) as watched:
        yield watched


def connect(page, crm: str, name: str) -> str:
    """Connections > Connect <crm> under `name`; the CRM's page approves; back on the console."""
    page.goto("/admin/connections")
    page.fill(f"#connect-{crm} input[name=connection]", name)
    with page.expect_navigation(url=re.compile(r".*/admin/connections\?connected=")):
        page.click(f"#connect-{crm} button[type=submit]")
    return page.inner_text("main")


@pytest.fixture(scope="module")
def connected(admin_page, deployment):
    page = admin_page.page
    hub_text = connect(page, "hubspot", HUB)
    sf_text = connect(page, "salesforce", SF)
    return hub_text, sf_text


def test_an_admin_connects_the_portal_and_the_org_from_the_console(
    connected, admin_page, deployment, monkeypatch
):
    hub_text, sf_text = connected
    assert f"Connected {HUB}" in hub_text and deployment["portal"].oauth.portal in hub_text
    assert f"Connected {SF}" in sf_text and salesforce_oauth.ORG_ID in sf_text
    admin_page.clean()
    for name, value in deployment["env"].items():
        monkeypatch.setenv(name, value)
    cli = cli_for(deployment["config"])
    listed = json.loads(cli("connections", "list", "--json").output)["connections"]
    found = {c["name"]: (c["crm"], c["auth"], c["status"], c["external_id"]) for c in listed}
    assert found == {
        "default": ("sandbox", "env", "connected", None),
        HUB: ("hubspot", "oauth", "connected", deployment["portal"].oauth.portal),
        SF: ("salesforce", "oauth", "connected", salesforce_oauth.ORG_ID),
    }
    calls = deployment["login"].calls  # the code exchanged once (with PKCE), the org confirmed
    assert (calls["token:authorization_code"], calls["identity"]) == (1, 1)


def test_both_connections_sync_and_keep_their_state_apart(
    connected, deployment, monkeypatch, tmp_path
):
    for name, value in deployment["env"].items():
        monkeypatch.setenv(name, value)
    cli = cli_for(deployment["config"])
    default_runs = json.loads(cli("runs", "--json").output)

    hub = HubBook(deployment["portal"])
    deal = hub.contract(hub.company("Acme"), AS_OF + timedelta(days=100))
    synced = json.loads(
        cli("--connection", HUB, "sync", "--as-of", AS_OF.isoformat(), "--json").output
    )
    assert (synced["status"], synced["created"]) == ("ok", 1), synced
    assert deployment["portal"].find("deals", "renewal_contract_id", deal) is not None

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")  # the login server and the portal, on loopback
        org = FakeOrg(rsps, sessions=deployment["login"].live)
        book = SalesforceBook(org)
        contract = book.contract(
            book.account("Globex", book.user("Sam Rep")), AS_OF + timedelta(days=90)
        )
        result = cli("sync", "--connection", SF, "--as-of", AS_OF.isoformat(), "--json")
        synced = json.loads(result.output)
        assert (synced["status"], synced["created"]) == ("ok", 1), synced
        renewals = [o for o in org.all("Opportunity") if o.get("Renewal_Contract__c")]
        assert [o["Renewal_Contract__c"] for o in renewals] == [contract], org.all("Opportunity")

        # the org's session ends: the next run renews it through the stored refresh token
        login = deployment["login"]
        login.expire_access_tokens()
        book.contract(book.account("Initech", book.user("Ann Rep")), AS_OF + timedelta(days=95))
        again = json.loads(
            cli("sync", "--connection", SF, "--as-of", AS_OF.isoformat(), "--json").output
        )
        assert (again["status"], again["created"]) == ("ok", 1), again
        assert login.calls["token:refresh_token"] == 1
        # the org revokes the app: the next refresh is refused, the connection needs reconnecting
        login.revoke_refresh_tokens()
        login.expire_access_tokens()
        stopped = cli("sync", "--connection", SF, "--as-of", AS_OF.isoformat())
        assert stopped.exit_code == 2 and "needs reconnecting" in stopped.output

    hub_runs = json.loads(cli("--connection", HUB, "runs", "--json").output)
    sf_runs = json.loads(cli("--connection", SF, "runs", "--json").output)
    assert [r["id"] for r in hub_runs] == [1]  # each its own database
    assert [(r["id"], r["status"]) for r in sf_runs] == [(3, "failed"), (2, "ok"), (1, "ok")]
    assert json.loads(cli("runs", "--json").output) == default_runs  # the demo's, untouched
    shown = json.loads(cli("connections", "show", SF, "--json").output)
    assert (shown["status"], shown["last_run"]["status"]) == ("needs_reconnect", "failed")
    assert "tokens" not in json.dumps(shown)


def test_disconnect_from_the_console_revokes_at_the_crm_and_reconnect_restores(
    connected, admin_page, deployment, monkeypatch
):
    page = admin_page.page
    portal = deployment["portal"]
    page.goto("/admin/connections")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click(f"#disconnect-{HUB}")
    assert portal.oauth.revoked, "the refresh token was not revoked at HubSpot"
    for name, value in deployment["env"].items():
        monkeypatch.setenv(name, value)
    cli = cli_for(deployment["config"])
    shown = json.loads(cli("connections", "show", HUB, "--json").output)
    assert shown["status"] == "disconnected"
    refused = cli("--connection", HUB, "sync", "--as-of", AS_OF.isoformat())
    assert refused.exit_code == 2 and "is disconnected" in refused.output
    with page.expect_navigation(url=re.compile(r".*/admin/connections\?connected=")):
        page.click(f"#reconnect-{HUB}")
    shown = json.loads(cli("connections", "show", HUB, "--json").output)
    assert shown["status"] == "connected" and shown["external_id"] == portal.oauth.portal
    admin_page.clean()
