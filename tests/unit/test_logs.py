"""Logs as users get them: text or JSON lines (flag, then RENEWALS_LOG_FORMAT), the run's id
and CRM on every line of a run, and no secret in any of them (messages, extra fields,
exception text), for the values of the secret variables, RENEWALS_NOTIFY_* and the password
of RENEWALS_STATE_URL."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from crm_renewals.connector import logs
from crm_renewals.connector.cli_serve import unsigned_sources
from crm_renewals.connector.config import load_config
from crm_renewals.connector.logs import RedactSecrets, log_context, secrets
from tests.conftest import cli_for, write_config

ENV = {
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-token-0001",
    "RENEWALS_NOTIFY_SLACK": "slack://T000/B000/notify-token-0002",
    "RENEWALS_STATE_URL": "postgresql+psycopg://renewals:pa%40ss-0003@db:5432/renewals",
    "RENEWALS_LOG_LEVEL_NOT_A_SECRET": "verbose",
    "SIGNALS_WEBHOOK_SECRET": "abc",  # too short to be worth hiding: left as it is
}
#: the state URL is a secret variable as a whole; its password is hidden also where the URL is
#: printed with its password alone (as a driver's error message may)
HIDDEN = (
    "pat-na1-token-0001",
    ENV["RENEWALS_NOTIFY_SLACK"],
    ENV["RENEWALS_STATE_URL"],
    "pa%40ss-0003",
    "pa@ss-0003",
)


def logger_to(fmt: str, env=ENV) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own whose one handler is prepared as `renewals` prepares the root's."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter(logs.TEXT))
    logs.prepare(handler, fmt)
    handler.filters[0] = RedactSecrets(env)  # this test's environment, not the process's
    log = logging.getLogger(f"test.logs.{fmt}")
    log.handlers[:] = [handler]
    log.propagate, log.level = False, logging.DEBUG
    return log, sink


def test_the_values_to_hide_are_the_secrets_the_notify_targets_and_the_state_password():
    assert sorted(secrets(ENV)) == sorted(HIDDEN)


def test_a_state_url_that_is_not_a_url_is_hidden_whole_and_breaks_nothing():
    assert secrets({"RENEWALS_STATE_URL": "postgresql://[::1"}) == ["postgresql://[::1"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_reaches_a_line_from_its_message_fields_or_exception(fmt):
    log, sink = logger_to(fmt)
    log.info("calling with %s", "pat-na1-token-0001", extra={"target": HIDDEN[1]})
    log.warning("nested", extra={"detail": {"url": [f"x {HIDDEN[2]} y"]}})
    try:
        raise RuntimeError(f"could not connect as renewals:{HIDDEN[3]}")
    except RuntimeError:
        log.exception("state store down")
    text = sink.getvalue()
    assert not any(secret in text for secret in HIDDEN), text
    assert text.count("***") >= (4 if fmt == "json" else 2)  # text shows no extra fields
    assert "state store down" in text and "RuntimeError" in text


def test_json_lines_carry_time_level_logger_message_the_run_and_its_counts():
    log, sink = logger_to("json")
    with log_context(run_id=7, crm="sandbox"), log_context(job="incremental_sync"):
        log.info("run 7 ok", extra={"counts": {"created": 44, "failed": 0}, "status": "ok"})
    log.warning("after the run")
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO",
        "logger": "test.logs.json",
        "message": "run 7 ok",
    }
    assert datetime.fromisoformat(first["time"]).utcoffset() == UTC.utcoffset(None)
    assert first["run_id"] == 7 and first["crm"] == "sandbox" and first["job"] == "incremental_sync"
    assert first["created"] == 44 and first["failed"] == 0 and first["status"] == "ok"
    assert "run_id" not in second and second["level"] == "WARNING"


def test_text_lines_stay_as_they_were():
    log, sink = logger_to("text")
    with log_context(run_id=7):
        log.info("run 7 ok", extra={"counts": {"created": 1}})
    assert sink.getvalue().rstrip().endswith(" INFO test.logs.text: run 7 ok")


def stderr_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def test_sync_at_v_tells_what_it_read_planned_and_wrote_as_json_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("RENEWALS_LOG_FORMAT", "json")
    result = cli_for(write_config(tmp_path))("-v", "sync")
    lines = stderr_lines(result)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("read 0 contract records (first read") for m in messages), messages
    assert any(m.startswith("planned no writes for 0 of 0 contracts") for m in messages)
    (end,) = [line for line in lines if line["message"].startswith("run 1 ok")]
    assert end["run_id"] == 1 and end["crm"] == "sandbox" and end["mode"] == "incremental"
    assert end["created"] == 0 and end["status"] == "ok"


def test_the_flag_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RENEWALS_LOG_FORMAT", "json")
    result = cli_for(write_config(tmp_path))("-v", "--log-format", "text", "sync")
    assert " INFO crm_renewals.connector.services.runlog: run 1 ok" in result.stderr
    assert not result.stderr.lstrip().startswith("{")


def test_an_error_is_a_json_line_too(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("crm: sandbox\nsync: {page_size: -1}\nnot_a_section: 1\n")
    result = cli_for(path)("--log-format", "json", "sync")
    assert result.exit_code == 2
    lines = stderr_lines(result)
    assert len(lines) == 2 and {line["level"] for line in lines} == {"ERROR"}
    assert all(line["message"].startswith("Configuration problem: ") for line in lines)


def test_serve_warns_for_each_webhook_source_that_would_refuse_every_delivery(tmp_path):
    config = load_config(write_config(tmp_path))
    warned = dict(unsigned_sources(config, {}))
    assert list(warned) == ["hubspot", "signals", "salesforce"]
    assert "HUBSPOT_CLIENT_SECRET is not set" in warned["hubspot"]
    assert "/webhooks/signals is refused (401)" in warned["signals"]
    assert "set SALESFORCE_ORG_ID" in warned["salesforce"]
    env = {"HUBSPOT_CLIENT_SECRET": "s1", "SIGNALS_WEBHOOK_SECRET": "s2"}
    assert unsigned_sources(config, env | {"SALESFORCE_ORG_ID": "00D000000000062EAA"}) == []
