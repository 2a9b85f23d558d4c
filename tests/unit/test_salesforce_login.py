"""Salesforce login failures say what is wrong: the network, not the credentials or the key."""

from __future__ import annotations

import pytest
import requests
import responses
from click.testing import CliRunner

from crm_renewals.connector.adapters.salesforce import connect
from crm_renewals.connector.cli import main
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.errors import CrmError
from tests.fakes.harness import SALESFORCE_ENV, salesforce_config


@pytest.mark.parametrize(
    "domain, host", [("login", "login.salesforce.com"), ("acme.my", "acme.my.salesforce.com")]
)
def test_password_login_without_network_says_it_cannot_reach_salesforce(domain, host):
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            f"https://{host}/services/Soap/u/59.0",
            body=requests.ConnectionError("Failed to establish a new connection"),
        )
        with pytest.raises(CrmError, match=f"cannot reach Salesforce at {host}") as caught:
            connect(SalesforceSettings(auth="password", domain=domain), SALESFORCE_ENV)
    assert "JWT" not in str(caught.value)


def test_doctor_without_network_says_one_line_and_exits_2(tmp_path, monkeypatch):
    config = salesforce_config(tmp_path, monkeypatch)
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            "https://login.salesforce.com/services/Soap/u/59.0",
            body=requests.Timeout("connect timeout"),
        )
        result = CliRunner().invoke(
            main, ["--config", str(config), "doctor"], catch_exceptions=False
        )
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "cannot reach Salesforce at login.salesforce.com" in line
    assert "JWT" not in line
