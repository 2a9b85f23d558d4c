"""Which OAuth client speaks for which CRM: HubSpot's here, Salesforce's (connector/oauth/
salesforce.py) loaded only when a Salesforce connection needs it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConfigError, ConnectorError, Problem
from crm_renewals.connector.oauth.grants import Provider

#: the CRMs that install by OAuth
OAUTH_CRMS = ("hubspot", "salesforce")
SALESFORCE_MODULE = "crm_renewals.connector.oauth.salesforce"


class UnknownCrm(ConnectorError):
    """A CRM that does not install by OAuth (the sandbox, a typo in a URL)."""


def provider(base: AppConfig, crm: str, env: Mapping[str, str]) -> Provider:
    """The OAuth client of `crm` for the deployment `base` (app credentials from `env`)."""
    if crm == "hubspot":
        from crm_renewals.connector.oauth.hubspot import HubSpotOAuth

        return HubSpotOAuth(base, env)
    if crm == "salesforce":
        try:
            module = importlib.import_module(SALESFORCE_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name != SALESFORCE_MODULE:
                raise
            raise ConfigError(
                [Problem("crm", "Salesforce OAuth is not available in this version", "app.yaml")]
            ) from None
        return module.SalesforceOAuth(base, env)
    raise UnknownCrm(f"{crm!r} does not connect by OAuth (one of: {', '.join(OAUTH_CRMS)})")
