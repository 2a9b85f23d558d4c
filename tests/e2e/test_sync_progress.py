"""A sync records where it is in its run (`runs.progress`, what the console's live panel
shows): stage by stage, throttled, never in the way of the run or of the CLI's progress bar."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import OperationalError

from crm_renewals.connector.services import sync
from crm_renewals.connector.services.progress import RunProgress
from crm_renewals.connector.services.sync_report import SyncReport
from tests.conftest import AS_OF


def test_a_sync_records_its_last_stage_and_counts_in_its_run(context, book):
    for n in range(3):
        book.contract(book.account(f"Acme {n}"), AS_OF + timedelta(days=100))
    seen: list[tuple[str, int]] = []
    report = sync(context, as_of=AS_OF, progress=lambda kind, n: seen.append((kind, n)))
    progress = context.store.runs.get(report.run_id).progress
    assert progress["stage"] == "recording"
    assert progress["read"] == report.records_read
    assert progress["contracts_planned"] == 3
    assert progress["done"] == report.writes and report.writes["renewal_opportunity.create"] == 3
    sent = {k: n for k, n in report.writes.items() if not k.endswith(".held")}
    assert progress["planned"] == sent
    # the CLI's callback still hears every page read and every batch written
    assert sum(n for kind, n in seen if kind == "contract") >= 3
    assert ("renewal_opportunity", 3) in seen


def test_a_dry_run_records_no_progress_and_changes_no_run(context, book):
    book.contract(book.account(), AS_OF + timedelta(days=100))
    report = sync(context, as_of=AS_OF, dry_run=True)
    assert report.run_id is None and context.store.runs.list() == []


class _Runs:
    """The runs repository's progress writes, counted (and refused, if asked)."""

    def __init__(self, refuse: bool = False):
        self.written: list[dict] = []
        self.refuse = refuse

    def report_progress(self, run_id: int, progress: dict) -> None:
        if self.refuse:
            raise OperationalError("UPDATE runs", {}, Exception("database is locked"))
        self.written.append(progress)


class _Store:
    def __init__(self, refuse: bool = False):
        self.runs = _Runs(refuse)


def test_progress_is_recorded_at_most_twice_a_second_and_at_each_stage():
    store, now = _Store(), [0.0]
    report = SyncReport(7, AS_OF, dry_run=False, full=False)
    tracker = RunProgress(store, report, clock=lambda: now[0])
    for _ in range(1000):  # a thousand pages read within the same instant: no write
        tracker.read("contract", 200)
    assert len(store.runs.written) == 1  # the first, as the run began
    now[0] = 0.6
    tracker.read("contract", 200)
    assert len(store.runs.written) == 2
    assert store.runs.written[-1]["read"] == {"contract": 1001 * 200}
    planned = list(tracker.planning(range(250)))
    assert planned == list(range(250)) and len(store.runs.written) == 2
    tracker.stage("planning")
    tracker.written("task", 200)  # the first write moves the stage on
    assert [p["stage"] for p in store.runs.written[2:]] == ["planning", "writing"]
    assert store.runs.written[-1]["contracts_planned"] == 250


def test_a_progress_write_the_database_refuses_does_not_stop_the_run():
    report = SyncReport(7, AS_OF, dry_run=False, full=False)
    tracker = RunProgress(_Store(refuse=True), report)
    tracker.stage("writing")
    tracker.flush()  # logged, not raised
