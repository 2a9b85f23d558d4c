"""`renewals sync` on the seeded sandbox book reads the tasks it wrote back; a task a rep
completed or moved to another status changes nothing the connector writes."""

from __future__ import annotations

import json

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.gather import load_book
from tests.conftest import cli_for, write_config

AS_OF = "2026-11-23"


def test_tasks_a_rep_worked_on_are_read_back_and_the_next_syncs_write_nothing(tmp_path):
    config = write_config(tmp_path)
    cli = cli_for(config)
    assert cli("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    first = json.loads(cli("sync", "--as-of", AS_OF, "--json").output)
    assert first["writes"]["task.create"] > 10
    ctx = bootstrap.build(load_config(config))
    try:
        done, busy, parked = sorted(ctx.crm.all("Task"), key=lambda t: t["Dedupe_Key__c"])[:3]
        ctx.crm.edit("Task", done["Id"], {"Status": "Completed"})
        ctx.crm.edit("Task", busy["Id"], {"Status": "Waiting on someone else"})
        ctx.crm.edit("Task", parked["Id"], {"Status": "Parked"})  # a value an admin added
    finally:
        ctx.close()
    second = json.loads(cli("sync", "--as-of", AS_OF, "--json").output)
    assert (second["created"], second["updated"], second["writes"]) == (0, 0, {})
    assert second["failed"] == first["failed"]  # the book's deliberately broken records only
    assert second["records_read"]["task"] == first["writes"]["task.create"]
    assert json.loads(cli("sync", "--as-of", AS_OF, "--json").output)["writes"] == {}
    ctx = bootstrap.build(load_config(config))
    try:
        tasks = {t.dedupe_key: t for t in load_book(ctx.store).tasks.values()}
        assert not [d for d in ctx.store.dead_letters.list() if d.kind == "task"]
    finally:
        ctx.close()
    assert tasks[done["Dedupe_Key__c"]].status == "completed"
    assert tasks[done["Dedupe_Key__c"]].completed_at is not None
    assert tasks[busy["Dedupe_Key__c"]].status == tasks[parked["Dedupe_Key__c"]].status == "open"
    assert sum(t.status == "completed" for t in tasks.values()) == 1
