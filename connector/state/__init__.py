"""The state store: a package of repositories, each the one owner of its table(s), with typed
rows, and a unit of work (`with store.begin() as uow:`) for writes that commit together.

    schema        every table, and the migrations (schema_version, ordered steps)
    database      which URLs can be used; the engine; how repositories reach it
    store         StateStore (the entry) and UnitOfWork
    mirror        mirror and cursors: the sync's input
    ledger        what the connector wrote to the CRM
    runs, dead_letters, signals, history (health and segments)
    users, audit  console users and failed sign-ins; who changed or triggered what
    browse        read-only joins the console pages through (latest health, contract labels)
    versions      the mapping files and app.yaml files runs used (config_versions)
    deliveries, inbox   the webhook tables; jobs: scheduled job runs; runlock: one run at a time
    notices       the alerts sent, by episode (connector/services/alerts.py)
"""

from crm_renewals.connector.state.audit import AuditEntry
from crm_renewals.connector.state.database import (
    create_schema,
    database_failure,
    database_name,
    now,
    sqlite_path,
    url_problem,
)
from crm_renewals.connector.state.dead_letters import DeadLetter, Letter
from crm_renewals.connector.state.deliveries import Delivery, InboxBusy
from crm_renewals.connector.state.history import HealthRecord
from crm_renewals.connector.state.inbox import DEAD, DONE, IGNORED, PENDING, DueEvent, InboxRow
from crm_renewals.connector.state.jobs import JobRun
from crm_renewals.connector.state.ledger import LedgerRow
from crm_renewals.connector.state.mirror import MirrorRow
from crm_renewals.connector.state.notices import Notice
from crm_renewals.connector.state.runs import Run
from crm_renewals.connector.state.schema import SCHEMA_VERSION
from crm_renewals.connector.state.store import StateStore, UnitOfWork
from crm_renewals.connector.state.users import User
from crm_renewals.connector.state.versions import Version

__all__ = [
    "AuditEntry",
    "User",
    "DEAD",
    "DONE",
    "IGNORED",
    "PENDING",
    "SCHEMA_VERSION",
    "DeadLetter",
    "Delivery",
    "DueEvent",
    "HealthRecord",
    "InboxBusy",
    "InboxRow",
    "JobRun",
    "LedgerRow",
    "Letter",
    "MirrorRow",
    "Notice",
    "Run",
    "StateStore",
    "UnitOfWork",
    "Version",
    "create_schema",
    "database_failure",
    "database_name",
    "now",
    "sqlite_path",
    "url_problem",
]
