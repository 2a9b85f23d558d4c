"""Issue 19's browser tests: in headless Chromium against a real `renewals serve` with three
connections (the demo book as `default`, a small sandbox book `beta`, a HubSpot connection
`acme` needing reconnect), the header's switcher shows each one's own data, and the
Connections page has its buttons: Connect forms that go to /oauth/<crm>/install (and on to
the CRM's authorisation page: the page's CSP lets the form's redirect through), Reconnect."""

from __future__ import annotations

import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser.conftest import add_admin, serve_env, serving, signed_in_page
from tests.conftest import AS_OF, write_config
from tests.e2e.test_crash import renewals_cli

BETA_CONTRACTS = 5


class _AuthorizePage(BaseHTTPRequestHandler):
    """A stand-in for HubSpot's authorisation page, on loopback: it notes what was asked."""

    asked: list[str] = []

    def do_GET(self):  # noqa: N802 (the http.server name)
        self.asked.append(self.path)
        body = b"<!doctype html><title>authorise</title><h1>Authorise the app</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


@pytest.fixture(scope="module")
def authorize_page():
    """The authorisation page's URL (oauth.hubspot_authorize_url of the served app.yaml)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthorizePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth/authorize"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, authorize_page):
    """`renewals serve` over two sandbox books and a HubSpot connection needing reconnect."""
    folder = tmp_path_factory.mktemp("browser-connections")
    config = write_config(folder, oauth={"hubspot_authorize_url": authorize_page})
    cli = [*renewals_cli(), "--config", str(config)]
    env = serve_env(folder)
    at = ["--as-of", AS_OF.isoformat()]

    def run(*args: str, **kw) -> None:
        subprocess.run([*cli, *args], check=True, capture_output=True, env=env, **kw)

    run("demo", *at)
    add_admin(cli, env)
    run("connections", "add", "beta", "--crm", "sandbox")
    run("sandbox", "seed", "--seed", "5", "--accounts", "3", "--contracts", str(BETA_CONTRACTS),
        *at, "--connection", "beta")  # fmt: skip
    run("sync", *at, "--connection", "beta")
    _needs_reconnect(config, "acme")
    with serving(cli, env, folder) as base:
        yield base


def _needs_reconnect(config, name: str) -> None:
    from crm_renewals.connector import bootstrap, connections

    base = bootstrap.load_base(str(config))
    registry = bootstrap.open_registry(base)
    try:
        row = connections.new_row(name, "hubspot", "oauth", "needs_reconnect", "test")
        registry.connections.save(
            row.replace(external_id="4242", status_reason="the refresh token was revoked")
        )
    finally:
        registry.close()


@pytest.fixture(scope="module")
def admin_page(browser, served):
    with signed_in_page(browser, served) as watched:
        yield watched


def _contracts(page) -> int:
    found = re.search(r"(\d+) contracts?", page.inner_text("main"))
    assert found, page.inner_text("main")[:500]
    return int(found.group(1))


def _switch_to(page, name: str) -> None:
    page.click("#current-connection")  # opens the switcher (a <details>: no script)
    with page.expect_navigation():
        page.click(f"#connection-switcher a[data-connection={name}]")


def test_the_switcher_shows_each_connections_own_data(admin_page, shots):
    page = admin_page.page
    page.goto("/admin/contracts")
    assert page.get_attribute("#current-connection", "data-connection") == "default"
    many = _contracts(page)
    assert many > BETA_CONTRACTS
    page.click("#current-connection")
    acme = page.inner_text("#connection-switcher a[data-connection=acme]")
    assert "HubSpot" in acme and "needs reconnect" in acme
    page.screenshot(path=str(shots / "switcher.png"))
    with page.expect_navigation():
        page.click("#connection-switcher a[data-connection=beta]")
    assert page.url.endswith("/admin/contracts")  # the same section, of the other connection
    assert page.get_attribute("#current-connection", "data-connection") == "beta"
    assert _contracts(page) == BETA_CONTRACTS
    page.click("nav a:has-text('Runs')")  # the choice holds from page to page
    page.wait_for_url(re.compile(r".*/admin/runs\?connection=beta$"))
    assert page.locator("main table a[href*='/admin/runs/']").count() == 1
    _switch_to(page, "acme")
    assert "needs reconnecting" in page.inner_text("#connection-banner")
    _switch_to(page, "default")
    page.goto("/admin/contracts")
    assert _contracts(page) == many
    admin_page.clean()


def test_the_connections_page_has_its_buttons(admin_page, shots):
    page = admin_page.page
    page.goto("/admin/connections")
    assert page.locator("#connections-table tbody tr").count() == 3
    for crm, label in (("hubspot", "HubSpot"), ("salesforce", "Salesforce")):
        form = page.locator(f"#connect-{crm}")
        assert form.get_attribute("action") == f"/oauth/{crm}/install"
        assert form.get_attribute("method") == "get"
        assert form.locator("button").inner_text() == f"Connect {label}"
    reconnect = page.locator("#reconnect-acme")
    assert reconnect.get_attribute("href") == "/oauth/hubspot/install?connection=acme"
    assert page.locator("#remove-beta").is_visible()
    assert page.locator("#reconnect-beta").count() == 0
    row = page.inner_text("#connections-table tr[data-connection=acme]")
    assert "4242" in row and "the refresh token was revoked" in row
    page.screenshot(path=str(shots / "connections.png"), full_page=True)
    admin_page.clean()


def test_connect_goes_to_the_install_route_and_on_to_the_crm(admin_page, authorize_page):
    """The install route (h-oauth's) is stood in for: what matters here is the request the
    form makes, and that the browser follows its redirect to the CRM's authorisation page
    (a form's redirects are held to the page's CSP form-action)."""
    page = admin_page.page
    asked = []

    def install(route):
        asked.append(route.request.url)
        route.fulfill(status=302, headers={"Location": f"{authorize_page}?client_id=x&state=y"})

    page.route("**/oauth/hubspot/install*", install)
    try:
        for name, query in (("newco", "?connection=newco"), ("", "")):
            page.goto("/admin/connections")
            page.fill("#connect-hubspot input[name=connection]", name)
            with page.expect_navigation(url=re.compile(re.escape(authorize_page))):
                page.click("#connect-hubspot button")
            # no name: the field is left out (console.js), not sent empty
            assert asked[-1].rstrip("?").endswith(f"/oauth/hubspot/install{query}")
            assert page.inner_text("h1") == "Authorise the app"
    finally:
        page.unroute("**/oauth/hubspot/install*")
    assert _AuthorizePage.asked == ["/oauth/authorize?client_id=x&state=y"] * 2
    admin_page.clean()
