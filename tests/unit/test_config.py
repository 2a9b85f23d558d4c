"""app.yaml: typed, strict, every problem at once with its key path and line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_renewals.connector.config import find_config, load_config
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.logs import RedactSecrets

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_app_yaml_loads_with_documented_defaults():
    cfg = load_config(ROOT / "app.yaml")
    assert cfg.crm == "sandbox"
    assert (cfg.renewals.lead_time_days, cfg.renewals.notice_days) == (120, 60)
    assert cfg.state_url.endswith("data/state.db")
    with pytest.raises(ValidationError):  # frozen
        cfg.renewals.lead_time_days = 1  # type: ignore[misc]


def test_every_problem_is_reported_at_once_with_path_and_line(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(
        "crm: sandbox\n"
        "renewals:\n"
        "  lead_time_days: 30\n"
        "  typo_key: 1\n"
        "  name_template: '{acount}'\n"
        "sync:\n"
        "  page_size: ten\n"
        "schedule:\n"
        "  jobs:\n"
        "    nightly: {cron: '61 * * * *'}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = {p.path: p.line for p in exc.value.problems}
    assert found["renewals.typo_key"] == 4
    assert found["sync.page_size"] == 7
    assert found["renewals.name_template"] == 5
    assert found["schedule.jobs.nightly.cron"] == 10
    assert "renewals.latest_creation_days" in found  # 90 > lead time 30


def test_unknown_crm_is_refused(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("crm: dynamics\n")
    with pytest.raises(ConfigError, match="crm"):
        load_config(path)


def test_config_is_found_by_flag_then_environment_then_cwd(monkeypatch):
    monkeypatch.setenv("RENEWALS_CONFIG", "/etc/renewals.yaml")
    assert find_config("x.yaml") == Path("x.yaml")
    assert find_config(None) == Path("/etc/renewals.yaml")
    monkeypatch.delenv("RENEWALS_CONFIG")
    assert find_config(None) == Path("app.yaml")


def test_secrets_from_the_environment_never_reach_logs(monkeypatch, caplog):
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-sekrit-123")
    log = logging.getLogger("t")
    caplog.handler.addFilter(RedactSecrets())
    with caplog.at_level(logging.INFO):
        log.info("calling with token %s", "pat-na1-sekrit-123")
    assert "sekrit" not in caplog.text and "***" in caplog.text


def test_salesforce_settings_are_checked_with_their_key_paths(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(
        "crm: sandbox\n"
        "salesforce:\n"
        "  auth: oauth\n"
        "  api_version: '59'\n"
        "  api_usage_stop_share: 1.5\n"
        "renewals:\n"
        "  renewal_mode: cpq\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    for where in ("salesforce.auth", "salesforce.api_version", "salesforce.api_usage_stop_share"):
        assert where in text
    path.write_text("crm: sandbox\nrenewals:\n  renewal_mode: cpq\n")
    with pytest.raises(ConfigError, match=r"app.yaml:3: renewals.renewal_mode: .*crm: salesforce"):
        load_config(path)


def test_journey_problems_name_their_key_path_and_line(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(
        "crm: sandbox\n"
        "playbook:\n"
        "  journey:\n"
        "    enabled: true\n"
        "    segmnts: 18\n"
        "    touchpoints:\n"
        "      '4':\n"
        "        theme: value_review\n"
        "        subject: 'Value review {segment}/{segmnts}'\n"
        "      '19':\n"
        "        theme: late\n"
        "        subject: 'x'\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = {p.path: p for p in exc.value.problems}
    assert found["playbook.journey.segmnts"].line == 5
    assert found["playbook.journey"].line == 3
    assert "touchpoint '19' is past the last segment (18)" in found["playbook.journey"].message


def test_journey_templates_take_segment_placeholders(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(
        "crm: sandbox\n"
        "playbook:\n"
        "  journey:\n"
        "    touchpoints:\n"
        "      '4':\n"
        "        theme: value_review\n"
        "        subject: 'Value review {segment}/{segmnts}'\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (problem,) = exc.value.problems
    assert problem.path == "playbook.journey.touchpoints.4.subject"
    assert problem.line == 7 and "{segmnts}" in problem.message and "segments" in problem.message
    cfg = load_config(ROOT / "app.yaml")
    journey = cfg.playbook.journey
    assert journey.enabled and (journey.segments, journey.segment_days) == (18, 30)
    assert journey.touchpoints and all(journey.touchpoint(n) for n in range(1, 19))


def test_workers_urls_come_from_the_environment_and_a_wrong_one_is_named_not_shown(
    tmp_path, monkeypatch, capsys
):
    from click.testing import CliRunner

    from crm_renewals.connector.cli import main

    cfg = load_config("app.yaml")
    assert (cfg.workers.engine, cfg.workers.redis_url) == ("local", None)
    monkeypatch.setenv("RENEWALS_BROKER_URL", "amqp://guest:s3cret@127.0.0.1:5672//")
    monkeypatch.setenv("RENEWALS_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/3")
    cfg = load_config("app.yaml")
    assert cfg.workers.broker_url == "amqp://guest:s3cret@127.0.0.1:5672//"
    assert cfg.workers.redis_url == "redis://:s3cret@127.0.0.1:6379/3"

    monkeypatch.setenv("RENEWALS_REDIS_URL", "http://:s3cret@example.com/")
    result = CliRunner().invoke(main, ["--config", "app.yaml", "config", "check"])
    assert result.exit_code == 2
    assert "RENEWALS_REDIS_URL: must be a redis://" in result.output
    assert "s3cret" not in result.output


def test_workers_section_refuses_an_unknown_engine_with_its_line(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("crm: sandbox\nworkers:\n  engine: kafka\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "app.yaml:3: workers.engine" in str(err.value)
