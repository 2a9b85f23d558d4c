"""Alerts (`notify:`) through what users run: syncs on the command line that fail, are killed
or leave dead letters, `renewals notify test`, `renewals doctor`, the scheduler's red digest
and a real `renewals serve` whose inbox waits. The targets are a loopback JSON hook (Apprise's
json://) standing in for Slack or Teams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.inbox import event_row, signal_event
from crm_renewals.connector.services import sync
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.runlock import run_lock
from crm_renewals.jobs.scheduler import run_slot, scheduled_jobs, trigger_for, upcoming
from tests.conftest import AS_OF, Book, cli_for, write_config
from tests.e2e.alert_sinks import Hook, free_port
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_health_sync import healthy_account, signal
from tests.e2e.test_serve_and_scheduler import healthy, stop, wait_for

HERE = Path(__file__).parent
DAY = AS_OF.isoformat()
TOKEN = "T0KEN9f8e7d6c5b4a"
HOOK = "RENEWALS_NOTIFY_HOOK"


@pytest.fixture
def hook(monkeypatch):
    with Hook() as receiver:
        monkeypatch.setenv(HOOK, receiver.url(TOKEN))
        yield receiver


def configure(folder: Path, **notify) -> Path:
    return write_config(
        folder,
        notify={"targets": [HOOK], "dead_letters_over": None, **notify},
        webhooks={"public_base_url": "https://renewals.example.com"},
    )


def seeded(folder: Path, **notify):
    cli = cli_for(configure(folder, **notify))
    assert cli("sandbox", "seed", "--as-of", DAY).exit_code == 0
    return cli


def renewals(*args: str, launcher: str | None = None) -> subprocess.CompletedProcess:
    head = [sys.executable, str(HERE / launcher)] if launcher else renewals_cli()
    return subprocess.run([*head, *args], capture_output=True, text=True, timeout=120)


def test_a_failed_sync_is_alerted_once_with_its_run_and_where_to_look(tmp_path, hook):
    cli = seeded(tmp_path)
    args = ("--config", str(tmp_path / "app.yaml"), "sync", "--as-of", DAY)
    first = renewals(*args, launcher="failing_sync.py")
    assert first.returncode == 2 and "Session expired or invalid" in first.stderr
    (post,) = hook.posts
    assert post["title"] == "crm-renewals: run 1 failed" and post["type"] == "failure"
    assert (
        "Run 1 (incremental, as of 2026-11-23) on sandbox ended failed: Session expired"
        in (post["message"])
    )
    assert (
        "renewals runs --id 1; console: https://renewals.example.com/admin/runs/1"
        in (post["message"])
    )
    again = renewals(*args, launcher="failing_sync.py")  # the same failure: a repeat
    assert again.returncode == 2 and len(hook.posts) == 1
    listed = json.loads(cli("notify", "list", "--json").output)
    assert [(n["key"], n["detail"].get("repeat")) for n in listed] == [
        ("run:2", True),
        ("run:1", None),
    ]
    # the cause is gone: the next run that ends is told as the recovery, once
    assert renewals(*args).returncode in (0, 1)  # 1: the demo book's broken records
    assert renewals(*args).returncode in (0, 1)
    titles = [p["title"] for p in hook.posts]
    assert titles == ["crm-renewals: run 1 failed", "crm-renewals: run 3 recovered"]
    recovered = hook.posts[1]
    assert recovered["type"] == "success"
    assert "Run 3 (incremental, as of 2026-11-23) on sandbox ended partial" in recovered["message"]
    assert "after 2 runs that ended failed (since run 1)" in recovered["message"]


def test_a_killed_run_is_alerted_once_the_next_run_marks_it_interrupted(tmp_path, hook):
    cli = seeded(tmp_path)
    config = str(tmp_path / "app.yaml")
    killed = renewals("1", "--config", config, "sync", "--as-of", DAY, launcher="crashing_sync.py")
    assert killed.returncode == -9 and hook.posts == []  # nobody left to tell
    assert cli("sync", "--as-of", DAY).exit_code == 1  # partial: the demo's broken records
    # told together: the killed run, and that the run which found it ended well
    assert hook.titles() == ["crm-renewals: run 1 interrupted", "crm-renewals: run 2 recovered"]
    assert "the process stopped before the run ended" in hook.posts[0]["message"]
    assert "after 1 run that ended interrupted (since run 1)" in hook.posts[1]["message"]


def test_dead_letters_over_the_threshold_alert_once_per_crossing(tmp_path, hook):
    cli = seeded(tmp_path, dead_letters_over=2)
    assert cli("sync", "--as-of", DAY).exit_code == 1
    assert hook.titles() == ["crm-renewals: 4 open dead letters (over 2)"]
    body = hook.posts[0]["message"]
    assert "Most: contract.end_date 2, contract_line.product_code 2." in body
    assert (
        "renewals deadletters list; console: https://renewals.example.com/admin/deadletters" in body
    )
    cli("sync", "--as-of", DAY)  # still over: the same episode
    configure(tmp_path, dead_letters_over=10)
    cli("sync", "--as-of", DAY)  # back under: the episode ends
    configure(tmp_path, dead_letters_over=2)
    cli("sync", "--as-of", DAY)  # over again: a new crossing
    assert hook.titles() == ["crm-renewals: 4 open dead letters (over 2)"] * 2


def test_a_target_that_refuses_does_not_fail_the_run_and_its_token_stays_out(tmp_path, hook):
    seeded(tmp_path, dead_letters_over=2)
    with Hook(500) as refusing:
        env = {
            **os.environ,
            "RENEWALS_NOTIFY_REFUSES": refusing.url(TOKEN + "R"),
            "RENEWALS_NOTIFY_CLOSED": f"json://127.0.0.1:{free_port()}/hook/{TOKEN}C",
        }
        configure(
            tmp_path,
            targets=["RENEWALS_NOTIFY_REFUSES", "RENEWALS_NOTIFY_CLOSED", HOOK],
            dead_letters_over=2,
        )
        args = ["--config", str(tmp_path / "app.yaml"), "-vv", "sync", "--as-of", DAY, "--json"]
        done = subprocess.run(
            [*renewals_cli(), *args], capture_output=True, text=True, env=env, timeout=120
        )
    assert done.returncode == 1 and json.loads(done.stdout)["status"] == "partial"
    assert len(refusing.posts) == 1 and hook.titles() == [
        "crm-renewals: 4 open dead letters (over 2)"
    ]
    assert (
        "not sent to RENEWALS_NOTIFY_REFUSES: Failed to send JSON POST notification" in done.stderr
    )
    assert "not sent to RENEWALS_NOTIFY_CLOSED" in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_notify_test_and_doctor_say_which_target_works_one_line_each(tmp_path, hook):
    with Hook(500) as refusing:
        os.environ["RENEWALS_NOTIFY_REFUSES"] = refusing.url(TOKEN)
        try:
            names = [HOOK, "RENEWALS_NOTIFY_REFUSES", "RENEWALS_NOTIFY_UNSET"]
            cli = cli_for(configure(tmp_path, targets=names))
            tested = cli("notify", "test")
            doctor = cli("doctor")
        finally:
            del os.environ["RENEWALS_NOTIFY_REFUSES"]
    assert tested.exit_code == 1
    lines = tested.output.splitlines()
    assert lines[0] == f"ok   {HOOK}: sent"
    assert lines[1].startswith("FIX  RENEWALS_NOTIFY_REFUSES: Failed to send JSON POST")
    assert lines[2] == "FIX  RENEWALS_NOTIFY_UNSET: not set" and len(lines) == 3
    assert hook.titles() == ["crm-renewals: test message"]
    assert doctor.exit_code == 1
    assert "FIX  alert target RENEWALS_NOTIFY_UNSET: not set" in doctor.output
    assert f"ok   alert target {HOOK}: json:// (Apprise)" in doctor.output
    (tmp_path / "off").mkdir()
    off = cli_for(write_config(tmp_path / "off"))("notify", "test")
    assert off.exit_code == 2 and "notify.targets: no alert targets" in off.output


def test_the_red_digest_names_accounts_turned_red_once_a_day(tmp_path, hook):
    cfg = load_config(configure(tmp_path, red_digest_at="08:00"))
    ctx = bootstrap.build(cfg)
    ctx.sleep = lambda _s: None
    book = Book(ctx.crm)
    turning, _ = healthy_account(ctx, book, 0.55)
    always, _ = healthy_account(ctx, book, 0.55)
    red = {"NPS__c": -40, "Late_Payments__c": 3, "Open_Tickets__c": 20}
    ctx.crm.edit("Account", always, red)
    signal(ctx, always, "seat_utilisation", 0.2)
    sync(ctx, as_of=AS_OF)
    tomorrow = AS_OF + timedelta(days=1)
    ctx.crm.edit("Account", turning, red)
    signal(ctx, turning, "seat_utilisation", 0.3, tomorrow)
    sync(ctx, as_of=tomorrow)
    ctx.close()
    job = scheduled_jobs(cfg)["red_digest"]
    trigger = trigger_for(job, ZoneInfo("UTC"))
    assert job.cron == "0 8 * * *"
    assert "red_digest" in [u.job for u in upcoming(cfg)]

    def digest_at(day) -> str:
        at = datetime(day.year, day.month, day.day, 8, 0, 5, tzinfo=UTC)
        factory = bootstrap.context_factory(cfg)
        return run_slot(
            "red_digest", cfg, trigger, context_factory=factory, runner="t", clock=lambda: at
        )

    assert digest_at(tomorrow) == "ok"
    (post,) = hook.posts
    assert post["title"] == "crm-renewals: 1 account turned red"
    assert post["message"].startswith(
        f"1 account turned red since {AS_OF}:\n- Acme: score 11, down 64; "
    )
    assert "seat utilisation 30%, down from 55%" in post["message"]
    assert "console: https://renewals.example.com/admin/health?grade=red" in post["message"]
    assert digest_at(tomorrow + timedelta(days=1)) == "ok" and len(hook.posts) == 1  # no new day


def test_renewals_serve_alerts_when_its_inbox_waits_without_a_scheduler(tmp_path, hook):
    path = configure(tmp_path, inbox_wait_minutes=1)
    store = StateStore(load_config(path).state_url)
    waiting_since = datetime.now(UTC) - timedelta(minutes=20)
    store.inbox.add([event_row(signal_event("001SB0000000001"), waiting_since)])
    port = free_port()
    with run_lock(store):  # a long run holds the lock: the worker cannot take the event
        proc = subprocess.Popen(
            [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
        )
        try:
            wait_for(lambda: healthy(port) or bool(hook.posts), proc=proc)
            wait_for(lambda: bool(hook.posts), proc=proc)
        finally:
            stop(proc)
    store.close()
    (post,) = hook.posts
    assert post["title"] == "crm-renewals: webhook inbox waiting 20 minutes"
    assert "(alert after 1): 1 event and 0 deliveries waiting" in post["message"]
