"""Installing as a CRM app: OAuth for HubSpot (public app) and Salesforce (connected app,
web-server flow with PKCE), tokens sealed at rest (connector.secretbox), refreshed before they
expire under a lock, revoked on disconnect.

Parts: `grants` (what every CRM's client hands back), `hubspot` (and `salesforce`) the
clients, `providers` which is whose, `flows` the install, `tokens` the access token of a
running connection. Here: revoking, disconnecting and re-sealing under a new key."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from crm_renewals.connector import connections
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DISCONNECTED, Connection, ConnectionRow
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.oauth.grants import Grant
from crm_renewals.connector.oauth.providers import provider
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.state import StateStore

log = logging.getLogger(__name__)


class DisconnectRefused(ConnectorError):
    """A connection that cannot be disconnected (its credentials are not ours to revoke)."""


def revoke_quietly(
    base: AppConfig, registry: StateStore, name: str, env: Mapping[str, str] | None = None
) -> bool:
    """Revoke connection `name`'s OAuth tokens at its CRM and forget them; a CRM that cannot
    be reached is logged, never in the way of removing. True if a token was revoked."""
    row = registry.connections.get(name)
    if row is None or row.tokens is None:
        return False
    env = os.environ if env is None else env
    try:
        grant = Grant.from_json(SecretBox(env).open(row.tokens))
        provider(_config_of(base, row), row.crm, env).revoke(grant)
    except Exception as exc:  # noqa: BLE001 - revoking is a courtesy: never in the way
        # the type and our own message only: a vendor's text could quote what was sent
        what = str(exc) if isinstance(exc, ConnectorError) else "unexpected failure"
        log.warning("connection %s: tokens not revoked at %s: %s", name, row.crm, what)
        return False
    log.info("connection %s: tokens revoked at %s", name, row.crm)
    return True


def _config_of(base: AppConfig, row: ConnectionRow) -> AppConfig:
    """The settings the connection's CRM client reads (its own file's hubspot/salesforce
    sections over app.yaml's), app.yaml's when they cannot be read."""
    try:
        return connections.configuration(base, connections.of_row(row))
    except ConnectorError:
        return base


def disconnect(
    base: AppConfig,
    registry: StateStore,
    name: str,
    actor: str,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """Revoke connection `name`'s tokens at its CRM (quietly), forget them, mark it
    disconnected (its runs are refused until it is connected again), in the audit log."""
    conn = connections.choose(base, registry, name)
    row = registry.connections.get(conn.name)
    if row is None or row.auth != "oauth":
        raise DisconnectRefused(
            f"connection {conn.name} signs in with credentials from the environment, not by "
            "OAuth: nothing to disconnect (remove those credentials, or the connection)"
        )
    revoked = revoke_quietly(base, registry, conn.name, env)
    saved = registry.connections.save(
        row.replace(
            status=DISCONNECTED,
            status_reason=f"disconnected by {actor}",
            tokens=None,
            token_expires_at=None,
        )
    )
    detail = {"crm": row.crm, "external_id": row.external_id, "revoked": revoked}
    registry.audit.record(actor, "connection.disconnect", conn.name, detail)
    return connections.of_row(saved)


def rotate_keys(registry: StateStore, env: Mapping[str, str] | None = None) -> list[str]:
    """Every connection's tokens sealed again under the first key of RENEWALS_ENCRYPTION_KEY
    (each under its row's lock: a refresh at the same time is not lost); the names done."""
    box = SecretBox(os.environ if env is None else env)
    done = []
    for listed in registry.connections.list():
        if not listed.tokens:
            continue
        with registry.connections.locked(listed.name) as (row, conn):
            if row is None or not row.tokens:
                continue
            registry.connections.store_locked(conn, row.replace(tokens=box.rotate(row.tokens)))
        done.append(listed.name)
    return done
