"""The overview, the runs pages and "Sync now" / "Dry run" through the Flask test client,
over the seeded demo book (two syncs as of AS_OF): the numbers each page shows are read back
from the state store here, and the runs the buttons start are real `renewals sync` processes."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from crm_renewals.connector.state.runlock import run_lock
from tests.conftest import AS_OF
from tests.console.conftest import ADMIN, post

#: a run started from the console ends within this (the demo book syncs in ~1 s)
RUN_TIMEOUT_S = 90


def store_of(app):
    return app.extensions["console"].store


def page(client, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def between(text: str, start: str, end: str) -> str:
    """The part of the page from `start` to the next `end`."""
    found = text.split(start, 1)
    assert len(found) == 2, f"{start!r} not on the page"
    return found[1].split(end, 1)[0]


def figure(text: str, element_id: str) -> str:
    """The text of element `element_id`, tags and spaces removed."""
    inner = between(text, f'id="{element_id}"', "</div>").split(">", 1)[1]
    return " ".join(re.sub(r"<[^>]+>", " ", inner).split())


def wait_for(condition, what: str, timeout: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def launched_run(app, after: int):
    """The run started after run `after`, once it has ended."""
    run = store_of(app).runs.first_after(after)
    return run if run is not None and run.status != "running" else None


def launch_over(app) -> bool:
    """The console's last launch is over: its process ended (and was reaped)."""
    from crm_renewals.connector.services.launch import last_launch, process_alive

    last = last_launch(app.extensions["console"].config)
    return last is not None and not process_alive(last.pid)


# -- the overview ------------------------------------------------------------------------


def test_the_overview_shows_the_last_runs_dead_letters_and_todays_api_calls(app, admin):
    store = store_of(app)
    runs = store.runs.list(100)
    text = page(admin, "/admin/")
    last = runs[0]
    row = between(text, f'id="last-run-{last.id}"', "</tr>")
    assert f">{last.api_calls}<" in row and last.status in row and last.mode in row
    writes = sum(n for k, n in last.counts["writes"].items() if not k.endswith(".held"))
    assert f">{writes}<" in row and f">{last.counts['failed']}<" in row
    assert f'href="/admin/runs/{last.id}"' in row
    open_letters = sum(1 for d in store.dead_letters.list())
    assert open_letters > 0 and figure(text, "deadletters-open") == str(open_letters)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    spent = sum(r.api_calls or 0 for r in runs if r.started_at.strftime("%Y-%m-%d") == today)
    assert spent > 0 and figure(text, "api-calls-today") == f"{spent:,}"
    assert figure(text, "inbox-waiting") == "0"


def test_the_overview_shows_the_health_mix_the_demo_recorded(app, admin):
    recorded = store_of(app).history.health_on(AS_OF.isoformat()).values()
    grades = Counter(r.grade or "grey" for r in recorded)
    assert grades["green"] and grades["red"]
    mix = between(page(admin, "/admin/"), 'id="health-mix"', "</div>")
    for grade in ("green", "yellow", "red", "grey"):
        assert f'data-grade="{grade}">{grades[grade]}<' in mix


def test_the_overview_shows_each_jobs_next_time(admin):
    before = datetime.now(UTC)
    text = page(admin, "/admin/")
    after = datetime.now(UTC)

    def shown(job: str) -> str:
        return between(text, f'id="job-{job}"', "</tr>")

    # app.yaml keeps the defaults: every 15 minutes, and reconciliation at 02:00 UTC
    quarter = {
        (moment + timedelta(minutes=15 - moment.minute % 15)).strftime("%Y-%m-%d %H:%M")
        for moment in (before, after)
    }
    assert any(q in shown("incremental_sync") for q in quarter)
    assert "every 15 minutes" in shown("incremental_sync")
    night = before.replace(hour=2, minute=0)
    night = night if night > before else night + timedelta(days=1)
    assert night.strftime("%Y-%m-%d 02:00") in shown("daily_reconciliation")
    assert "not run yet" in shown("daily_reconciliation")


def test_the_overview_shows_a_jobs_last_outcome_once_the_scheduler_ran_it(app, admin):
    store = store_of(app)
    slot = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert store.jobs.claim("daily_reconciliation", slot, "host:1", 60)
    store.jobs.finish("daily_reconciliation", slot, "failed", error="CrmError: boom")
    row = between(page(admin, "/admin/"), 'id="job-daily_reconciliation"', "</tr>")
    assert "failed" in row and "2026-11-30 02:00" in row and "CrmError: boom" in row


def test_the_crm_is_shown_connected_and_check_again_is_audited(app, admin):
    text = page(admin, "/admin/")
    assert figure(text, "crm-status") == "ok connected"
    assert 'id="doctor-failing"' not in text
    answer = post(admin, "/admin/doctor")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    assert "every check passed" in page(admin, "/admin/")
    entry = store_of(app).audit.list()[0]
    assert (entry.actor, entry.action) == (ADMIN[0], "crm.doctor")


def test_a_failing_crm_check_shows_its_name_detail_and_fix(app, admin, console_config):
    config = app.extensions["console"].config
    with sqlite3.connect(config.sandbox_path) as db:  # the sandbox org loses its accounts
        db.execute("DELETE FROM records WHERE object = 'Account'")
    post(admin, "/admin/doctor")
    text = page(admin, "/admin/")
    failing = between(text, 'id="doctor-failing"', "</table>")
    assert "records of Account (account)" in failing
    assert "0 records" in failing and "renewals sandbox seed" in failing
    assert figure(text, "crm-status") == "failed needs fixing"


# -- the runs pages ----------------------------------------------------------------------


def test_the_runs_page_lists_the_runs_as_renewals_runs_does(app, admin):
    runs = store_of(app).runs.list()
    text = page(admin, "/admin/runs")
    for r in runs:
        row = between(text, f'id="run-{r.id}"', "</tr>")
        assert f">{r.counts['created']}<" in row and f">{r.counts['skipped']}<" in row
        assert f"/admin/mappings?version={r.mapping_hash[:8]}" in row
    assert 'id="run-' + str(runs[0].id) + '"' in between(text, 'id="runs-table"', "</table>")


def test_the_runs_page_filters_by_mode_and_status(app, admin):
    assert 'id="run-1"' in page(admin, "/admin/runs?status=partial&mode=incremental")
    none = page(admin, "/admin/runs?mode=full")
    assert 'id="runs-none"' in none and 'id="runs-table"' not in none
    for bad in ("/admin/runs?mode=sideways", "/admin/runs?status=<script>"):
        answer = admin.get(bad)
        assert answer.status_code == 400
        assert "must be one of" in answer.get_data(as_text=True)


def test_the_runs_page_shows_fifty_runs_a_page(app, admin):
    store = store_of(app)
    for _ in range(55):
        run_id = store.runs.start("webhook", AS_OF.isoformat())
        store.runs.finish(run_id, "ok", {"created": 0}, 1, 0.1)
    newest = store.runs.list(1)[0].id
    first = page(admin, "/admin/runs")
    assert first.count('<tr id="run-') == 50 and f'id="run-{newest}"' in first
    second = page(admin, "/admin/runs?page=2")
    assert second.count('<tr id="run-') == 57 - 50 and 'id="run-1"' in second
    assert "No runs on page 9" in page(admin, "/admin/runs?page=9")


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "²", "9" * 40])
def test_a_bad_page_number_is_refused_with_a_message(admin, bad):
    answer = admin.get(f"/admin/runs?page={bad}")
    assert answer.status_code == 400
    assert "page must be a whole number" in answer.get_data(as_text=True)


def test_a_runs_page_shows_its_writes_by_kind_and_skips_by_reason(app, admin):
    run = store_of(app).runs.get(1)
    text = page(admin, "/admin/runs/1")
    writes = between(text, 'id="run-writes"', "</table>")
    created = run.counts["writes"]["renewal_opportunity.create"]
    assert re.search(rf"renewal opportunities created .*?>{created}<", writes, re.S)
    skips = between(text, 'id="run-skips"', "</table>")
    for reason, n in run.counts["skip_reasons"].items():
        assert re.search(rf"<code>{reason}</code>.*?>{n}<", skips, re.S)
    assert "not due yet" in skips
    assert f">{run.api_calls}<" in between(text, 'id="run-api-calls"', "</tr>")
    assert f"/admin/mappings?version={run.mapping_hash[:8]}" in text
    failures = between(text, 'id="run-map-failures"', "</table>")
    assert "end_date" in failures and "required value missing" in failures


def test_a_runs_page_lists_the_dead_letters_it_recorded(app, admin):
    letters = [d for d in store_of(app).dead_letters.list() if d.run_id == 2]
    assert letters
    table = between(page(admin, "/admin/runs/2"), 'id="run-dead-letters"', "</table>")
    for letter in letters:
        assert letter.record_id in table
    assert 'id="run-dead-letters"' not in page(admin, "/admin/runs/1")


@pytest.mark.parametrize("run_id", ["9999", "abc", "-1", "1.0", "²", "9" * 30, "%3Cscript%3E"])
def test_an_unknown_or_malformed_run_is_a_404_page(admin, run_id):
    answer = admin.get(f"/admin/runs/{run_id}")
    assert answer.status_code == 404
    text = answer.get_data(as_text=True)
    assert "No such run" in text and "<script>" not in text


# -- Sync now, Dry run and the live panel ------------------------------------------------


def test_sync_now_starts_a_real_run_that_completes_and_is_audited(app, admin):
    store = store_of(app)
    before = store.runs.list(1)[0].id
    answer = post(admin, "/admin/runs/start", {"command": "sync"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    run = wait_for(lambda: launched_run(app, before), "the sync to end")
    wait_for(lambda: launch_over(app), "its process to end")
    assert run.mode == "incremental" and run.status in ("ok", "partial")
    assert run.progress["stage"] == "recording"
    entry = store.audit.list()[0]
    assert (entry.actor, entry.action) == (ADMIN[0], "run.sync")
    panel = page(admin, "/admin/runs/live")
    assert f"Run {run.id} ended" in panel and f'href="/admin/runs/{run.id}"' in panel
    assert "hx-trigger" not in panel  # polling stops once the run ended


def test_a_second_sync_while_one_goes_says_a_run_is_in_progress(app, admin):
    before = store_of(app).runs.list(1)[0].id
    post(admin, "/admin/runs/start", {"command": "sync"})
    try:
        answer = post(admin, "/admin/runs/start", {"command": "sync"})
        assert answer.status_code == 302
        assert "A run is in progress" in page(admin, "/admin/")
    finally:
        wait_for(lambda: launched_run(app, before), "the first sync to end")
        wait_for(lambda: launch_over(app), "its process to end")
    assert store_of(app).runs.first_after(before + 1) is None  # the second never started


def test_two_starts_at_the_same_moment_start_one_run(app):
    from crm_renewals.connector.services.launch import RunBusy, launch

    state, gate, outcomes = app.extensions["console"], threading.Barrier(2), []

    def start() -> None:
        gate.wait()
        try:
            outcomes.append(launch(state.config, state.store, "dry_run", "test").pid)
        except RunBusy:
            outcomes.append("busy")

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: launch_over(app), "the dry run to end")
    assert sorted(outcomes, key=str).count("busy") == 1


def test_sync_now_is_refused_while_another_process_holds_the_run_lock(app, admin):
    with run_lock(store_of(app)):
        post(admin, "/admin/runs/start", {"command": "sync"})
        assert "A run is in progress" in page(admin, "/admin/")
    assert [e.action for e in store_of(app).audit.list()].count("run.sync") == 0


def test_the_live_panel_shows_a_running_runs_stage_and_progress(app, admin):
    store = store_of(app)
    progress = {
        "stage": "writing",
        "read": {"contract": 260, "account": 160},
        "contracts_planned": 120,
        "done": {"renewal_opportunity.create": 30, "task.create": 12},
    }
    with run_lock(store):  # a sync going in another process: its lock and its run
        run_id = store.runs.start("incremental", AS_OF.isoformat())
        store.runs.report_progress(run_id, progress)
        panel = page(admin, "/admin/runs/live")
        overview = page(admin, "/admin/")
    assert 'hx-trigger="every 1s"' in panel and f"Run {run_id} (incremental)" in panel
    said = " ".join(re.sub(r"<[^>]+>", " ", between(panel, 'id="live-progress"', "</p>")).split())
    assert said.startswith("> Stage writing : 420 records read, 120 contracts planned, 42 writes")
    assert 'aria-current="step"' in between(panel, "<ol", "</ol>").split("writing")[0][-80:]
    assert 'id="live-run"' in overview and "disabled" in between(overview, 'id="sync-now"', ">")
    store.runs.report_progress(run_id, {**progress, "planned": {"task.create": 84}})
    with run_lock(store):
        assert '<progress max="84" value="42"' in page(admin, "/admin/runs/live")


def test_a_run_its_killed_process_left_running_is_not_shown_as_going(app, admin):
    store = store_of(app)
    run_id = store.runs.start("incremental", AS_OF.isoformat())  # and no one holds the lock
    store.runs.report_progress(run_id, {"stage": "writing", "done": {"task.create": 5}})
    panel = page(admin, "/admin/runs/live")
    assert "hx-trigger" not in panel and "No run is going" in panel
    assert "disabled" not in between(page(admin, "/admin/"), 'id="sync-now"', ">")


def test_a_dry_run_from_the_overview_shows_what_it_would_write(app, admin):
    store = store_of(app)
    runs_before = store.runs.count()
    answer = post(admin, "/admin/runs/start", {"command": "dry_run"})
    assert answer.status_code == 302
    wait_for(lambda: launch_over(app), "the dry run to end")
    panel = page(admin, "/admin/runs/live")
    assert "Dry run ended: nothing written" in panel and "hx-trigger" not in panel
    assert "4 failed" in between(panel, 'id="live-outcome"', "</p>")
    assert store.runs.count() == runs_before  # a dry run records no run
    assert store.audit.list()[0].action == "run.dry_run"


def test_an_unknown_command_is_refused(admin):
    answer = post(admin, "/admin/runs/start", {"command": "rm -rf"})
    assert answer.status_code == 400
    assert "choose sync or dry_run" in answer.get_data(as_text=True)


def test_a_viewer_sees_the_overview_without_the_run_buttons(viewer):
    text = page(viewer, "/admin/")
    assert 'id="sync-now"' not in text and 'id="check-again"' not in text
    assert "Viewers cannot start runs" in text


# -- the CLI shows the same ----------------------------------------------------------------


def test_renewals_status_says_what_the_overview_shows(app, admin, console_config):
    from tests.conftest import cli_for

    text = page(admin, "/admin/")
    answer = cli_for(console_config)("status", "--json")
    assert answer.exit_code == 0, answer.output
    said = json.loads(answer.output)
    assert figure(text, "api-calls-today") == f"{said['api_calls_today']:,}"
    assert figure(text, "deadletters-open") == str(said["dead_letters_open"])
    mix = between(text, 'id="health-mix"', "</div>")
    assert all(f'data-grade="{g}">{n}<' in mix for g, n in said["health"].items())
    for job in said["jobs"]:
        next_at = datetime.fromisoformat(job["next_at"]).strftime("%Y-%m-%d %H:%M")
        assert next_at in between(text, f'id="job-{job["job"]}"', "</tr>")


def test_renewals_runs_filters_and_shows_one_run_as_the_pages_do(console_config):
    from tests.conftest import cli_for

    cli = cli_for(console_config)
    assert json.loads(cli("runs", "--json", "--mode", "full").output) == []
    assert [r["id"] for r in json.loads(cli("runs", "--json", "--status", "partial").output)] == [
        2,
        1,
    ]
    one = json.loads(cli("runs", "--id", "2", "--json").output)
    assert one["id"] == 2 and one["dead_letters_total"] == len(one["dead_letters"]) > 0
    shown = cli("runs", "--id", "1").output
    assert "renewal opportunities created (renewal_opportunity.create)" in shown
    assert "not due yet" in shown
    missing = cli("runs", "--id", "99")
    assert missing.exit_code == 2 and "no run 99" in missing.output
