"""The journey tasks we wrote, as a sync reads them back from the CRM: one place for the tests
of journey coverage to get them into the mirror (kind `task`, mapped like any other kind).

Until every sync reads tasks back, this puts them there itself: each journey task the ledger
says we created, completed when `done(key)` says so. Once syncs read tasks, this becomes "mark
them completed in the sandbox, then sync"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from crm_renewals.connector import bootstrap
from crm_renewals.connector.domain.models import Task, to_json, validate
from crm_renewals.connector.services.synced import forget


def read_back_journey_tasks(config: Path, done: Callable[[str], bool]) -> list[Task]:
    """Mirror every journey task written, completed where `done(key)`; returns them."""
    store = bootstrap.open_store(bootstrap.load(str(config)))
    try:
        rows, tasks = [], []
        for (kind, key), fields in store.ledger.load().items():
            if kind != "task" or ":journey:" not in key:
                continue
            status = "completed" if done(key) else "open"
            task = validate(Task, {**fields, "dedupe_key": key, "status": status})
            data = to_json(task)
            moment = datetime.now(UTC)
            rows.append(
                {
                    "kind": "task",
                    "id": key,
                    "parent_id": None,
                    "modified_at": moment,
                    "deleted": False,
                    "raw": data,
                    "data": data,
                    "error": None,
                }
            )
            tasks.append(task)
        store.mirror.save(rows)
    finally:
        store.close()
    forget()  # a sync would have started a run: readers load the book again
    return tasks
