"""Which connection a webhook belongs to: HubSpot events by their `portalId`, Salesforce
outbound messages by their `OrganizationId`. Pure: connections in, a connection (or None: not
ours, refused) out.

- HubSpot: the connection whose external id is the portal (a HubSpot connection's is its
  portal id; the default connection's is `hubspot.portal_id`). The default connection, when it
  names no portal (`hubspot.portal_id` null) and is not a Salesforce one, takes every portal
  no other connection claims: app.yaml alone behaves as before connections existed.
- Salesforce: the default connection takes its configured org (SALESFORCE_ORG_ID or
  `webhooks.salesforce_org_id`, else its own org id when it was connected by OAuth); a
  Salesforce connection takes its org id. Org ids compare on their 15-character form."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crm_renewals.connector.connections import DEFAULT, Connection
from crm_renewals.webhooks import soap


def default_portal(conn: Connection, configured: str | None) -> str | None:
    """The portal the default connection names: its own (OAuth) or hubspot.portal_id."""
    if conn.crm == "hubspot" and conn.external_id:
        return str(conn.external_id)
    return configured


def hubspot_owner(
    conns: Sequence[Connection], portal: str | None, configured_portal: str | None
) -> Connection | None:
    """The connection HubSpot portal `portal` belongs to (None: unknown, refuse it)."""
    default = next((c for c in conns if c.name == DEFAULT), None)
    if portal is not None:
        if default is not None and default_portal(default, configured_portal) == portal:
            return default
        for conn in conns:
            if conn.name != DEFAULT and conn.crm == "hubspot" and conn.external_id == portal:
                return conn
    if (
        default is not None
        and default.crm != "salesforce"
        and default_portal(default, configured_portal) is None
    ):
        return default
    return None


def portal_of(event: dict) -> str | None:
    """An event's portalId as text (None when it has none or it is not a plain id)."""
    value = event.get("portalId")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return text if text.isdigit() and len(text) <= 20 else None


def salesforce_orgs(conns: Iterable[Connection], configured_org: str | None) -> list[tuple]:
    """(connection, org id) of every connection that takes outbound messages."""
    out = []
    for conn in conns:
        if conn.name == DEFAULT:
            org = configured_org or (conn.external_id if conn.crm == "salesforce" else None)
        else:
            org = conn.external_id if conn.crm == "salesforce" else None
        if org:
            out.append((conn, org))
    return out


def salesforce_owner(
    orgs: Sequence[tuple[Connection, str]], organization_id: str
) -> Connection | None:
    for conn, org in orgs:
        if soap.same_org(organization_id, org):
            return conn
    return None
