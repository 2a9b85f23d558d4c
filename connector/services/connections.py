"""The connections use cases the CLI (`renewals connections`) and the console share: list,
show, add and remove. Installing by OAuth (connector/oauth) creates and updates connections too."""

from __future__ import annotations

from dataclasses import dataclass

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import (
    CONNECTED,
    DEFAULT,
    PENDING,
    REMOVED,
    Connection,
    check_name,
)
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.state import StateStore

CRMS = ("hubspot", "salesforce", "sandbox")


class ConnectionRefused(ConnectorError):
    """A connection cannot be added or removed as asked (the message says why)."""


@dataclass(frozen=True)
class Described:
    """A connection with where its settings and state live, and its last run."""

    connection: Connection
    settings_file: str | None
    state: str
    last_run: dict | None
    install_path: str | None

    def to_json(self) -> dict:
        return {
            **self.connection.to_json(),
            "settings_file": self.settings_file,
            "state": self.state,
            "last_run": self.last_run,
            "install_path": self.install_path,
        }


def install_path(conn: Connection) -> str | None:
    """The route of `renewals serve` that connects it by OAuth (None: nothing to authorise)."""
    if conn.crm == "sandbox" or (conn.auth == "env" and conn.status == CONNECTED):
        return None
    return f"/oauth/{conn.crm}/install?connection={conn.name}"


def describe(base: AppConfig, registry: StateStore, name: str) -> Described:
    conn = connections.choose(base, registry, name)
    cfg = connections.configuration(base, conn)
    own = connections.overrides_path(base, conn.name)
    store = bootstrap.open_store(cfg)
    try:
        runs = store.runs.list(1)
    finally:
        store.close()
    last = None
    if runs:
        run = runs[0]
        last = {
            "id": run.id,
            "mode": run.mode,
            "status": run.status,
            "started_at": run.started_at.isoformat() if run.started_at else None,
        }
    return Described(
        conn,
        str(own) if own.exists() else None,
        store.name,
        last,
        install_path(conn),
    )


def add(base: AppConfig, registry: StateStore, name: str, crm: str, actor: str) -> Connection:
    """A new connection: a sandbox one is connected at once; a CRM one waits for its OAuth
    install (`install_path`)."""
    check_name(name)
    if crm not in CRMS:
        raise ConnectionRefused(f"unknown CRM {crm!r}: one of {', '.join(CRMS)}")
    existing = registry.connections.get(name)
    if name == DEFAULT and (existing is None or existing.status != REMOVED):
        raise ConnectionRefused(
            "`default` is app.yaml's own connection: it exists already (connect it by OAuth "
            "from the console, or with /oauth/<crm>/install?connection=default)"
        )
    if existing is not None and existing.status != REMOVED:
        raise ConnectionRefused(f"a connection named {name!r} exists already")
    if name == DEFAULT and crm != base.crm:
        raise ConnectionRefused(f"`default` is app.yaml's connection: its CRM is {base.crm}")
    if name == DEFAULT:  # back to app.yaml alone: its credentials from the environment
        registry.connections.delete(DEFAULT)
        return connections.default_connection(base)
    status = CONNECTED if crm == "sandbox" else PENDING
    auth = "env" if crm == "sandbox" else "oauth"
    row = connections.new_row(name, crm, auth, status, actor)
    registry.connections.save(row)
    conn = connections.of_row(row)
    cfg = connections.configuration(base, conn)  # its settings must load: said now, not later
    bootstrap.open_store(cfg).close()  # its state database, created (and migrated) now
    return conn


def remove(base: AppConfig, registry: StateStore, name: str, actor: str) -> Connection:
    """Forget a connection (its OAuth tokens revoked first). Its state database stays where it
    is: adding a connection of the same name again carries on from it. `default` is marked
    removed (app.yaml still names it): listed no more, its runs and webhooks refused. Audited
    in the registry (`connection.remove`)."""
    conn = connections.choose(base, registry, name)
    from crm_renewals.connector import oauth

    oauth.revoke_quietly(base, registry, conn.name)
    if conn.name == DEFAULT:
        row = registry.connections.get(DEFAULT) or connections.new_row(
            DEFAULT, base.crm, "env", REMOVED, actor
        )
        registry.connections.save(
            row.replace(status=REMOVED, tokens=None, status_reason=f"removed by {actor}")
        )
    else:
        registry.connections.delete(conn.name)
    registry.audit.record(actor, "connection.remove", conn.name, {"crm": conn.crm})
    return conn
