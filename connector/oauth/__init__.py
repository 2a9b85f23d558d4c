"""Installing as a CRM app: OAuth for HubSpot (public app) and Salesforce (connected app,
web-server flow with PKCE), tokens sealed at rest (connector.secretbox), refreshed before they
expire under a lock, revoked on disconnect."""

from __future__ import annotations

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.state import StateStore


def revoke_quietly(base: AppConfig, registry: StateStore, name: str) -> bool:
    """Revoke connection `name`'s OAuth tokens at its CRM and forget them; a CRM that cannot
    be reached is logged, never in the way of removing. True if a token was revoked."""
    row = registry.connections.get(name)
    if row is None or row.tokens is None:
        return False
    raise NotImplementedError("OAuth revocation arrives with the OAuth install (issue 19)")
