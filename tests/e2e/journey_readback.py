"""The journey tasks we wrote, completed in the sandbox CRM as reps would complete them, then
read back by a sync: how the tests of journey coverage get their completed touchpoints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.domain.journey_report import MARK
from crm_renewals.connector.domain.models import Task
from crm_renewals.connector.services.gather import load_book
from tests.conftest import cli_for


def read_back_journey_tasks(config: Path, done: Callable[[str], bool], as_of: date) -> list[Task]:
    """Complete each journey task in the sandbox whose key `done(key)` names (keys in order),
    sync as of `as_of` (which reads them back), and return the journey tasks as read."""
    ctx = bootstrap.build(load_config(config))
    try:
        for task in sorted(ctx.crm.all("Task"), key=lambda t: t["Dedupe_Key__c"] or ""):
            key = task["Dedupe_Key__c"] or ""
            if MARK in key and done(key):
                ctx.crm.edit("Task", task["Id"], {"Status": "Completed"})
    finally:
        ctx.close()
    synced = cli_for(config)("sync", "--as-of", as_of.isoformat())
    assert synced.exit_code in (0, 1), synced.output  # 1: the demo book's broken records
    ctx = bootstrap.build(load_config(config))
    try:
        tasks = load_book(ctx.store).tasks.values()
    finally:
        ctx.close()
    return sorted((t for t in tasks if MARK in t.dedupe_key), key=lambda t: t.dedupe_key)
