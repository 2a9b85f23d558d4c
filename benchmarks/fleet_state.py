"""The fleet's deployment: app.yaml, the registry of connections and a state schema per
connection, all in one PostgreSQL database (the shape issue 20 targets), under a prefix of the
run's own (dropped afterwards). app.yaml is a HubSpot deployment's; a Salesforce connection
(crm salesforce, its org's grant: instance_url the fake's HTTPS URL) has a file of its own
(connections/<name>.yaml) naming the Salesforce mapping and Salesforce's stage names.

A connection's schema is created as `StateStore` would (meta.create_all plus the schema
version), but for all of them on one database connection with the schema translated: opening
1,000 stores one by one costs an engine and a migration check each."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import create_engine, insert, text

from crm_renewals.connector.connections import new_row, state_url
from crm_renewals.connector.oauth.grants import Grant
from crm_renewals.connector.secretbox import KEY_ENV, SecretBox, new_key
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.connections import CONNECTED, REMOVED
from crm_renewals.connector.state.schema import SCHEMA_VERSION, meta, schema_version

ROOT = Path(__file__).resolve().parent.parent
BATCH = 20
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def app_yaml(folder: Path, fake_url: str, queue: str, visibility_s: int, limit: int) -> Path:
    """The fleet's app.yaml: HubSpot (private apps), its fake's URL, the workers' settings."""
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data.update(crm="hubspot", data_dir=str(folder / "data"))
    data["mapping"] = str(ROOT / "mappings" / "hubspot.yaml")
    data["hubspot"].update(base_url=fake_url)
    data["hubspot"]["limits"] = {
        "app_type": "private",
        "requests_per_10s": limit,
        "search_per_second": 4,
    }
    data["renewals"].update(
        initial_stage="appointmentscheduled",
        closed_won_stages=["closedwon"],
        closed_lost_stages=["closedlost"],
    )
    data["notify"]["targets"] = []
    data["workers"] = {
        "engine": "celery",
        "queue": queue,
        "visibility_timeout_seconds": visibility_s,
        "busy_retry_seconds": 2,
    }
    path = folder / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


#: a Salesforce connection's renewals section over app.yaml's (HubSpot's stage ids there)
SALESFORCE_RENEWALS = {
    "initial_stage": "Prospecting",
    "closed_won_stages": ["Closed Won"],
    "closed_lost_stages": ["Closed Lost"],
}


def connection_files(folder: Path, tenants) -> None:
    """connections/<name>.yaml of each Salesforce connection, beside app.yaml: the repo's
    Salesforce mapping (as app.yaml names the HubSpot one) and Salesforce's stage names."""
    (folder / "connections").mkdir(exist_ok=True)
    own = {
        "mapping": str(ROOT / "mappings" / "salesforce.yaml"),
        "renewals": SALESFORCE_RENEWALS,
    }
    for t in tenants:
        if t.crm == "salesforce":
            (folder / "connections" / f"{t.name}.yaml").write_text(yaml.safe_dump(own))


def grant_of(t, salesforce_url: str) -> Grant:
    """The tenant's OAuth grant as an install would have stored it: the portal's token, or the
    org's access token and instance URL (no refresh token: the fake's tokens do not expire)."""
    if t.crm == "salesforce":
        return Grant(
            access_token=t.token,
            refresh_token=None,
            expires_at=None,
            external_id=t.external_id,
            instance_url=salesforce_url,
            scopes=("api", "refresh_token"),
        )
    return Grant(
        access_token=t.token,
        refresh_token=None,
        expires_at=None,
        external_id=t.external_id,
        scopes=("crm.objects.deals.read",),
    )


class FleetState:
    """The registry schema `<prefix>` and a schema per connection `<prefix>_<name>`."""

    def __init__(self, server: str = POSTGRES):
        self.server = server
        self.prefix = f"fleet_{secrets.token_hex(4)}"
        self.engine = create_engine(server.replace("postgresql://", "postgresql+psycopg://"))
        self.schemas: list[str] = [self.prefix]

    @property
    def url(self) -> str:
        """The registry's (the default connection's) state URL."""
        return f"{self.server}?options=-csearch_path%3D{self.prefix}"

    def create(self, base, tenants, env: dict[str, str], salesforce_url: str) -> None:
        """The registry (migrated by StateStore), a connection row per tenant with its grant
        sealed under a new RENEWALS_ENCRYPTION_KEY (set in `env`), and their schemas."""
        with self.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.prefix}"'))
        env.setdefault(KEY_ENV, new_key())
        box = SecretBox(env)
        registry = StateStore(self.url)
        try:
            for i in range(0, len(tenants), BATCH):  # a transaction's locks are bounded
                with self.engine.begin() as conn:
                    for t in tenants[i : i + BATCH]:
                        self._schema(conn, state_url(base, t.name)[1])
            # app.yaml's own connection (credentials from the environment) is not part of the fleet
            registry.connections.save(new_row("default", "hubspot", "env", REMOVED, "fleet"))
            for t in tenants:
                grant = grant_of(t, salesforce_url)
                row = new_row(t.name, t.crm, "oauth", CONNECTED, "fleet benchmark")
                registry.connections.save(
                    row.replace(
                        external_id=grant.external_id,
                        instance_url=grant.instance_url,
                        tokens=box.seal(grant.to_json()),
                        token_expires_at=None,
                        scopes=" ".join(grant.scopes),
                        created_at=datetime.now(UTC),
                    )
                )
        finally:
            registry.close()

    def _schema(self, conn, schema: str) -> None:
        self.schemas.append(schema)
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        translated = conn.execution_options(schema_translate_map={None: schema})
        meta.create_all(translated, checkfirst=False)
        translated.execute(insert(schema_version).values(version=SCHEMA_VERSION))

    def job_runs(self, names: list[str]) -> list[tuple]:
        """Every connection's job_runs rows: (connection, job, scheduled_at, started_at,
        finished_at, status, runner)."""
        out = []
        with self.engine.connect() as conn:
            for name in names:
                schema = f"{self.prefix}_{name.replace('-', '_')}"
                columns = "job, scheduled_at, started_at, finished_at, status, runner"
                rows = conn.execute(text(f'SELECT {columns} FROM "{schema}".job_runs'))
                out += [(name, *r) for r in rows]
        return out

    def inbox(self, names: list[str]) -> dict[str, int]:
        """Webhook events in every connection's inbox, by status (done, pending, dead...)."""
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for name in names:
                schema = f"{self.prefix}_{name.replace('-', '_')}"
                q = f'SELECT status, count(*) FROM "{schema}".inbox GROUP BY status'
                for status, n in conn.execute(text(q)):
                    out[status] = out.get(status, 0) + n
        return out

    def drop(self) -> None:
        for i in range(0, len(self.schemas), BATCH):
            with self.engine.begin() as conn:
                for schema in self.schemas[i : i + BATCH]:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.engine.dispose()
