"""Use cases: gather -> plan -> apply -> record. Entry points (CLI, jobs, webhooks) call these."""

from connector.services.context import Context
from connector.services.sync import SyncReport, explain, retry_dead_letters, sync

__all__ = ["Context", "SyncReport", "explain", "retry_dead_letters", "sync"]
