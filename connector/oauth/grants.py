"""What every CRM's OAuth client (connector/oauth/hubspot.py, salesforce.py) hands back and
raises, and the protocol they share: the install flow, the routes and the token refresh use
them without knowing which CRM they talk to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from crm_renewals.connector.errors import ConnectorError, FatalCrmError


@dataclass(frozen=True)
class Grant:
    """An OAuth grant: what the token endpoint answered, read into our terms. Sealed whole
    (to_json) in the connections table; never logged."""

    access_token: str
    refresh_token: str | None
    #: when the access token expires (None: the CRM does not say; Salesforce)
    expires_at: datetime | None
    #: HubSpot portal (hub) id, Salesforce organization id
    external_id: str
    #: Salesforce: the org's instance URL (https://acme.my.salesforce.com)
    instance_url: str | None = None
    scopes: tuple[str, ...] = ()
    #: anything else the CRM gave worth keeping (Salesforce: the identity URL, user id)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat() if self.expires_at else None
        data["scopes"] = list(self.scopes)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Grant:
        data = json.loads(text)
        if data.get("expires_at"):
            data["expires_at"] = datetime.fromisoformat(data["expires_at"])
        data["scopes"] = tuple(data.get("scopes") or ())
        return cls(**data)

    def __repr__(self) -> str:  # tokens never reach a log through a repr
        return f"Grant(external_id={self.external_id!r}, expires_at={self.expires_at!r})"


class GrantRefused(ConnectorError):
    """The CRM's token endpoint refused (RFC 6749 `error`, e.g. invalid_grant: a code used
    twice or expired, a refresh token revoked or expired)."""

    def __init__(self, error: str, description: str = ""):
        self.error, self.description = error, description
        super().__init__(f"{error}: {description}" if description else error)


class ReconnectNeeded(FatalCrmError):
    """The connection's refresh token no longer works: it is marked needs_reconnect, its runs
    stop, and an admin must connect it again (console: Connections > Reconnect)."""


class Provider(Protocol):
    """A CRM's OAuth client. `post`/`get` failures that are the network's become
    RetriableCrmError; a refusal by the token endpoint becomes GrantRefused."""

    crm: str
    #: Salesforce: the web-server flow with PKCE (S256)
    uses_pkce: bool

    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str | None) -> str:
        """Where the admin's browser goes to approve the app."""
        ...

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> Grant:
        """The grant of an authorization code (plus whatever identifies the portal or org)."""
        ...

    def refresh(self, grant: Grant) -> Grant:
        """A new access token for `grant` (refresh token kept unless the CRM rotates it)."""
        ...

    def revoke(self, grant: Grant) -> None:
        """Revoke the grant's refresh token (and so its access tokens) at the CRM."""
        ...
