"""The job functions: context in, a JSON-able summary out (stored with the job run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services import alerts, sync
from crm_renewals.connector.services.context import Context

Job = Callable[[Context], dict[str, Any]]


def incremental_sync(ctx: Context) -> dict[str, Any]:
    """Changes since the cursors: what webhooks delivered, and what they did not."""
    return sync(ctx).to_json()


def daily_renewal_scan(ctx: Context) -> dict[str, Any]:
    """Contracts entering the lead window today: nothing changed in the CRM for them, but the
    sync plans every contract of the book against today's date and creates their renewals."""
    return sync(ctx).to_json()


def daily_playbook_health(ctx: Context) -> dict[str, Any]:
    """Playbook tasks whose time has come (created by the same planning as renewals)."""
    return sync(ctx).to_json()


def quarterly_qbr_tasks(ctx: Context) -> dict[str, Any]:
    """QBR tasks: planned from the playbook steps by the sync."""
    return sync(ctx).to_json()


def daily_reconciliation(ctx: Context) -> dict[str, Any]:
    """Re-read everything (catches what webhooks missed: lost events, deletes), then forget
    inbox events older than the dedupe window."""
    report = sync(ctx, full=True).to_json()
    report["inbox_purged"] = Inbox(ctx.store).purge(ctx.config.webhooks.dedupe_hours)
    return report


def red_digest(ctx: Context) -> dict[str, Any]:
    """The accounts turned red since the last digest (scheduled at notify.red_digest_at)."""
    return alerts.red_digest(ctx.config, ctx.store)


JOBS: dict[str, Job] = {
    "incremental_sync": incremental_sync,
    "daily_renewal_scan": daily_renewal_scan,
    "daily_playbook_health": daily_playbook_health,
    "quarterly_qbr_tasks": quarterly_qbr_tasks,
    "daily_reconciliation": daily_reconciliation,
    "red_digest": red_digest,
}
