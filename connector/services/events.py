"""Webhook events: each names a CRM record; a batch of them becomes one `sync_records` run.
Failed events retry with backoff and, after the configured attempts, go to the dead letters."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_renewals.connector.config_sections import WebhookSettings
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.inbox import SIGNALS, Inbox
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.refresh import sync_records
from crm_renewals.connector.state import DONE, IGNORED

log = logging.getLogger(__name__)


#: what a signals event asks for: its account re-scored (and its contracts planned), unread
RESCORE = "rescore"


@dataclass
class BatchOutcome:
    """What one pass over the inbox did, by source: events processed, ignored, failed, dead."""

    processed: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    run_ids: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(getattr(self, w).values()) for w in ("processed", "ignored", "failed"))


def kinds_for_object(mapping: Mapping, obj: str | None) -> list[str]:
    """The read kinds a CRM object feeds: `Contract` -> contract; HubSpot's singular `deal`
    -> contract and renewal_opportunity (both are deals; the adapter knows which is which)."""
    if not obj:
        return []
    name = obj.lower()
    names = {name, name[:-1] + "ies" if name.endswith("y") else name + "s"}
    return [
        k for k in READ_KINDS if k in mapping.models and mapping.models[k].object.lower() in names
    ]


def backoff_seconds(settings: WebhookSettings, attempts: int) -> float:
    """Wait before attempt `attempts + 1`: doubling from retry_backoff_seconds, capped."""
    delay = settings.retry_backoff_seconds * 2 ** max(0, attempts - 1)
    return min(delay, settings.retry_max_backoff_seconds)


def process_inbox(
    ctx: Context,
    inbox: Inbox,
    settings: WebhookSettings,
    sync_fn: Callable[..., Any] = sync_records,
) -> BatchOutcome:
    """Process the due events once (the caller holds the run lock)."""
    out = BatchOutcome()
    rows = inbox.due(settings.worker_batch_size)
    ignored, wanted = [], []
    kinds_of: dict[str | None, list[str]] = {}
    for row in rows:
        obj = row.object
        if row.source == SIGNALS:  # the signals are the change: nothing to read again
            kinds = [RESCORE] if row.record_id else []
        else:
            if obj not in kinds_of:
                kinds_of[obj] = kinds_for_object(ctx.mapping, obj)
            kinds = kinds_of[obj] if row.record_id else []
        (wanted if kinds else ignored).append((row, kinds))
    inbox.settle([row.id for row, _ in ignored], IGNORED)
    # signals stored from now on are new work, not part of this batch's (already read)
    inbox.claim([row.id for row, kinds in wanted if kinds == [RESCORE]])
    for row, _ in ignored:
        out.ignored[row.source] += 1
    if not wanted:
        return out
    try:
        _run(ctx, inbox, wanted, out, sync_fn)
    except CrmError as exc:  # the CRM is down or refusing: the whole batch waits
        _failed(ctx, inbox, settings, wanted, exc, out)
    except Exception:  # noqa: BLE001 - one bad event must not hold back the others
        log.exception("webhook batch failed; retrying its events one by one")
        for one in wanted:
            try:
                _run(ctx, inbox, [one], out, sync_fn)
            except Exception as exc:  # noqa: BLE001
                _failed(ctx, inbox, settings, [one], exc, out)
    return out


def _run(ctx, inbox: Inbox, wanted, out: BatchOutcome, sync_fn) -> None:
    refs: dict[str, set[str]] = defaultdict(set)
    for row, kinds in wanted:
        for kind in kinds:
            refs[kind].add(row.record_id)
    accounts = refs.pop(RESCORE, None)
    report = sync_fn(ctx, dict(refs), rescore=accounts) if accounts else sync_fn(ctx, dict(refs))
    inbox.settle([row.id for row, _ in wanted], DONE, report.run_id)
    out.run_ids.append(report.run_id)
    for row, _ in wanted:
        out.processed[row.source] += 1


def _failed(ctx, inbox: Inbox, settings: WebhookSettings, wanted, exc, out: BatchOutcome) -> None:
    error = f"{type(exc).__name__}: {exc}"
    letters = []
    for row, kinds in wanted:
        attempts = row.attempts + 1
        out.failed[row.source] += 1
        if attempts < settings.retry_attempts:
            inbox.retry_later(row, error, backoff_seconds(settings, attempts))
            continue
        inbox.give_up(row, error)
        out.dead[row.source] += 1
        letters.append(
            {
                "stage": "webhook",
                "kind": "account" if kinds[0] == RESCORE else kinds[0],
                "record_id": row.record_id,
                "contract_id": None,
                "field": None,
                "value": None,
                "error_code": "WEBHOOK_GAVE_UP",
                "message": f"{row.source} event {row.event_id} ({row.object} "
                f"{row.record_id}): gave up after {attempts} attempts: {error}",
            }
        )
    ctx.store.dead_letters.add(letters, None)
