"""Use cases: gather -> plan -> apply -> record. Entry points (CLI, jobs, webhooks) call these."""

from connector.services.context import Context
from connector.services.explanation import explain
from connector.services.sync import retry_dead_letters, sync
from connector.services.sync_report import SyncReport

__all__ = ["Context", "SyncReport", "explain", "retry_dead_letters", "sync"]
