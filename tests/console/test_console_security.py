"""Every console route's permissions through the Flask test client: signed out is sent to
the sign-in page, a viewer is refused every change, a form without its CSRF token is refused,
no page shows a secret; sign-in is throttled; the console is off until it is set up."""

from __future__ import annotations

import hashlib

import pytest

from crm_renewals.connector.config import load_config
from tests.conftest import ROOT
from tests.console.conftest import ADMIN, SECRET, VIEWER, csrf_token, post, sign_in

#: the shipped sandbox mapping (the demo book's app.yaml selects it; the demo sync used it)
_MAPPING = (ROOT / "mappings" / "sandbox.yaml").read_text()
_BASE = hashlib.sha256(_MAPPING.encode()).hexdigest()
#: every page (GET); each page's module adds its own
PAGES = ["/admin/"]
PAGES += ["/admin/runs", "/admin/runs?page=2&mode=incremental", "/admin/runs/1", "/admin/runs/live"]
PAGES += ["/admin/reports", "/admin/reports/by_owner.csv", "/admin/reports/report.csv"]
PAGES += ["/admin/settings", "/admin/audit", "/admin/audit?action=login&page=1"]
PAGES += ["/admin/contracts", "/admin/contracts?q=sterling", "/admin/contracts/800SB0000000039"]
PAGES += ["/admin/health", "/admin/health?grade=red&sort=score", "/admin/deadletters"]
PAGES += ["/admin/deadletters?all=1&kind=contract", "/admin/deadletters/1"]
PAGES += ["/admin/mappings", "/admin/mappings?tab=yaml", "/admin/mappings?tab=history"]
PAGES += [
    "/admin/mappings/edit?model=account&field=segment",
    f"/admin/mappings/versions/{_BASE[:8]}",
]
#: every form (POST path, fields) but sign-in and sign-out; each page's module adds its own
FORMS: list[tuple[str, dict]] = []
FORMS += [("/admin/doctor", {}), ("/admin/runs/start", {"command": "sync"})]
FORMS += [("/admin/deadletters/retry", {"ids": "1"})]
FORMS += [("/admin/deadletters/discard", {"ids": "1", "reason": "no longer needed"})]
FORMS += [
    ("/admin/mappings/validate", {"model": "account", "field": "segment", "base": _BASE}),
    ("/admin/mappings/preview", {"text": _MAPPING, "base": _BASE}),
    ("/admin/mappings/save", {"text": _MAPPING, "base": _BASE}),  # the file as it is: no change
]
#: secret values set in the environment of the app: none may appear on any page
SECRETS = {
    "RENEWALS_SECRET_KEY": SECRET,
    "SALESFORCE_PASSWORD": "sf-password-do-not-show",
    "SALESFORCE_SECURITY_TOKEN": "sf-token-do-not-show",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-do-not-show",
    "HUBSPOT_CLIENT_SECRET": "hs-client-secret-do-not-show",
    "SIGNALS_WEBHOOK_SECRET": "signals-secret-do-not-show",
}


@pytest.mark.parametrize("path", PAGES)
def test_a_signed_out_visitor_is_sent_to_sign_in(app, path):
    answer = app.test_client().get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_a_viewer_and_shows_no_secret(console_config, path):
    from crm_renewals.webhooks.app import create_app

    app = create_app(load_config(console_config), env=SECRETS)
    client = sign_in(app.test_client(), VIEWER)
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    text = answer.get_data(as_text=True)
    for name, value in SECRETS.items():
        assert value not in text, f"{path} shows {name}"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("path", "data"), FORMS)
def test_a_viewer_is_refused_every_change(viewer, path, data):
    assert post(viewer, path, data).status_code == 403


@pytest.mark.parametrize(("path", "data"), [*FORMS, ("/admin/logout", {})])
def test_a_form_without_its_csrf_token_is_refused(admin, path, data):
    assert admin.post(path, data=data).status_code == 400
    assert admin.post(path, data={**data, "csrf_token": "forged"}).status_code == 400


def test_sign_in_sets_a_session_cookie_that_scripts_cannot_read(app):
    client = app.test_client()
    answer = client.post(
        "/admin/login",
        data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_token(client)},
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # the whole site: /oauth/<crm>/install and callback read the console's session too
    assert "Path=/" in [part.strip() for part in cookie.split(";")]
    assert "Secure" not in cookie  # plain http on loopback
    https, site = app.test_client(), "https://renewals.example.com"
    page = https.get("/admin/login", base_url=site).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = https.post(
        "/admin/login",
        data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": token},
        base_url=site,
        headers={"Referer": f"{site}/admin/login"},  # checked over https (Flask-WTF)
    )
    assert "Secure" in answer.headers["Set-Cookie"]


def test_a_wrong_password_is_refused_and_sign_in_is_throttled(app):
    client = app.test_client()
    for _ in range(5):
        answer = client.post(
            "/admin/login",
            data={"email": ADMIN[0], "password": "not it at all", "csrf_token": csrf_token(client)},
        )
        assert answer.status_code == 401
        assert "Wrong email or password" in answer.get_data(as_text=True)
    answer = client.post(
        "/admin/login",
        data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.get_data(as_text=True)
    store = app.extensions["console"].store
    actions = [e.action for e in store.audit.list()]
    assert actions.count("login.failed") == 5 and "login" not in actions


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_the_console(app):
    client = app.test_client()
    login = "/admin/login?next=/admin/runs"
    answer = client.post(
        login, data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_token(client)}
    )
    assert answer.headers["Location"] == "/admin/runs"
    client = app.test_client()
    answer = client.post(
        "/admin/login?next=https://evil.example.com/admin/",
        data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_token(client)},
    )
    assert answer.headers["Location"] == "/admin/"


def test_a_removed_user_is_signed_out_at_the_next_request(app, admin):
    from crm_renewals.connector.services.users import remove_user

    assert admin.get("/admin/").status_code == 200
    remove_user(app.extensions["console"].store, ADMIN[0], "test")
    assert admin.get("/admin/").status_code == 302


def test_sign_out_ends_the_session(admin):
    assert post(admin, "/admin/logout").status_code == 302
    assert admin.get("/admin/").status_code == 302


def test_the_console_is_off_without_a_secret_key(console_config):
    from crm_renewals.webhooks.app import create_app

    app = create_app(load_config(console_config), env={})
    answer = app.test_client().get("/admin/")
    assert answer.status_code == 404
    assert "RENEWALS_SECRET_KEY is not set" in answer.get_data(as_text=True)


def test_the_console_is_off_until_a_user_exists(tmp_path):
    from crm_renewals.webhooks.app import create_app
    from tests.conftest import write_config

    app = create_app(load_config(write_config(tmp_path)), env={"RENEWALS_SECRET_KEY": SECRET})
    answer = app.test_client().get("/admin/login")
    assert answer.status_code == 404
    assert "renewals users add" in answer.get_data(as_text=True)
    # the webhooks answer as usual: the console being off changes nothing for them
    webhook = app.test_client().post("/webhooks/signals", data=b"{}")
    assert webhook.status_code == 401
    assert webhook.get_json() == {"error": "signals secret not configured"}
