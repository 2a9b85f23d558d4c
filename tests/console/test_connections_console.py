"""The console across connections: the switcher and ?connection= show each connection's own
runs and contracts (two sandbox connections seeded differently), an unknown name is a 404,
actions act on the connection the page showed, and the Connections page with its buttons
and permissions (viewer, admin, signed out)."""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.cli import main
from crm_renewals.connector.connections import NEEDS_RECONNECT, PENDING
from crm_renewals.connector.services import connections as service
from crm_renewals.connector.state import StateStore
from tests.conftest import AS_OF, write_config
from tests.console.conftest import ADMIN, SECRET, VIEWER, console_app, csrf_token, post, sign_in

#: the second connection's book: a handful of contracts (the default's demo book has 260)
BETA_CONTRACTS = 7


def page(answer) -> str:
    return unescape(answer.get_data(as_text=True))


def cli(config: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def two_books(demo_book: Path, tmp_path_factory) -> Path:
    """The demo book (connection `default`) and a connection `beta`: another sandbox seeded
    with another seed and a smaller book, synced once."""
    folder = tmp_path_factory.mktemp("two-books")
    shutil.copytree(demo_book / "data", folder / "data")
    config = write_config(folder)
    base = bootstrap.load_base(str(config))
    registry = bootstrap.open_registry(base)
    try:
        service.add(base, registry, "beta", "sandbox", "test")
    finally:
        registry.close()
    at = AS_OF.isoformat()
    cli(config, "sandbox", "seed", "--seed", "99", "--accounts", "4", "--as-of", at,
        "--contracts", str(BETA_CONTRACTS), "--connection", "beta")  # fmt: skip
    cli(config, "sync", "--as-of", at, "--connection", "beta")
    return folder


@pytest.fixture
def two_config(two_books: Path, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(connections.CONNECTION_ENV, raising=False)
    shutil.copytree(two_books / "data", tmp_path / "data")
    return write_config(tmp_path)


@pytest.fixture
def app2(two_config: Path):
    with console_app(bootstrap.load(str(two_config)), {"RENEWALS_SECRET_KEY": SECRET}) as made:
        yield made


@pytest.fixture
def admin2(app2):
    return sign_in(app2.test_client(), ADMIN)


@pytest.fixture
def viewer2(app2):
    return sign_in(app2.test_client(), VIEWER)


def beta_store(config: Path) -> StateStore:
    return bootstrap.open_store(bootstrap.load(str(config), "beta"))


def runs_on(html: str) -> set[str]:
    return set(re.findall(r'href="/admin/runs/(\d+)', html))


def contract_total(html: str) -> int:
    found = re.search(r"(\d+) contracts?", html)
    assert found, html[-2000:]
    return int(found.group(1))


# ---- the switcher and ?connection= -------------------------------------------------


def test_contracts_and_runs_pages_show_the_connection_asked_for(admin2, two_config):
    default = page(admin2.get("/admin/contracts"))
    beta = page(admin2.get("/admin/contracts?connection=beta"))
    assert contract_total(beta) == BETA_CONTRACTS
    assert contract_total(default) > BETA_CONTRACTS
    store = beta_store(two_config)
    try:
        beta_runs = {str(r.id) for r in store.runs.list(50)}
    finally:
        store.close()
    runs_default = runs_on(page(admin2.get("/admin/runs")))
    runs_beta = runs_on(page(admin2.get("/admin/runs?connection=beta")))
    assert runs_beta == beta_runs == {"1"}  # one sync of its own; the default has the demo's
    assert len(runs_default) >= 2


def test_the_switcher_keeps_the_choice_in_the_session_and_returns_to_the_section(admin2):
    before = page(admin2.get("/admin/runs/1"))
    assert 'data-connection="default"' in before
    answer = admin2.get("/admin/connections/switch?connection=beta&next=/admin/runs/1")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/runs")
    assert contract_total(page(admin2.get("/admin/contracts"))) == BETA_CONTRACTS
    html = page(admin2.get("/admin/"))
    assert re.search(r'id="current-connection" data-connection="beta"', html)
    admin2.get("/admin/connections/switch?connection=default&next=/admin/contracts")
    assert contract_total(page(admin2.get("/admin/contracts"))) > BETA_CONTRACTS


def test_links_and_forms_keep_the_connection_when_there_are_several(admin2):
    html = page(admin2.get("/admin/runs?connection=beta"))
    nav = re.findall(r'href="(/admin/[a-z]*)\?connection=beta"', html)
    assert {"/admin/contracts", "/admin/health", "/admin/audit"} <= set(nav)
    html = page(admin2.get("/admin/contracts?connection=beta"))
    form = html[html.index('id="contract-search"') :]
    assert '<input type="hidden" name="connection" value="beta">' in form[:600]
    overview = page(admin2.get("/admin/?connection=beta"))
    assert 'action="/admin/runs/start?connection=beta"' in overview


def test_a_single_connection_deployment_keeps_its_plain_urls(admin):
    html = page(admin.get("/admin/runs"))
    assert 'id="current-connection" data-connection="default"' in html
    switcher = html.index('id="connection-switcher"'), html.index("</details>")
    html = html[: switcher[0]] + html[switcher[1] :]  # the switcher's own links name one
    assert "connection=" not in html and 'name="connection"' not in html


@pytest.mark.parametrize(
    "path",
    [
        "/admin/runs?connection=nope",
        "/admin/contracts?connection=",
        "/admin/?connection=Bad%20Name",
        "/admin/connections/switch?connection=nope&next=/admin/",
    ],  # fmt: skip
)
def test_an_unknown_connection_is_a_404_page(admin2, path):
    answer = admin2.get(path)
    assert answer.status_code == 404
    assert "There is no connection named" in page(answer)
    assert "connections: default, beta" in page(answer)


def test_an_unknown_connection_name_is_escaped(admin2):
    answer = admin2.get("/admin/runs?connection=<script>alert(1)</script>")
    assert answer.status_code == 404
    raw = answer.get_data(as_text=True)
    assert "<script>alert(1)" not in raw and "&lt;script&gt;" in raw


def test_a_chosen_connection_removed_since_falls_back_to_the_default(admin2, two_config):
    admin2.get("/admin/connections/switch?connection=beta&next=/admin/")
    base = bootstrap.load_base(str(two_config))
    registry = bootstrap.open_registry(base)
    try:
        service.remove(base, registry, "beta", "test")
    finally:
        registry.close()
    html = page(admin2.get("/admin/contracts"))
    assert contract_total(html) > BETA_CONTRACTS
    assert 'data-connection="default"' in html


def test_a_run_started_from_the_console_acts_on_the_connection_the_page_showed(
    admin2, app2, two_config, monkeypatch
):
    launched = []

    def fake_start(config, folder, command, extra):
        from crm_renewals.connector.services.launch import Launched

        launched.append((config.connection, command))
        return Launched(command, 999_999_999, folder / "x.log")

    monkeypatch.setattr("crm_renewals.connector.services.launch._start", fake_start)
    token = csrf_token(admin2, "/admin/?connection=beta")
    answer = admin2.post(
        "/admin/runs/start?connection=beta", data={"command": "dry_run", "csrf_token": token}
    )
    assert answer.status_code == 302 and answer.headers["Location"].endswith("?connection=beta")
    assert launched == [("beta", "dry_run")]
    store = beta_store(two_config)
    try:
        (entry,) = [e for e in store.audit.list() if e.action == "run.dry_run"]
    finally:
        store.close()
    assert entry.detail["connection"] == "beta" and entry.actor == ADMIN[0]
    registry = app2.extensions["console"].store
    assert not [e for e in registry.audit.list() if e.action == "run.dry_run"]


def test_the_launched_command_names_its_connection(tmp_path, monkeypatch):
    from crm_renewals.connector.services import launch

    seen = {}
    monkeypatch.setattr(launch, "_detached", lambda args, env: seen.setdefault("args", args) and 7)
    config = bootstrap.load(str(write_config(tmp_path)))
    launch._start(config.model_copy(update={"connection": "beta"}), tmp_path, "sync", [])
    assert seen["args"][-2:] == ["--connection", "beta"]


def test_doctor_checked_from_the_console_is_audited_in_that_connections_store(admin2, two_config):
    token = csrf_token(admin2, "/admin/?connection=beta")
    answer = admin2.post("/admin/doctor?connection=beta", data={"csrf_token": token})
    assert answer.status_code == 302
    store = beta_store(two_config)
    try:
        (entry,) = [e for e in store.audit.list() if e.action == "crm.doctor"]
    finally:
        store.close()
    assert entry.detail["connection"] == "beta"


# ---- the Connections page -----------------------------------------------------------


def set_status(config: Path, name: str, status: str, reason: str | None = None, **more) -> None:
    base = bootstrap.load_base(str(config))
    registry = bootstrap.open_registry(base)
    try:
        row = registry.connections.get(name) or connections.new_row(
            name, more.pop("crm", "hubspot"), "oauth", status, "test"
        )
        registry.connections.save(row.replace(status=status, status_reason=reason, **more))
    finally:
        registry.close()


def test_the_connections_page_lists_each_with_crm_id_status_auth_and_last_run(admin2, two_config):
    set_status(two_config, "acme", NEEDS_RECONNECT, "refresh token revoked", external_id="4242")
    set_status(two_config, "sf", PENDING, crm="salesforce")
    html = page(admin2.get("/admin/connections"))
    rows = dict(re.findall(r'<tr data-connection="([^"]+)" data-status="([^"]+)"', html))
    assert rows == {
        "default": "connected",
        "acme": "needs_reconnect",
        "beta": "connected",
        "sf": "pending",
    }
    acme = html[html.index('<tr data-connection="acme"') :]
    acme = acme[: acme.index("</tr>")]
    assert "HubSpot" in acme and "portal <code>4242</code>" in acme
    assert "refresh token revoked" in acme and "OAuth" in acme
    assert 'href="/oauth/hubspot/install?connection=acme"' in acme
    sf = html[html.index('<tr data-connection="sf"') :]
    assert 'href="/oauth/salesforce/install?connection=sf"' in sf[: sf.index("</tr>")]
    beta = html[html.index('<tr data-connection="beta"') :]
    beta = beta[: beta.index("</tr>")]
    assert 'href="/admin/runs/1?connection=beta">run 1</a>' in beta and "Reconnect" not in beta
    for crm in ("hubspot", "salesforce"):
        assert f'action="/oauth/{crm}/install"' in html
    assert ">Connect HubSpot<" in html and ">Connect Salesforce<" in html


def test_the_switcher_marks_connections_that_need_reconnecting_or_are_pending(admin2, two_config):
    set_status(two_config, "acme", NEEDS_RECONNECT, "revoked")
    set_status(two_config, "sf", PENDING, crm="salesforce")
    html = page(admin2.get("/admin/"))
    switcher = html[html.index('id="connection-switcher"') : html.index("</details>")]
    acme = switcher[switcher.index('data-connection="acme"') :]
    assert "needs reconnect" in acme[: acme.index("</li>")] and "HubSpot" in acme
    sf = switcher[switcher.index('data-connection="sf"') :]
    assert "pending" in sf[: sf.index("</li>")] and "Salesforce" in sf[: sf.index("</li>")]
    banner = page(admin2.get("/admin/?connection=acme"))
    assert 'id="connection-banner"' in banner and "needs reconnecting: revoked" in banner


def test_the_connections_page_allows_forms_to_go_on_to_the_crms_authorisation_pages(admin2):
    csp = admin2.get("/admin/connections").headers["Content-Security-Policy"]
    assert "form-action 'self' " in csp and "https://app.hubspot.com" in csp
    assert "https://*.salesforce.com" in csp
    assert admin2.get("/admin/runs").headers["Content-Security-Policy"].count("form-action 'self';")


def test_messages_from_the_oauth_callback_are_shown_and_escaped(admin2, two_config):
    set_status(two_config, "acme", "connected", external_id="123")
    html = admin2.get("/admin/connections?connected=acme").get_data(as_text=True)
    assert "Connected acme: HubSpot portal 123" in html
    raw = admin2.get("/admin/connections?error=<b>state</b> mismatch").get_data(as_text=True)
    assert "&lt;b&gt;state&lt;/b&gt; mismatch" in raw and "<b>state</b>" not in raw
    raw = admin2.get("/admin/connections?connected=<img src=x>").get_data(as_text=True)
    assert "Connected &lt;img src=x&gt;" in raw


def test_viewers_see_the_connections_page_without_buttons_and_their_posts_are_403(
    viewer2, two_config
):
    html = page(viewer2.get("/admin/connections"))
    assert 'data-connection="beta"' in html
    assert "Connect HubSpot" not in html and "/oauth/" not in html
    assert "Remove" not in html and "Disconnect" not in html
    token = csrf_token(viewer2, "/admin/connections")
    for action in ("remove", "disconnect"):
        answer = viewer2.post(f"/admin/connections/beta/{action}", data={"csrf_token": token})
        assert answer.status_code == 403
    assert 'data-connection="beta"' in page(viewer2.get("/admin/connections"))


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin/connections"), ("get", "/admin/connections/switch?connection=beta"),
     ("post", "/admin/connections/beta/remove"), ("post", "/admin/connections/beta/disconnect")],
)  # fmt: skip
def test_signed_out_the_connections_routes_send_to_sign_in(app2, method, path):
    client = app2.test_client()
    if method == "get":
        answer = client.get(path)
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
    else:  # a form post needs its token first: refused before anything else
        token = csrf_token(client)
        answer = client.post(path, data={"csrf_token": token})
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]


def test_an_admin_removes_a_connection(admin2, app2, two_config):
    answer = post(admin2, "/admin/connections/beta/remove", token_from="/admin/connections")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/connections")
    html = page(admin2.get("/admin/connections"))
    assert "Removed beta" in html and 'data-connection="beta"' not in html
    assert admin2.get("/admin/runs?connection=beta").status_code == 404
    registry = app2.extensions["console"].store
    assert registry.connections.get("beta") is None
    (entry,) = [e for e in registry.audit.list() if e.action == "connection.remove"]
    assert entry.actor == ADMIN[0] and entry.target == "beta"


def test_removing_an_unknown_connection_is_a_404(admin2):
    answer = post(admin2, "/admin/connections/nope/remove", token_from="/admin/connections")
    assert answer.status_code == 404 and "There is no connection named 'nope'" in page(answer)


def test_disconnect_calls_the_oauth_disconnect_and_says_so(admin2, two_config, monkeypatch):
    set_status(two_config, "acme", "connected", external_id="123", auth="oauth")
    calls = []

    def disconnect(base, registry, name, actor):
        calls.append((base.connection, name, actor))
        row = registry.connections.get(name)
        registry.connections.save(row.replace(status="disconnected", tokens=None))
        return connections.of_row(registry.connections.get(name))

    import crm_renewals.connector.oauth as oauth

    monkeypatch.setattr(oauth, "disconnect", disconnect, raising=False)
    html = page(admin2.get("/admin/connections"))
    assert 'id="disconnect-acme"' in html and 'id="disconnect-beta"' not in html
    answer = post(admin2, "/admin/connections/acme/disconnect", token_from="/admin/connections")
    assert answer.status_code == 302
    assert calls == [("default", "acme", ADMIN[0])]
    html = page(admin2.get("/admin/connections"))
    assert "Disconnected acme" in html
    assert 'data-connection="acme" data-status="disconnected"' in html
    assert 'href="/oauth/hubspot/install?connection=acme"' in html  # Reconnect


def test_a_disconnect_the_crm_refuses_is_one_clear_line(admin2, two_config, monkeypatch):
    from crm_renewals.connector.errors import ConnectorError

    set_status(two_config, "acme", "connected", external_id="123", auth="oauth")

    def refuse(*_args):
        raise ConnectorError("HubSpot did not answer")

    import crm_renewals.connector.oauth as oauth

    monkeypatch.setattr(oauth, "disconnect", refuse, raising=False)
    answer = post(admin2, "/admin/connections/acme/disconnect", token_from="/admin/connections")
    assert answer.status_code == 302
    assert "acme could not be disconnected: HubSpot did not answer" in page(
        admin2.get("/admin/connections")
    )


def test_a_connection_whose_settings_do_not_load_is_listed_and_its_pages_say_why(
    admin2, two_config
):
    folder = two_config.parent / "connections"
    folder.mkdir()
    (folder / "beta.yaml").write_text("state:\n  url: sqlite:///x.db\n")
    html = page(admin2.get("/admin/connections"))
    beta = html[html.index('<tr data-connection="beta"') :]
    assert "cannot open" in beta[: beta.index("</tr>")]
    answer = admin2.get("/admin/runs?connection=beta")
    assert answer.status_code == 503 and "cannot set 'state'" in page(answer)


# ---- mapping edits and warming, per connection ----------------------------------------


@pytest.fixture
def own_mappings(two_config: Path) -> tuple[Path, Path]:
    """Each connection's mapping a file of its own (copies: saving never touches the repo's)."""
    from tests.conftest import ROOT

    folder = two_config.parent
    default, beta = folder / "default-mapping.yaml", folder / "beta-mapping.yaml"
    for path in (default, beta):
        path.write_bytes((ROOT / "mappings" / "sandbox.yaml").read_bytes())
    write_config(folder, mapping=str(default))
    (folder / "connections").mkdir()
    (folder / "connections" / "beta.yaml").write_text(f"mapping: {beta}\n")
    return default, beta


def test_a_mapping_saved_from_the_console_is_the_current_connections_alone(
    own_mappings, admin2, two_config
):
    import hashlib

    default, beta = own_mappings
    before_default = default.read_text()
    html = page(admin2.get("/admin/mappings?connection=beta"))
    assert 'id="mapping-shared"' not in html and str(beta) in html
    text = beta.read_text() + "# beta's own note\n"
    base = hashlib.sha256(beta.read_bytes()).hexdigest()
    token = csrf_token(admin2, "/admin/mappings?connection=beta")
    answer = admin2.post(
        "/admin/mappings/save?connection=beta",
        data={"text": text, "base": base, "csrf_token": token},
    )
    assert answer.status_code == 302, page(answer)[:2000]
    assert beta.read_text() == text and default.read_text() == before_default
    store = beta_store(two_config)
    try:
        (entry,) = [e for e in store.audit.list() if e.action == "mapping.save"]
    finally:
        store.close()
    assert entry.detail["connection"] == "beta" and entry.target == str(beta)


def test_a_mapping_file_two_connections_share_says_so_before_a_change(admin2):
    html = page(admin2.get("/admin/mappings?connection=beta"))
    assert "This file is the mapping of connections beta, default" in html


def test_warm_loads_each_connections_synced_book(app2, two_config):
    from crm_renewals.connector.services import synced

    synced.forget()
    state = app2.extensions["console"]
    state.warm()
    names = {state.of(c).store.name for c in state.connections()}
    assert len(names) == 2 and names <= set(synced._books)
    beta = state.of(next(c for c in state.connections() if c.name == "beta"))
    assert len(synced.synced_book(beta.store).book.contracts) == BETA_CONTRACTS


def test_with_no_connection_left_the_pages_say_so_and_the_connections_page_still_opens(
    admin, app, monkeypatch
):
    monkeypatch.delenv(connections.CONNECTION_ENV, raising=False)
    state = app.extensions["console"]
    service.remove(state.config, state.store, "default", "test")
    answer = admin.get("/admin/runs")
    assert answer.status_code == 404
    assert "This deployment has no connection: connect a CRM" in page(answer)
    html = page(admin.get("/admin/connections"))
    assert 'id="connections-empty"' in html and "Connect HubSpot" in html
