"""A Salesforce login server on loopback and this deployment's OAuth client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.oauth.salesforce import KEY_ENV, SECRET_ENV, SalesforceOAuth
from tests.fakes.salesforce_oauth import CLIENT_ID, CLIENT_SECRET, FakeSalesforceLogin

APP_ENV = {KEY_ENV: CLIENT_ID, SECRET_ENV: CLIENT_SECRET}


class Clock:
    """The login server's time, moved by hand."""

    def __init__(self, start: float = 1_795_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def login(clock: Clock) -> Iterator[FakeSalesforceLogin]:
    with FakeSalesforceLogin(clock=clock) as fake:
        yield fake


def client_for(login: FakeSalesforceLogin, env=APP_ENV, **oauth) -> SalesforceOAuth:
    base = AppConfig(crm="salesforce", oauth={"salesforce_login_url": login.url, **oauth})
    return SalesforceOAuth(base, env)


@pytest.fixture
def client(login: FakeSalesforceLogin) -> SalesforceOAuth:
    return client_for(login)
