"""Use cases: gather -> plan -> apply -> record. Entry points (CLI, jobs, webhooks) call these."""

from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.explanation import explain
from crm_renewals.connector.services.sync import retry_dead_letters, sync
from crm_renewals.connector.services.sync_report import SyncReport

__all__ = ["Context", "SyncReport", "explain", "retry_dead_letters", "sync"]
