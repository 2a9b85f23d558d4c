"""Alert targets and sending (connector/services/notify.py): Apprise URLs from the environment,
a loopback JSON hook and a local SMTP server as the receivers; `notify:` in app.yaml; the
notices that remember what was sent."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from click.testing import CliRunner

from crm_renewals.connector.cli import main
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import NotifySettings
from crm_renewals.connector.inbox import event_row, signal_event
from crm_renewals.connector.services import alerts
from crm_renewals.connector.services.notify import Message, checks, send
from crm_renewals.connector.state import DONE, StateStore, now
from tests.conftest import write_config
from tests.e2e.alert_sinks import HANG, Hook, Mailbox, free_port

TOKEN = "XOXB7c4f2e9a1d"
MESSAGE = Message(
    "crm-renewals: run 7 failed", "Run 7 ended failed.\nDetails: renewals runs --id 7"
)
#: the URL shapes of the README's examples (made-up tokens)
SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#renewals"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
TEAMS = "workflows://prod-05.westeurope.logic.azure.com:443/a1b2c3d4e5f6/Sig-nature_123"
TEAMS_WEBHOOK = (
    "https://prod-05.westeurope.logic.azure.com:443/workflows/a1b2c3d4e5f6/triggers/manual/paths"
    "/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Sig-nature_123"
)
EMAIL = "mailtos://alerts:app-password@smtp.example.com?to=ops@example.com"


def settings(*names: str, timeout: float = 10) -> NotifySettings:
    return NotifySettings(targets=names, timeout_seconds=timeout)


def test_a_message_reaches_a_json_hook_with_its_title_body_and_type():
    with Hook() as hook:
        env = {"RENEWALS_NOTIFY_HOOK": hook.url(TOKEN)}
        delivery = send(settings("RENEWALS_NOTIFY_HOOK"), MESSAGE, env)
    assert (delivery.sent, delivery.failed) == (["RENEWALS_NOTIFY_HOOK"], {})
    (post,) = hook.posts
    assert (post["title"], post["type"], post["path"]) == (
        MESSAGE.title,
        "warning",
        f"/hook/{TOKEN}",
    )
    assert post["message"] == MESSAGE.body


def test_an_email_goes_through_a_local_smtp_server_with_its_login():
    with Mailbox() as box:
        env = {"RENEWALS_NOTIFY_EMAIL": box.url("alerts", "s3cret-pass")}
        delivery = send(settings("RENEWALS_NOTIFY_EMAIL"), MESSAGE, env)
    assert delivery.sent == ["RENEWALS_NOTIFY_EMAIL"]
    assert box.logins == [("alerts", "s3cret-pass")]
    ((sender, to, text),) = box.mails
    assert (sender, to) == ("renewals@example.com", ["ops@example.com"])
    assert f"Subject: {MESSAGE.title}" in text and "Details: renewals runs --id 7" in text


@pytest.mark.parametrize("url", [SLACK, SLACK_WEBHOOK, TEAMS, TEAMS_WEBHOOK, EMAIL])
def test_slack_teams_and_email_url_shapes_are_usable(url):
    (check,) = checks(settings("RENEWALS_NOTIFY_X"), {"RENEWALS_NOTIFY_X": url})
    assert check.ok, check.detail


def test_an_unset_variable_or_a_url_apprise_cannot_use_is_one_line_each():
    env = {"RENEWALS_NOTIFY_B": "slak://T1/B2/C3", "RENEWALS_NOTIFY_C": "hooks.slack.com/x"}
    names = ("RENEWALS_NOTIFY_A", "RENEWALS_NOTIFY_B", "RENEWALS_NOTIFY_C")
    found = {c.name: c for c in checks(settings(*names), env)}
    assert found["alert target RENEWALS_NOTIFY_A"].detail == "not set"
    assert found["alert target RENEWALS_NOTIFY_B"].detail.startswith(
        "Apprise cannot use this slak:// URL"
    )
    assert found["alert target RENEWALS_NOTIFY_C"].detail.startswith("not a URL")
    assert not any(c.ok for c in found.values()) and all(
        "\n" not in c.detail for c in found.values()
    )
    delivery = send(settings(*names), MESSAGE, env)  # at run time: said, never raised
    assert sorted(delivery.failed) == list(names) and delivery.sent == []


def test_targets_that_refuse_fail_alone_and_their_tokens_stay_out_of_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    closed = f"json://127.0.0.1:{free_port()}/hook/{TOKEN}C"
    with Hook() as good, Hook(500) as refusing:
        env = {
            "RENEWALS_NOTIFY_GOOD": good.url(TOKEN + "G"),
            "RENEWALS_NOTIFY_REFUSES": refusing.url(TOKEN + "R"),
            "RENEWALS_NOTIFY_CLOSED": closed,
        }
        delivery = send(settings(*env), MESSAGE, env)
    assert delivery.sent == ["RENEWALS_NOTIFY_GOOD"] and len(good.posts) == 1
    assert "error=500" in delivery.failed["RENEWALS_NOTIFY_REFUSES"]
    assert "127.0.0.1" in delivery.failed["RENEWALS_NOTIFY_CLOSED"]
    # Apprise's logger passes nothing on: pytest hooks into it anyway, so it is left out here
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "apprise")
    assert "not sent to RENEWALS_NOTIFY_REFUSES" in logged
    assert TOKEN not in logged and TOKEN not in str(delivery.as_dict())


def test_a_target_that_never_answers_is_given_up_after_the_timeout():
    with Hook(HANG) as hanging:
        env = {"RENEWALS_NOTIFY_SLOW": hanging.url(TOKEN)}
        delivery = send(settings("RENEWALS_NOTIFY_SLOW", timeout=0.5), MESSAGE, env)
    assert delivery.failed == {"RENEWALS_NOTIFY_SLOW": "no answer within 0.5 s"}


def test_notify_settings_errors_name_their_key_path(tmp_path):
    path = write_config(
        tmp_path,
        notify={
            "targets": ["SLACK_WEBHOOK", "RENEWALS_NOTIFY_ops"],
            "red_digest_at": "8am",
            "dead_letters_over": -1,
        },
    )
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "notify.targets: 'SLACK_WEBHOOK': name an environment variable starting with" in text
    assert "notify.red_digest_at: '8am': give a time of day as HH:MM" in text
    assert "notify.dead_letters_over" in text and "Traceback" not in text


def test_an_unquoted_time_of_day_reads_as_written():
    assert NotifySettings(red_digest_at=750).red_digest_at == "12:30"  # YAML 1.1: 12:30 -> 750
    assert NotifySettings(targets=["RENEWALS_NOTIFY_A"], red_digest_at="07:05").digest_time() == (
        7,
        5,
    )
    assert NotifySettings(red_digest_at="07:05").digest_time() is None  # no targets: off


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")  # skips, saying why, without PostgreSQL


def test_an_episode_is_opened_once_until_it_is_closed_whichever_process_asks(state_url):
    store, other = StateStore(state_url), StateStore(state_url)  # two processes' engines
    try:
        assert store.notices.open("dead_letters", {"count": 51})
        assert not other.notices.open("dead_letters", {"count": 60})  # the same episode
        assert other.notices.close("dead_letters") and not store.notices.close("dead_letters")
        assert other.notices.open("dead_letters", {"count": 52})  # a new crossing
        assert not store.notices.open("dead_letters", {"count": 52})
        store.notices.note("dead_letters", {"count": 52, "delivery": {"sent": ["X"]}})
        notice = other.notices.get("dead_letters")
        assert notice.closed_at is None and notice.detail["delivery"] == {"sent": ["X"]}
        assert store.notices.last("dead_") == notice and store.notices.last("red_") is None
    finally:
        store.close()
        other.close()


def test_an_inbox_that_waits_alerts_once_per_episode(tmp_path, monkeypatch):
    with Hook() as hook:
        monkeypatch.setenv("RENEWALS_NOTIFY_HOOK", hook.url(TOKEN))
        notify = {"targets": ["RENEWALS_NOTIFY_HOOK"], "inbox_wait_minutes": 5}
        config = load_config(write_config(tmp_path, notify=notify))
        store = StateStore(config.state_url)
        try:
            late = now() - timedelta(minutes=30)
            store.inbox.add([event_row(signal_event("001A"), late)])
            assert alerts.check(config, store) == [alerts.INBOX_WAIT]
            assert alerts.check(config, store) == []  # still waiting: the same episode
            (event,) = store.inbox.due(now(), 1)
            store.inbox.settle([event.id], DONE, now(), None)
            assert alerts.check(config, store) == []  # drained: the episode ends
            store.inbox.add([event_row(signal_event("001B"), late)])
            assert alerts.check(config, store) == [alerts.INBOX_WAIT]
        finally:
            store.close()
    assert hook.titles() == ["crm-renewals: webhook inbox waiting 30 minutes"] * 2
