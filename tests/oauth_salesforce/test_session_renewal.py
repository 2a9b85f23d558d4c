"""An OAuth connection's Salesforce session: renewed once through its grant when the org answers
401 INVALID_SESSION_ID (an expired access token), then the call retried; a refusal after that
is fatal. The org (FakeOrg, `responses`) accepts exactly the live tokens the login server on
loopback issued."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect_oauth
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.errors import FatalCrmError
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.oauth.grants import Grant, GrantRefused, ReconnectNeeded
from crm_renewals.connector.oauth.salesforce import SalesforceOAuth
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF, ROOT
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_oauth import FakeSalesforceLogin
from tests.fakes.salesforce_org import FakeOrg
from tests.oauth_salesforce.test_salesforce_oauth import installed


@dataclass
class Grants:
    """What the connection's token source does for the adapter (connector/oauth/tokens.py):
    the grant kept, refreshed when Salesforce refused `stale`; a refused refresh token means
    reconnecting."""

    client: SalesforceOAuth
    grant: Grant
    renewed: list[str] = field(default_factory=list)

    def renew(self, stale: str) -> str:
        self.renewed.append(stale)
        try:
            self.grant = self.client.refresh(self.grant)
        except GrantRefused as exc:
            raise ReconnectNeeded(
                f"Salesforce refused the refresh token ({exc}); connect the org again",
                system="salesforce",
                code=exc.error,
            ) from None
        return self.grant.access_token


@dataclass
class Setup:
    login: FakeSalesforceLogin
    org: FakeOrg
    grants: Grants
    crm: SalesforceCrm
    ctx: object
    book: SalesforceBook


@pytest.fixture
def setup(login, client, tmp_path, monkeypatch) -> Iterator[Setup]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")  # the login server on loopback
        org = FakeOrg(rsps, sessions=login.live)
        grants = Grants(client, installed(client, login))
        settings = SalesforceSettings()
        sf = connect_oauth(
            settings, grants.grant.instance_url, grants.grant.access_token, grants.renew
        )
        crm = SalesforceCrm(sf, load_mapping(ROOT / "mappings" / "salesforce.yaml"), settings)
        ctx = bootstrap.build(load_config(salesforce_config(tmp_path, monkeypatch)), crm=crm)
        ctx.sleep = lambda seconds: None
        try:
            yield Setup(login, org, grants, crm, ctx, SalesforceBook(org))
        finally:
            ctx.close()


def due_contracts(book: SalesforceBook, count: int) -> None:
    owner = book.user("Sam Rep")
    for i in range(count):
        account = book.account(f"Account {i}", owner=owner)
        book.contract(
            account, AS_OF.replace(year=2027, month=3, day=1), lines=(("SEAT", 10, 100.0),)
        )


def test_an_expired_access_token_is_renewed_once_and_the_sync_goes_on(setup: Setup):
    due_contracts(setup.book, 3)
    first = setup.grants.grant.access_token
    setup.login.expire_access_tokens()  # the org's session timeout passed
    report = sync(setup.ctx, as_of=AS_OF)
    assert (report.status, report.created) == ("ok", 3)
    assert setup.grants.renewed == [first]  # once, with the token Salesforce refused
    assert setup.login.calls["token:refresh_token"] == 1
    assert len(setup.book.opportunities()) == 3
    # every REST request is counted, the refused one too; the login server's are not
    assert setup.crm.api_calls == len(setup.org.calls)
    assert setup.org.api_used == len(setup.org.calls) - 1


def test_a_token_still_live_is_not_renewed(setup: Setup):
    due_contracts(setup.book, 1)
    assert sync(setup.ctx, as_of=AS_OF).created == 1
    assert setup.grants.renewed == [] and setup.login.token_calls == 1  # the install's


def test_a_session_refused_after_renewal_stops_the_run_fatally(setup: Setup):
    due_contracts(setup.book, 2)
    setup.org.sessions = lambda token: False  # e.g. sessions locked to another IP
    with pytest.raises(FatalCrmError, match="refused the renewed access token too") as stop:
        sync(setup.ctx, as_of=AS_OF)
    assert stop.value.code == "INVALID_SESSION_ID" and not isinstance(stop.value, ReconnectNeeded)
    assert len(setup.grants.renewed) == 1 and setup.login.calls["token:refresh_token"] == 1
    assert len(setup.org.calls) == 2  # the call, and its one retry after renewing
    assert setup.ctx.store.runs.list()[0].status != "ok"
    assert setup.book.opportunities() == []


def test_a_revoked_grant_stops_the_run_for_reconnecting_without_retrying(setup: Setup):
    due_contracts(setup.book, 1)
    setup.login.revoke_refresh_tokens()  # the app's access revoked in Setup
    with pytest.raises(ReconnectNeeded, match="expired access/refresh token"):
        sync(setup.ctx, as_of=AS_OF)
    assert len(setup.grants.renewed) == 1 and setup.login.calls["token:refresh_token"] == 1
    assert len(setup.org.calls) == 1


def test_renewal_is_per_call_a_later_expiry_is_renewed_again(setup: Setup):
    due_contracts(setup.book, 1)
    setup.login.expire_access_tokens()
    (owners,) = list(setup.crm.read_changes("owner", None))
    setup.login.expire_access_tokens()
    (again,) = list(setup.crm.read_changes("owner", None))
    assert [r.id for r in owners] == [r.id for r in again] != []
    assert len(setup.grants.renewed) == 2 and setup.login.calls["token:refresh_token"] == 2


def test_the_renewed_token_goes_on_every_later_request(setup: Setup):
    setup.login.expire_access_tokens()
    list(setup.crm.read_changes("owner", None))
    fresh = setup.grants.grant.access_token
    assert setup.crm.transport.sf.session_id == fresh
    assert setup.crm.transport.sf.headers["Authorization"] == f"Bearer {fresh}"
    assert fresh not in repr(setup.crm.transport.sf)
