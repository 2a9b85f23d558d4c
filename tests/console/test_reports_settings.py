"""The Reports, Settings and Audit pages over the seeded demo book, through the Flask test
client: the report page shows what `renewals report` prints (its charts drawn from the same
figures), each table downloads as the CLI's CSV rows; settings shows the effective app.yaml
and the doctor checks but no secret; the audit page lists who did what."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import AS_OF, cli_for

SVG = "{http://www.w3.org/2000/svg}"
DAY = AS_OF.isoformat()


@pytest.fixture
def cli(console_config):
    """`renewals --config <this test's app.yaml> ...`, in-process."""
    return cli_for(console_config)


@pytest.fixture
def cli_report(cli) -> dict:
    """What `renewals report --as-of AS_OF --json` prints for this book."""
    return json.loads(cli("report", "--as-of", DAY, "--json").output)


def chart(page: str, chart_id: str) -> ET.Element:
    """One chart's SVG, parsed."""
    found = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', page, re.S)
    assert found, f"no {chart_id} on the page"
    return ET.fromstring(found.group(0))


def marks(svg: ET.Element, tag: str = "rect", cls: str = "bar") -> list[dict]:
    return [e.attrib for e in svg.iter(f"{SVG}{tag}") if e.get("class") == cls]


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, as the text of their cells."""
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no {table_id} on the page"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]


def test_the_report_page_draws_renewals_coming_due_by_month_and_health(admin, cli_report):
    page = admin.get(f"/admin/reports?as_of={DAY}").get_data(as_text=True)
    svg = chart(page, "chart-coming-due")
    bars = marks(svg)
    assert {b["data-series"] for b in bars} <= {"green", "yellow", "red", "no grade"}
    for month in cli_report["coming_due"]:
        mine = [b for b in bars if b["data-key"] == month["month"]]
        assert sum(int(b["data-value"]) for b in mine) == month["contracts"], month
        for grade, n in month["health"].items():
            shown = [
                b for b in mine if b["data-series"] == ("no grade" if grade == "unknown" else grade)
            ]
            assert sum(int(b["data-value"]) for b in shown) == n
    totals = {
        t.get("data-key"): t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "total"
    }
    assert totals == {m["month"]: str(m["contracts"]) for m in cli_report["coming_due"]}
    legend = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"green", "yellow", "red", "no grade"} <= set(legend)


def test_the_report_page_draws_rates_retention_reasons_and_migration(admin, cli_report):
    page = admin.get(f"/admin/reports?as_of={DAY}").get_data(as_text=True)
    rates = marks(chart(page, "chart-rates"))
    for row in cli_report["periods"]:
        mine = {b["data-series"]: b["data-value"] for b in rates if b["data-key"] == row["period"]}
        expected = {
            name: f"{row[key] * 100:.0f}%"
            for name, key in (("renewal rate", "renewal_rate"), ("churn", "churn_rate"))
            if row[key] is not None
        }
        assert mine == expected, row["period"]
    assert rates, "the demo book has decided renewals"
    points = marks(chart(page, "chart-retention"), "circle", "point")
    grr = {p["data-key"]: p["data-value"] for p in points if p["data-series"] == "gross (GRR)"}
    assert grr == {
        r["period"]: f"{r['gross_revenue_retention'] * 100:.0f}%"
        for r in cli_report["periods"]
        if r["gross_revenue_retention"] is not None
    }
    reasons = marks(chart(page, "chart-reasons"))
    assert [(b["data-key"], int(b["data-value"])) for b in reasons] == list(
        cli_report["non_renewal_reasons"].items()
    )
    cells = marks(chart(page, "chart-migration"), "rect", "cell")
    matrix = cli_report["segment_migration"]["matrix"]
    targets = {dst for row in matrix.values() for dst in row}
    assert len(cells) == len(matrix) * len(targets)
    for cell in cells:
        assert int(cell["data-value"]) == matrix[cell["data-from"]].get(cell["data-to"], 0)
    assert 'style="' not in "".join(re.findall(r"<svg .*?</svg>", page, re.S))


def test_the_by_owner_table_shows_the_clis_by_owner_figures_with_names(admin, cli_report):
    page = admin.get(f"/admin/reports?as_of={DAY}").get_data(as_text=True)
    rows = table_rows(page, "by-owner-table")
    expected = [
        [
            r["owner"],
            str(r["due"]),
            str(r["renewed"]),
            str(r["lost"]),
            str(r["open"]),
            f"{r['value']:,.2f}",
        ]
        for r in cli_report["by_owner"]
    ]
    assert [row[:6] for row in rows] == expected
    assert len(rows) > 3 and not any(row[0].startswith("005") for row in rows)


@pytest.mark.parametrize(
    "table",
    ["retention", "coming_due", "non_renewal_reasons", "segment_migration", "health", "by_owner"],
)
def test_each_table_downloads_as_the_clis_csv_rows(admin, cli, table):
    answer = admin.get(f"/admin/reports/{table}.csv?as_of={DAY}&period=month")
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert len(rows) > 1 and {r[0] for r in rows[1:]} == {table}
    printed = cli("report", "--as-of", DAY, "--period", "month", "--csv").output
    assert rows[1:] == [r for r in csv.reader(io.StringIO(printed)) if r[0] == table]


def test_every_table_at_once_is_the_clis_csv(admin, cli):
    answer = admin.get(f"/admin/reports/report.csv?as_of={DAY}&from=2026-08-01")
    assert (
        answer.get_data(as_text=True)
        == cli("report", "--as-of", DAY, "--from", "2026-08-01", "--csv").output
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=week", "period must be one of month, quarter, year"),
        ("from=2026-13-01", "is not a date (YYYY-MM-DD)"),
        ("to=yesterday", "is not a date (YYYY-MM-DD)"),
        ("as_of=0001-01-01", "out of range"),
        ("from=2026-12-01&to=2026-01-01", "is after to"),
        (f"as_of={DAY}&from=2027-01-01", "is after to"),
    ],
)
def test_a_bad_period_or_date_is_refused_with_the_reason(admin, query, message):
    answer = admin.get(f"/admin/reports?{query}")
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True)
    assert 'id="report-options"' in answer.get_data(as_text=True)  # the form, to fix it
    csv_answer = admin.get(f"/admin/reports/by_owner.csv?{query}")
    assert csv_answer.status_code == 400 and message in csv_answer.get_data(as_text=True)


def test_an_unknown_table_is_not_found(admin):
    answer = admin.get("/admin/reports/passwords.csv")
    assert answer.status_code == 404
    assert "by_owner" in answer.get_data(as_text=True)


def reasons_drawn(client) -> dict[str, int]:
    page = client.get(f"/admin/reports?as_of={DAY}").get_data(as_text=True)
    return {b["data-key"]: int(b["data-value"]) for b in marks(chart(page, "chart-reasons"))}


def test_a_renewal_lost_in_the_crm_shows_once_a_sync_has_read_it(app, admin, cli):
    from crm_renewals.connector.adapters.sandbox import SandboxCrm
    from crm_renewals.connector.domain.reports import outcomes
    from crm_renewals.connector.mapping_file import load_mapping
    from crm_renewals.connector.services.gather import load_book

    before = reasons_drawn(admin)
    state = app.extensions["console"]
    book = load_book(state.store)
    due = {o.contract_id for o in outcomes(book, state.config.renewals) if o.status == "open"}
    renewal_id = next(
        rid for rid, r in book.renewals.items() if r.contract_id in due and r.close_date <= AS_OF
    )
    crm = SandboxCrm(state.config.sandbox_path, load_mapping(state.config.mapping_path))
    crm.edit(
        "Opportunity", renewal_id, {"StageName": "Closed Lost", "Loss_Reason__c": "Budget cut"}
    )
    crm.close()
    assert reasons_drawn(admin) == before  # the synced data has not changed yet
    assert cli("sync", "--as-of", DAY).exit_code in (0, 1)  # 1: the demo's broken records
    assert reasons_drawn(admin) == {**before, "Budget cut": before.get("Budget cut", 0) + 1}


# ------------------------------------------------------------------ settings


def settings_page(config_path, env: dict | None = None) -> str:
    from crm_renewals.connector.config import load_config
    from crm_renewals.webhooks.app import create_app
    from tests.console.conftest import SECRET, VIEWER, sign_in

    app = create_app(load_config(config_path), env=env or {"RENEWALS_SECRET_KEY": SECRET})
    try:
        answer = sign_in(app.test_client(), VIEWER).get("/admin/settings")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
        return answer.get_data(as_text=True)
    finally:
        app.extensions["console"].close()
        app.extensions["renewals"].store.close()


def test_settings_shows_which_secrets_are_set_but_never_a_value(console_config):
    from tests.console.test_console_security import SECRETS

    page = settings_page(console_config, SECRETS)
    shown = {row[0]: row[1] for row in table_rows(page, "secrets-table")}
    assert shown == {name: "set" if name in SECRETS else "unset" for name in shown}
    assert shown["SALESFORCE_PASSWORD"] == "set" and shown["SALESFORCE_SESSION_ID"] == "unset"
    for name, value in SECRETS.items():
        assert value not in page, name


def test_settings_masks_a_database_password_in_the_state_url(console_config):
    from tests.conftest import write_config

    folder = console_config.parent
    url = f"sqlite:///file:{folder}/data/state.db?mode=rwc&uri=true&password=db-pass-do-not-show"
    page = settings_page(write_config(folder, state={"url": url}))
    assert "db-pass-do-not-show" not in page
    assert "password=***" in page
    assert "state database" in page and 'id="config-yaml"' in page


def test_settings_shows_the_effective_config_the_console_and_its_users(console_config):
    page = settings_page(console_config)
    yaml_text = re.search(r'<pre id="config-yaml">(.*?)</pre>', page, re.S).group(1)
    for section in ("crm: sandbox", "renewals:", "scorecard:", "schedule:", "console:"):
        assert section in yaml_text
    assert "daily_renewal_scan:" in yaml_text  # the jobs' default schedules, filled in
    users = {row[0]: row[1] for row in table_rows(page, "users-table")}
    assert users == {"admin@example.com": "admin", "viewer@example.com": "viewer"}
    console_rows = table_rows(page, "console-settings")
    assert any("8" in cells[-1] and "hours" in cells[-1] for cells in console_rows)


def test_settings_lists_the_doctor_checks_with_pass_badges(console_config):
    page = settings_page(console_config)
    checks = table_rows(page, "doctor-table")
    assert len(checks) > 10
    assert checks[0][:2] == ["sandbox database", "pass"]
    assert all(cells[1] == "pass" for cells in checks)
    assert 'action="/admin/doctor"' not in page  # a viewer is not offered "Check again"


def test_settings_checks_the_alert_targets_as_renewals_doctor_does(console_config):
    from tests.conftest import write_config
    from tests.console.conftest import SECRET

    targets = {"targets": ["RENEWALS_NOTIFY_SLACK", "RENEWALS_NOTIFY_EMAIL"]}
    config = write_config(console_config.parent, notify=targets)
    env = {"RENEWALS_SECRET_KEY": SECRET, "RENEWALS_NOTIFY_SLACK": "slack://T000/B000/XYZ123"}
    checks = {
        cells[0]: cells[1] for cells in table_rows(settings_page(config, env), "doctor-table")
    }
    assert checks["alert target RENEWALS_NOTIFY_SLACK"] == "pass"
    assert checks["alert target RENEWALS_NOTIFY_EMAIL"] == "fail"


def test_an_admin_may_check_the_crm_again_from_settings(admin):
    page = admin.get("/admin/settings").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/admin/doctor".*?</form>', page, re.S).group(0)
    assert 'name="next" value="/admin/settings"' in form and 'name="csrf_token"' in form


def test_settings_says_why_the_crm_cannot_be_reached(console_config, monkeypatch):
    from tests.conftest import ROOT, write_config

    for name in [n for n in os.environ if n.startswith("SALESFORCE_")]:
        monkeypatch.delenv(name)
    salesforce = write_config(
        console_config.parent, crm="salesforce", mapping=str(ROOT / "mappings" / "salesforce.yaml")
    )
    page = settings_page(salesforce)
    assert "cannot connect" in page
    assert "SALESFORCE_USERNAME" in re.search(r'id="doctor-error">(.*?)</p>', page, re.S).group(1)


def test_config_show_prints_the_effective_config_and_secrets_as_set_or_unset(console_config):
    from click.testing import CliRunner

    from crm_renewals.connector.cli import main

    env = {"HUBSPOT_ACCESS_TOKEN": "pat-na1-do-not-show", "SALESFORCE_PASSWORD": ""}
    args = ["--config", str(console_config), "config", "show"]
    shown = CliRunner().invoke(main, [*args, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["secrets"]["HUBSPOT_ACCESS_TOKEN"] is True
    assert data["secrets"]["SALESFORCE_PASSWORD"] is False
    assert (
        data["config"]["crm"] == "sandbox"
        and "daily_renewal_scan" in data["config"]["schedule"]["jobs"]
    )
    text = CliRunner().invoke(main, args, env=env).output
    assert "pat-na1-do-not-show" not in text and "pat-na1-do-not-show" not in shown.output
    assert "HUBSPOT_ACCESS_TOKEN" in text and "renewals:" in text


def test_config_show_lists_the_alert_targets_among_the_secrets(tmp_path):
    from click.testing import CliRunner

    from crm_renewals.connector.cli import main
    from tests.conftest import write_config

    targets = ["RENEWALS_NOTIFY_SLACK", "RENEWALS_NOTIFY_EMAIL"]
    config = write_config(tmp_path, notify={"targets": targets})
    env = {"RENEWALS_NOTIFY_SLACK": "slack://T000/B000/do-not-show-this-token"}
    args = ["--config", str(config), "config", "show"]
    shown = CliRunner().invoke(main, [*args, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    secrets = json.loads(shown.output)["secrets"]
    assert secrets["RENEWALS_NOTIFY_SLACK"] is True
    assert secrets["RENEWALS_NOTIFY_EMAIL"] is False
    text = CliRunner().invoke(main, args, env=env).output
    assert "RENEWALS_NOTIFY_EMAIL" in text
    assert "do-not-show-this-token" not in text + shown.output


# ------------------------------------------------------------------ audit


def test_the_audit_log_shows_a_sign_in_and_a_user_added_with_the_cli(admin, console_config):
    from click.testing import CliRunner

    from crm_renewals.connector.cli import main

    added = CliRunner().invoke(
        main,
        ["--config", str(console_config), "users", "add", "new@example.com", "--role", "viewer"]
        + ["--password-stdin"],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    page = admin.get("/admin/audit").get_data(as_text=True)
    rows = table_rows(page, "audit-table")
    who, what, target, said = rows[0][1:]
    assert who.startswith("cli") and what.startswith("added a console user")
    assert (target, said) == ("new@example.com", "role viewer")
    signed_in = [r for r in rows if r[1] == "admin@example.com" and r[2].startswith("signed in")]
    assert signed_in and signed_in[0][3] == "127.0.0.1"


def test_the_audit_log_filters_by_who_and_action_and_pages(app, admin):
    store = app.extensions["console"].store
    for i in range(60):
        store.audit.record("cli:ops", "run.sync", f"run {i}", {"pid": 1000 + i})
    page = admin.get("/admin/audit?actor=admin@example.com&action=login").get_data(as_text=True)
    rows = table_rows(page, "audit-table")
    assert rows and all(r[1] == "admin@example.com" and r[2].startswith("signed in") for r in rows)
    first = table_rows(admin.get("/admin/audit?action=run").get_data(as_text=True), "audit-table")
    assert len(first) == 50 and first[0][3:] == ["run 59", "pid 1059"]
    second = admin.get("/admin/audit?action=run&page=2").get_data(as_text=True)
    assert [r[3] for r in table_rows(second, "audit-table")] == [
        f"run {i}" for i in range(9, -1, -1)
    ]
    assert "page 2 of 2" in second and "action=run" in second.split('rel="prev"')[0]


@pytest.mark.parametrize("page", ["0", "abc", "-1", "1.5"])
def test_a_bad_audit_page_number_is_refused(admin, page):
    answer = admin.get(f"/admin/audit?page={page}")
    assert answer.status_code == 400
    assert "page must be a whole number" in answer.get_data(as_text=True)
