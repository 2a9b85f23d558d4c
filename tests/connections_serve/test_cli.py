"""`renewals scheduler --list` per connection (`connection` key in JSON; --connection for one),
and a real `renewals scheduler` running each connection's jobs in its own state database."""

from __future__ import annotations

import json
import subprocess

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import connections as manage
from tests.conftest import cli_for, write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import query, stop, wait_for

OFF = ("daily_renewal_scan", "daily_playbook_health", "quarterly_qbr_tasks")


def deployment(tmp_path):
    jobs = {"incremental_sync": {"interval_seconds": 1}}
    jobs |= {name: {"enabled": False, "cron": "0 0 1 1 *"} for name in OFF}
    path = write_config(tmp_path, schedule={"jobs": jobs, "misfire_grace_seconds": 5})
    base = load_config(path)
    registry = bootstrap.open_store(base)
    try:
        manage.add(base, registry, "second", "sandbox", "test")
        pending = connections.new_row("hs-p", "hubspot", "oauth", connections.PENDING, "test")
        registry.connections.save(pending)
    finally:
        registry.close()
    return path


def test_scheduler_list_names_the_connection_of_each_job(tmp_path):
    cli = cli_for(deployment(tmp_path))
    listed = json.loads(cli("scheduler", "--list", "--json").stdout)
    by = {(j["connection"], j["job"]) for j in listed}
    assert ("default", "incremental_sync") in by and ("second", "incremental_sync") in by
    assert not any(c == "hs-p" for c, _ in by)  # pending: no jobs run
    assert {"job", "schedule", "enabled", "next_at", "last_status"} <= listed[0].keys()
    one = json.loads(cli("scheduler", "--list", "--json", "--connection", "second").stdout)
    assert {j["connection"] for j in one} == {"second"} and len(one) == 5
    table = cli("scheduler", "--list").stdout
    assert "connection" in table and "second" in table
    wrong = cli("scheduler", "--list", "--connection", "nobody")
    assert wrong.exit_code == 2 and "no connection named 'nobody'" in wrong.output


def test_a_real_scheduler_runs_each_connections_jobs_in_its_own_database(tmp_path):
    path = deployment(tmp_path)
    cmd = [*renewals_cli(), "--config", str(path), "-v", "--log-format", "json", "scheduler"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    data = tmp_path / "data"
    second = data / "connections" / "second" / "state.db"

    def ran(db) -> bool:
        return query(db, "SELECT count(*) FROM job_runs WHERE status = 'ok'")[0][0] >= 1

    try:
        wait_for(lambda: ran(data / "state.db") and ran(second), timeout=30, proc=proc)
    finally:
        err = stop(proc)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    told = [line for line in lines if line["logger"].endswith("cli_common")]
    assert told[0]["message"].startswith("connection hs-p: pending: not served until connected")
    start = told[1:]
    assert start[0]["message"].startswith("renewals scheduler: 4 job(s) of connections default")
    told = {(line["connection"], line["job"]) for line in start[1:] if "job" in line}
    assert ("second", "incremental_sync") in told
    runs = [line for line in lines if line["message"].startswith("run ")]
    assert {line["connection"] for line in runs} >= {"default", "second"}
    modes = query(second, "SELECT mode FROM runs")
    assert modes and set(modes) == {("incremental",)}


def test_scheduler_list_skips_a_connection_whose_settings_do_not_load(tmp_path):
    path = deployment(tmp_path)
    (tmp_path / "connections").mkdir(exist_ok=True)
    (tmp_path / "connections" / "second.yaml").write_text("webhooks: {}\n")
    result = cli_for(path)("scheduler", "--list", "--json")
    assert result.exit_code == 0
    assert {j["connection"] for j in json.loads(result.stdout)} == {"default"}
    assert "connection second is skipped" in result.stderr
    assert "cannot set 'webhooks'" in result.stderr


def test_past_full_check_max_start_up_loads_settings_and_mappings_without_building(
    tmp_path, monkeypatch, capsys
):
    from crm_renewals.connector import cli_serve

    path = deployment(tmp_path)
    built = []
    real_build = bootstrap.build
    monkeypatch.setattr(
        bootstrap, "build", lambda cfg: built.append(cfg.connection) or real_build(cfg)
    )
    assert cli_serve.checked_connections(load_config(path)) == ["default", "second"]
    assert built == ["default", "second"]  # few connections: each adapter and store built

    built.clear()
    monkeypatch.setattr(cli_serve, "FULL_CHECK_MAX", 1)
    (tmp_path / "connections").mkdir(exist_ok=True)
    (tmp_path / "connections" / "second.yaml").write_text("webhooks: {}\n")
    assert cli_serve.checked_connections(load_config(path)) == ["default"]
    assert built == []
    err = capsys.readouterr().err
    assert "2 connections: each one's settings and mapping are checked now" in err
    assert "connection second is skipped" in err and "cannot set 'webhooks'" in err
