"""CRM connections: one deployment serving many CRM orgs and portals.

A connection is one CRM org or portal with its own credentials, settings and state. app.yaml
alone is the connection named `default` (credentials from the environment, state in
`state.url`), exactly as before connections existed. Every other connection is a row of the
`connections` table in the default connection's state database (OAuth tokens sealed), with:

- settings: app.yaml, with the sections of `connections/<name>.yaml` (next to app.yaml, if
  present) laid over it: its own mapping, renewal policy, playbook, scorecard, schedule...;
- state: a database of its own, `<data_dir>/connections/<name>/state.db` on SQLite, or the
  schema `<schema>_<name>` (default `renewals_<name>`) of the same PostgreSQL database.

`configuration(base, name)` is the AppConfig of a connection: everything that takes an
AppConfig (bootstrap, the services, the jobs) then works on that connection alone."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import make_url

from crm_renewals.connector.config import AppConfig, validated
from crm_renewals.connector.errors import ConfigError, Problem
from crm_renewals.connector.state import StateStore, sqlite_path
from crm_renewals.connector.state.connections import (
    CONNECTED,
    DISCONNECTED,
    NEEDS_RECONNECT,
    PENDING,
    REMOVED,
    ConnectionRow,
)
from crm_renewals.connector.state.database import now
from crm_renewals.connector.yamlsource import load_yaml

DEFAULT = "default"
#: the environment variable that names the connection when --connection is not given
CONNECTION_ENV = "RENEWALS_CONNECTION"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: the sections a connection's own file may set (the rest are the deployment's)
SECTIONS = (
    "mapping",
    "sync",
    "sandbox",
    "salesforce",
    "hubspot",
    "renewals",
    "scorecard",
    "upsell",
    "playbook",
    "schedule",
    "notify",
    "segments",
)
__all__ = [
    "CONNECTED",
    "DEFAULT",
    "DISCONNECTED",
    "NEEDS_RECONNECT",
    "PENDING",
    "REMOVED",
    "Connection",
    "ConnectionRow",
    "configuration",
    "connections",
]


@dataclass(frozen=True)
class Connection:
    """A connection as people see it: the default one (app.yaml) or a row of the table."""

    name: str
    crm: str
    auth: str  # env: credentials from the environment; oauth: stored tokens
    status: str
    external_id: str | None = None
    instance_url: str | None = None
    status_reason: str | None = None
    scopes: str | None = None
    connected_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    token_expires_at: datetime | None = None

    @property
    def runnable(self) -> bool:
        """Whether its runs may start (connected; not pending, removed or needing reconnect)."""
        return self.status == CONNECTED

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "crm": self.crm,
            "auth": self.auth,
            "status": self.status,
            "external_id": self.external_id,
            "instance_url": self.instance_url,
            "status_reason": self.status_reason,
            "scopes": self.scopes,
            "connected_by": self.connected_by,
        }
        for key in ("created_at", "updated_at", "token_expires_at"):
            moment = getattr(self, key)
            out[key] = moment.isoformat() if moment else None
        return out


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise ConfigError(
            [
                Problem(
                    "--connection",
                    f"{name!r} is not a connection name: 1 to 40 lowercase letters, digits, "
                    "'-' or '_', starting with a letter or digit",
                    "command line",
                )
            ]
        )
    return name


def of_row(row: ConnectionRow) -> Connection:
    return Connection(
        name=row.name,
        crm=row.crm,
        auth=row.auth,
        status=row.status,
        external_id=row.external_id,
        instance_url=row.instance_url,
        status_reason=row.status_reason,
        scopes=row.scopes,
        connected_by=row.connected_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        token_expires_at=row.token_expires_at,
    )


def default_connection(base: AppConfig, row: ConnectionRow | None = None) -> Connection:
    """app.yaml's connection; a row named `default` (OAuth tokens, or removed) refines it."""
    if row is not None:
        return of_row(row)
    external = None
    if base.crm == "salesforce":
        external = os.environ.get("SALESFORCE_ORG_ID") or base.webhooks.salesforce_org_id
    elif base.crm == "hubspot":
        external = base.hubspot.portal_id
    return Connection(DEFAULT, base.crm, "env", CONNECTED, external_id=external)


def connections(base: AppConfig, store: StateStore, *, removed: bool = False) -> list[Connection]:
    """The deployment's connections: `default` first (unless removed), then by name."""
    rows = {r.name: r for r in store.connections.list()}
    found = [default_connection(base, rows.pop(DEFAULT, None))]
    found += [of_row(r) for r in rows.values()]
    return [c for c in found if removed or c.status != REMOVED]


def choose(base: AppConfig, store: StateStore | None, name: str | None) -> Connection:
    """The connection `name` (else $RENEWALS_CONNECTION; else the only one, or `default`)."""
    name = name or os.environ.get(CONNECTION_ENV, "").strip() or None
    if store is None:  # no state database yet: app.yaml is all there is
        if name not in (None, DEFAULT):
            raise _unknown(check_name(name), [DEFAULT])
        return default_connection(base)
    found = connections(base, store)
    if name is not None:
        check_name(name)
        for conn in found:
            if conn.name == name:
                return conn
        raise _unknown(name, [c.name for c in found])
    if len(found) == 1:
        return found[0]
    for conn in found:
        if conn.name == DEFAULT:
            return conn
    if not found:
        raise ConfigError(
            [
                Problem(
                    "--connection",
                    "this deployment has no connections: add one (renewals connections add "
                    "NAME --crm CRM, or Connections > Connect in the console)",
                    "command line",
                )
            ]
        )
    raise ConfigError(
        [
            Problem(
                "--connection",
                f"this deployment has {len(found)} connections: name one with --connection "
                f"NAME ({', '.join(c.name for c in found) or 'none'})",
                "command line",
            )
        ]
    )


def _unknown(name: str, have: Iterable[str]) -> ConfigError:
    names = ", ".join(have) or "none"
    return ConfigError(
        [
            Problem(
                "--connection",
                f"no connection named {name!r} (connections: {names}; renewals connections list)",
                "command line",
            )
        ]
    )


def overrides_path(base: AppConfig, name: str) -> Path:
    return base.path(Path("connections") / f"{name}.yaml")


def configuration(base: AppConfig, conn: Connection) -> AppConfig:
    """The AppConfig of connection `conn`: app.yaml itself for `default`; for another, app.yaml
    with its own file's sections over it, its own data folder and its own state database."""
    if conn.name == DEFAULT:
        return base.model_copy(update={"connection": DEFAULT, "connection_auth": conn.auth})
    data = copy.deepcopy(load_yaml(base.source).data) if base.source else {}
    data = data if isinstance(data, dict) else {}
    src = None
    path = overrides_path(base, conn.name)
    if path.exists():
        src = load_yaml(path)
        if not isinstance(src.data, dict):
            raise ConfigError([src.problem((), "the top level must be a mapping of sections")])
        wrong = [k for k in src.data if k not in SECTIONS]
        if wrong:
            raise ConfigError(
                [
                    src.problem(
                        (k,),
                        f"a connection's file cannot set {k!r}; it may set: {', '.join(SECTIONS)}",
                    )
                    for k in wrong
                ]
            )
        data = _merged(data, src.data)
    data_dir = base.data_path / "connections" / conn.name
    data.update(crm=conn.crm, data_dir=str(data_dir))
    if conn.crm != base.crm and "mapping" not in (src.data if src else {}):
        data.pop("mapping", None)  # app.yaml's mapping is for its own CRM
    if conn.crm != "salesforce":
        renewals = data.get("renewals")
        if isinstance(renewals, dict) and renewals.get("renewal_mode") == "cpq":
            renewals.pop("renewal_mode")
    data.pop("state", None)
    extra = {"base_dir": base.base_dir, "source": base.source}
    cfg = validated(data, src or load_yaml(base.source), extra)
    url, schema = state_url(base, conn.name)
    return cfg.model_copy(
        update={
            "state": cfg.state.model_copy(update={"url": url}),
            "state_url_from_env": False,
            "connection": conn.name,
            "connection_auth": conn.auth,
            "registry_url": base.state_url,
            "state_schema": schema,
        }
    )


def _merged(under: dict, over: dict) -> dict:
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def state_url(base: AppConfig, name: str) -> tuple[str, str | None]:
    """The state database URL of connection `name` (not `default`), and its PostgreSQL schema:
    a SQLite file under its data folder, or a schema of the same PostgreSQL database named
    after the deployment's (`<schema>_<name>`, `renewals_<name>` on the default path)."""
    url = base.state_url
    if sqlite_path(url) is not None or make_url(url).get_backend_name() == "sqlite":
        return f"sqlite:///{base.data_path / 'connections' / name / 'state.db'}", None
    parsed = make_url(url)
    options = parsed.query.get("options") or ""
    options = options if isinstance(options, str) else " ".join(options)
    found = re.search(r"-c\s*search_path=([A-Za-z0-9_]+)", unquote(options))
    schema = f"{found.group(1) if found else 'renewals'}_{name.replace('-', '_')}"
    rest = re.sub(r"-c\s*search_path=\S+", "", unquote(options)).strip()
    options = f"{rest} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(False), schema


def new_row(name: str, crm: str, auth: str, status: str, actor: str) -> ConnectionRow:
    at = now()
    return ConnectionRow(
        name=name,
        crm=crm,
        auth=auth,
        external_id=None,
        instance_url=None,
        status=status,
        status_reason=None,
        tokens=None,
        token_expires_at=None,
        scopes=None,
        connected_by=actor,
        created_at=at,
        updated_at=at,
    )
