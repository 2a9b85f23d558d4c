"""The state database's schema: every table (connector/state/migrations.py brings a database
of an earlier version up to this one).

Alembic or equivalent: this is the equivalent. Existing databases carry our own
`schema_version` table (a single row) and the databases of earlier releases (fixtures v1 to
v6) must keep migrating, so the steps stay plain functions run in order by `migrate`."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 9
meta = MetaData()

schema_version = Table("schema_version", meta, Column("version", Integer, nullable=False))
mirror = Table(
    "mirror",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("id", String(80), primary_key=True),
    Column("parent_id", String(80), index=True),
    Column("modified_at", DateTime(timezone=True)),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("raw", JSON, nullable=False),
    Column("data", JSON),
    Column("error", Text),
    #: the contract and the account the record belongs to (state/refs.py): an incremental
    #: run loads the records of the accounts it plans by these, not the whole mirror
    Column("contract_id", String(80), index=True),
    Column("account_id", String(80), index=True),
    #: the run that last saved it: a record read again as the mirror holds it changes nothing
    #: only if that run completed (a killed run saved what it read, then planned part of it)
    Column("run_id", Integer),
)
cursors = Table(
    "cursors",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("modified_at", DateTime(timezone=True), nullable=False),
    Column("record_id", String(80), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    #: when the run that moved it last read this kind (its start): records stamped before
    #: this less the overlap were all visible then, so the next read need not go back further
    Column("read_at", DateTime(timezone=True)),
)
ledger = Table(
    "ledger",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("contract_id", String(80), index=True),
    Column("crm_id", String(80)),
    Column("fields", JSON, nullable=False),
    Column("run_id", Integer),
    Column("written_at", DateTime(timezone=True), nullable=False),
)
runs = Table(
    "runs",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("as_of", String(10)),
    Column("counts", JSON),
    Column("api_calls", Integer, default=0),
    Column("duration_s", Float),
    Column("error", Text),
    #: the sha256 of the mapping file and of the app.yaml the run used (config_versions)
    Column("mapping_hash", String(64)),
    Column("config_hash", String(64)),
    #: while it runs: its stage and counts so far (the console's progress), as the sync says
    Column("progress", JSON),
)
#: Every distinct mapping file and app.yaml a run used, stored once by its content's sha256
#: (state/versions.py): `renewals mappings history` and `mappings diff` read them back.
config_versions = Table(
    "config_versions",
    meta,
    Column("kind", String(10), primary_key=True),  # mapping | config
    Column("hash", String(64), primary_key=True),
    Column("content", Text, nullable=False),
    Column("path", Text, nullable=False),  # where it was read from when first used
    Column("first_used_at", DateTime(timezone=True), nullable=False),
)
dead_letters = Table(
    "dead_letters",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("stage", String(20), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("contract_id", String(80)),
    Column("field", String(80)),
    Column("value", Text),
    Column("error_code", String(80)),
    Column("message", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    #: a refused write: what was sent ({"fields", "parent_key"}), so that it can be sent again
    #: when nothing plans it any more (an at-risk task of an earlier day), and whether the
    #: refusal was transient (sent again by every sync) or not (held until `deadletters retry`)
    Column("payload", JSON),
    Column("retriable", Boolean, nullable=False, default=False),
    #: how an admin closed it, if one did: {"action": "discarded", "by", "reason"}; a refused
    #: write discarded is not sent again (connector/services/discards.py)
    Column("resolution", JSON(none_as_null=True)),
)
signals = Table(
    "signals",
    meta,
    Column("account", String(80), primary_key=True),
    Column("measure", String(80), primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("value", Float, nullable=False),
    Column("source", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
)
#: The incremental planning index (state/plan_index.py): per account, the first day its plans
#: may change with no change to its records (a renewal window opening, a playbook step due, a
#: health trend settling); NULL: not until its records change.
plan_due = Table(
    "plan_due",
    meta,
    Column("account_id", String(80), primary_key=True),
    Column("due_on", String(10), index=True),
)
#: What planning keeps between runs (state/plan_index.py): the book-wide upsell facts a full
#: run computed, when the index was last built, how far signals have been planned.
plan_meta = Table(
    "plan_meta",
    meta,
    Column("name", String(40), primary_key=True),
    Column("value", JSON, nullable=False),
)
#: Webhook deliveries as they arrived (the raw signed body), stored on the request path before
#: the acknowledgement; the inbox worker expands each into inbox events and deletes it.
deliveries = Table(
    "deliveries",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(20), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
#: Webhook inbox: one row per accepted event, unique by (source, event id) so copies and
#: redeliveries are stored once; kept for the dedupe window after processing (state/inbox.py).
inbox = Table(
    "inbox",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(20), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("object", String(80)),
    Column("record_id", String(80)),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending | done | ignored | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True)),
    Column("run_id", Integer),
    Column("last_error", Text),
    UniqueConstraint("source", "event_id", name="inbox_event"),
    Index("inbox_due", "status", "id"),  # the oldest pending first, without a sort
)
#: Scheduled job runs: one row per (job, scheduled slot), so two schedulers on one database
#: run each slot once (connector/state/jobs.py).
job_runs = Table(
    "job_runs",
    meta,
    Column("job", String(60), primary_key=True),
    Column("scheduled_at", DateTime(timezone=True), primary_key=True),
    Column("runner", String(120), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),  # running | ok | partial | failed | busy
    Column("detail", JSON),
    Column("error", Text),
    #: the claim of a running slot holds until then, renewed while the job runs: the slot of a
    #: scheduler that died is taken over by another once it lapses
    Column("lease_until", DateTime(timezone=True)),
)
health_history = Table(
    "health_history",
    meta,
    Column("account", String(80), primary_key=True),
    Column("as_of", String(10), primary_key=True),
    Column("score", Integer),
    Column("grade", String(10)),
    Column("measures_used", Integer, nullable=False),
    Column("low_confidence", Boolean, nullable=False),
    Column("trend", String(20)),
    Column("drivers", JSON, nullable=False),
    Column("values", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
segment_history = Table(
    "segment_history",
    meta,
    Column("account", String(80), primary_key=True),
    Column("period_start", String(10), primary_key=True),
    Column("segment", String(40), nullable=False),
    Column("facts", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
#: Admin console users: the password as a salted KDF hash (connector/services/users.py).
users = Table(
    "users",
    meta,
    Column("email", String(254), primary_key=True),
    Column("role", String(10), nullable=False),  # admin | viewer
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_login_at", DateTime(timezone=True)),
)
#: Failed sign-ins, kept for the throttle window (by email and by client address).
login_failures = Table(
    "login_failures",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, index=True),
    Column("address", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
)
#: Who changed or triggered what, from the console or the CLI, newest last.
audit_log = Table(
    "audit_log",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(254), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", Text, nullable=False, default=""),
    Column("detail", JSON),
)
#: Alerts sent (connector/services/alerts.py), one row per episode key: a failed run
#: (`run:<id>`), an open episode (`dead_letters`, `inbox_wait`: closed_at set once it ended,
#: reopened by the next crossing), a day's digest (`red_digest:<day>`). The key is claimed
#: before sending, so one process of many sends each alert once.
notices = Table(
    "notices",
    meta,
    Column("key", String(120), primary_key=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    #: what was said (counts, run id) and how it went out: {"sent": [...], "failed": {...}}
    Column("detail", JSON),
)


#: The deployment's CRM connections (connector/connections.py), kept in the state database of
#: the `default` connection (app.yaml's): each other connection has a state database of its own.
connections = Table(
    "connections",
    meta,
    Column("name", String(40), primary_key=True),
    Column("crm", String(20), nullable=False),
    #: env: credentials from the environment (app.yaml's connection); oauth: stored tokens
    Column("auth", String(10), nullable=False),
    #: HubSpot portal (hub) id or Salesforce organization id: webhooks are routed by it
    Column("external_id", String(40), unique=True),
    Column("instance_url", Text),
    #: connected, pending (added, not yet authorised), needs_reconnect, removed
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    #: the OAuth tokens, encrypted (connector/secretbox.py): never stored in clear
    Column("tokens", Text),
    Column("token_expires_at", DateTime(timezone=True)),
    Column("scopes", Text),
    Column("connected_by", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
#: OAuth installs in flight: `state` (hashed) -> who started it, and the PKCE verifier
#: (encrypted); used once, lapsing after OAUTH_FLOW_MINUTES.
oauth_flows = Table(
    "oauth_flows",
    meta,
    Column("state_hash", String(64), primary_key=True),
    Column("crm", String(20), nullable=False),
    Column("connection", String(40)),
    #: the console session it belongs to (a hash of a per-session nonce)
    Column("session_hash", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("verifier", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
