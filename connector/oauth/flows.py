"""The OAuth install: `start` sends an admin to the CRM to approve the app, `finish` takes the
CRM's answer and creates or updates the connection.

Each flow is a random `state` (only its hash is stored, in oauth_flows) bound to the console
session that started it (a hash of a nonce the session keeps) and, for PKCE providers, a
sealed code_verifier. `finish` takes the flow once: a replayed callback, a state we never
issued, one from another browser session or one older than oauth.flow_minutes is refused
before any code is exchanged."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import CONNECTED, DEFAULT, REMOVED, Connection
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused
from crm_renewals.connector.oauth.providers import OAUTH_CRMS, provider
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.services import alerts
from crm_renewals.connector.state import StateStore, now
from crm_renewals.connector.state.connections import OAuthFlow

__all__ = ["FlowRefused", "callback_path", "finish", "provider", "start"]
log = logging.getLogger(__name__)


class FlowRefused(ConnectorError):
    """An install that cannot go on (the message says why, in a line an admin can act on)."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def callback_path(crm: str) -> str:
    return f"/oauth/{crm}/callback"


def redirect_uri(redirect_base: str, crm: str) -> str:
    """The URL registered with the CRM app, the same at start and at finish."""
    return redirect_base.rstrip("/") + callback_path(crm)


def pkce_pair() -> tuple[str, str]:
    """A code_verifier (RFC 7636: 43 to 128 unreserved characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def start(
    base: AppConfig,
    registry: StateStore,
    crm: str,
    connection_name: str | None,
    session_nonce: str,
    actor: str,
    redirect_base: str,
    env: Mapping[str, str] | None = None,
) -> str:
    """Begin an install of `crm` (for connection `connection_name`, else named at `finish`)
    by `actor`; the CRM's authorize URL the admin's browser is sent to."""
    env = _env(env)
    if crm not in OAUTH_CRMS:
        raise FlowRefused(f"{crm!r} does not connect by OAuth (one of: {', '.join(OAUTH_CRMS)})")
    if not session_nonce:
        raise FlowRefused("no console session: sign in and start again")
    if connection_name is not None:
        _check_target(base, registry, crm, connection_name)
    client = provider(base, crm, env)  # the app's credentials, checked before anyone leaves
    box = SecretBox(env)  # the tokens must be sealable when they come back: said now
    state = secrets.token_urlsafe(32)
    verifier = challenge = None
    if client.uses_pkce:
        verifier, challenge = pkce_pair()
    registry.oauth_flows.start(
        OAuthFlow(
            state_hash=digest(state),
            crm=crm,
            connection=connection_name,
            session_hash=digest(session_nonce),
            actor=actor,
            verifier=box.seal(verifier) if verifier else None,
            created_at=now(),
        )
    )
    return client.authorize_url(
        redirect_uri=redirect_uri(redirect_base, crm), state=state, code_challenge=challenge
    )


def _check_target(base: AppConfig, registry: StateStore, crm: str, name: str) -> None:
    connections.check_name(name)
    if name == DEFAULT and crm != base.crm:
        raise FlowRefused(f"`default` is app.yaml's connection: its CRM is {base.crm}, not {crm}")
    row = registry.connections.get(name)
    if row is not None and row.status != REMOVED and row.crm != crm:
        raise FlowRefused(f"connection {name!r} is a {row.crm} connection, not {crm}")


def finish(
    base: AppConfig,
    registry: StateStore,
    crm: str,
    state: str,
    code: str,
    session_nonce: str,
    redirect_base: str,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """The CRM sent the admin back with `code` for `state`: the code exchanged, the
    connection created or updated with the sealed tokens."""
    env = _env(env)
    flow = take(base, registry, crm, state, session_nonce)
    if not code:
        raise FlowRefused(f"{_crm(crm)} sent no authorization code: start again")
    client = provider(base, crm, env)
    box = SecretBox(env)
    verifier = box.open(flow.verifier) if flow.verifier else None
    try:
        grant = client.exchange(
            code=code, redirect_uri=redirect_uri(redirect_base, crm), code_verifier=verifier
        )
    except GrantRefused as exc:
        why = f"{_crm(crm)} refused the authorization code ({exc}): start again"
        raise FlowRefused(why) from None
    return connect(base, registry, crm, grant, flow, box)


def take(
    base: AppConfig, registry: StateStore, crm: str, state: str, session_nonce: str | None
) -> OAuthFlow:
    """The flow of `state`, taken (it cannot be used again); refused if unknown, used, lapsed,
    of another CRM or of another session."""
    lapse = timedelta(minutes=base.oauth.flow_minutes)
    flow = registry.oauth_flows.take(digest(state), lapse) if state else None
    if flow is None:
        raise FlowRefused(
            "this sign-in answer is unknown, used already or older than "
            f"{base.oauth.flow_minutes} minutes: start the connection again"
        )
    if flow.crm != crm:
        raise FlowRefused(f"this sign-in was started for {flow.crm}, not {crm}: start again")
    if not session_nonce or not secrets.compare_digest(flow.session_hash, digest(session_nonce)):
        raise FlowRefused(
            "this sign-in was started from another console session: start it again here"
        )
    return flow


def connect(
    base: AppConfig, registry: StateStore, crm: str, grant: Grant, flow: OAuthFlow, box: SecretBox
) -> Connection:
    """The connection `grant` belongs to, created or updated, connected."""
    owner = registry.connections.by_external_id(grant.external_id)
    name = flow.connection or (owner.name if owner else default_name(crm, grant.external_id))
    if name == DEFAULT:
        _check_default(base, crm, grant)
    if owner is not None and owner.name != name:
        if owner.status != REMOVED:
            raise FlowRefused(
                f"{_label(crm)} {grant.external_id} is connection {owner.name!r} already: "
                f"reconnect that one, or remove it first"
            )
        registry.connections.save(owner.replace(external_id=None))
    row = registry.connections.get(name)
    if row is not None and row.status != REMOVED and row.crm != crm:
        raise FlowRefused(f"connection {name!r} is a {row.crm} connection, not {crm}")
    if row is not None and row.external_id not in (None, grant.external_id):
        raise FlowRefused(
            f"connection {name!r} is {_label(crm)} {row.external_id}, but the approval was for "
            f"{grant.external_id}: sign in to {row.external_id}, or connect it as a new connection"
        )
    again = row is not None and row.status != REMOVED and row.external_id is not None
    row = (row or connections.new_row(name, crm, "oauth", CONNECTED, flow.actor)).replace(
        crm=crm,
        auth="oauth",
        external_id=grant.external_id,
        instance_url=grant.instance_url,
        status=CONNECTED,
        status_reason=None,
        tokens=box.seal(grant.to_json()),
        token_expires_at=grant.expires_at,
        scopes=" ".join(grant.scopes) or None,
        connected_by=flow.actor,
    )
    saved = registry.connections.save(row)
    conn = connections.of_row(saved)
    if name != DEFAULT:  # its settings must load and its state database exist: said now
        bootstrap.open_store(connections.configuration(base, conn)).close()
    action = "connection.reconnect" if again else "connection.connect"
    detail = {"crm": crm, "external_id": grant.external_id}
    registry.audit.record(flow.actor, action, name, detail)
    alerts.reconnected(registry, name)
    log.info("%s %s: %s %s by %s", action, name, crm, grant.external_id, flow.actor)
    return conn


def _check_default(base: AppConfig, crm: str, grant: Grant) -> None:
    if crm != base.crm:
        raise FlowRefused(f"`default` is app.yaml's connection: its CRM is {base.crm}, not {crm}")
    portal = base.hubspot.portal_id if crm == "hubspot" else None
    if portal and portal != grant.external_id:
        raise FlowRefused(
            f"app.yaml's hubspot.portal_id is {portal}, but the approval was for portal "
            f"{grant.external_id}: sign in to portal {portal}"
        )


def default_name(crm: str, external_id: str) -> str:
    """`<crm>-<portal or org id>`, lowercased to a connection name."""
    return re.sub(r"[^a-z0-9_-]", "-", f"{crm}-{external_id}".lower())[:40]


def _label(crm: str) -> str:
    return {"hubspot": "HubSpot portal", "salesforce": "Salesforce org"}.get(crm, crm)


def _crm(crm: str) -> str:
    return {"hubspot": "HubSpot", "salesforce": "Salesforce"}.get(crm, crm)


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env
