"""A deployment (app.yaml: the sandbox as `default`, console users) whose admins connect the
fake HubSpot portal (tests/fakes/hubspot_oauth.py) by OAuth, through the Flask test client."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from crm_renewals.connector.config import load_config
from crm_renewals.connector.secretbox import new_key
from crm_renewals.connector.services.users import add_user
from crm_renewals.connector.state import StateStore
from tests.conftest import ROOT, write_config
from tests.console.conftest import ADMIN, SECRET, VIEWER, console_app, sign_in
from tests.e2e.alert_sinks import Hook
from tests.fakes.hubspot_oauth import CLIENT_ID, CLIENT_SECRET
from tests.fakes.hubspot_server import FakeHubSpot

KEY = new_key()
HOOK = "RENEWALS_NOTIFY_OAUTH_HOOK"
#: the redirect URL registered with the fake app (the test client's host)
CALLBACK = "http://localhost/oauth/hubspot/callback"
PRIVATE_TOKEN = "pat-private-app-token-not-for-oauth-connections"


def app_env(**more: str) -> dict[str, str]:
    return {
        "RENEWALS_SECRET_KEY": SECRET,
        "HUBSPOT_APP_CLIENT_ID": CLIENT_ID,
        "HUBSPOT_APP_CLIENT_SECRET": CLIENT_SECRET,
        "RENEWALS_ENCRYPTION_KEY": KEY,
        **more,
    }


@pytest.fixture
def fake():
    server = FakeHubSpot(PRIVATE_TOKEN, search_per_second=0)
    server.start()
    server.define_connector_properties()
    server.oauth.register(CALLBACK)
    yield server
    server.stop()


@pytest.fixture
def hook(monkeypatch):
    with Hook() as receiver:
        monkeypatch.setenv(HOOK, receiver.url("hook-secret-part"))
        yield receiver


def connection_file(folder: Path, name: str) -> Path:
    """connections/<name>.yaml: the HubSpot mapping and the fake portal's stages."""
    path = folder / "connections" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "mapping": str(ROOT / "mappings" / "hubspot.yaml"),
                "renewals": {
                    "initial_stage": "appointmentscheduled",
                    "closed_won_stages": ["closedwon"],
                    "closed_lost_stages": ["closedlost"],
                },
            }
        )
    )
    return path


@pytest.fixture(scope="session")
def users_db(tmp_path_factory) -> Path:
    """A state database with the console's admin and viewer (password hashing is slow: once)."""
    folder = tmp_path_factory.mktemp("oauth-users")
    store = StateStore(load_config(write_config(folder)).state_url)
    add_user(store, ADMIN[0], "admin", ADMIN[1], "test")
    add_user(store, VIEWER[0], "viewer", VIEWER[1], "test")
    store.close()
    return folder / "data"


@pytest.fixture
def deployment(tmp_path, fake, monkeypatch, users_db) -> Path:
    """app.yaml (sandbox `default`, HubSpot and OAuth pointed at the fake, alerts to HOOK),
    an admin and a viewer, connection files for `acme` and the unnamed install's name."""
    config = write_config(
        tmp_path,
        hubspot={"base_url": fake.url},
        oauth={"hubspot_authorize_url": f"{fake.url}/oauth/authorize"},
        notify={"targets": [HOOK], "dead_letters_over": None, "inbox_wait_minutes": None},
    )
    for name in ("acme", f"hubspot-{fake.oauth.portal}", "other"):
        connection_file(tmp_path, name)
    shutil.copytree(users_db, tmp_path / "data", dirs_exist_ok=True)
    for name, value in app_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RENEWALS_CONNECTION", raising=False)
    return config


@pytest.fixture
def app(deployment):
    with console_app(load_config(deployment), app_env()) as made:
        yield made


@pytest.fixture
def admin(app):
    return sign_in(app.test_client(), ADMIN)


@pytest.fixture
def viewer(app):
    return sign_in(app.test_client(), VIEWER)


@pytest.fixture
def registry(deployment):
    store = StateStore(load_config(deployment).state_url)
    yield store
    store.close()


def approve(client, path: str = "/oauth/hubspot/install?connection=acme") -> str:
    """The admin starts the install and approves the app on the fake's page: the callback
    URL (path and query) HubSpot sends the browser back to."""
    started = client.get(path)
    assert started.status_code == 302, started.get_data(as_text=True)
    page = requests.get(started.headers["Location"], allow_redirects=False, timeout=5)
    assert page.status_code == 302, page.text
    back = urlsplit(page.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return f"{back.path}?{back.query}"


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def install(client, path: str = "/oauth/hubspot/install?connection=acme") -> dict[str, str]:
    """A whole install: the query of the Connections page the admin lands on."""
    done = client.get(approve(client, path))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert urlsplit(done.headers["Location"]).path == "/admin/connections"
    return query_of(done.headers["Location"])


def connect(deployment: Path, name: str = "acme", nonce: str = "session-nonce") -> None:
    """Connection `name` connected to the fake portal by the install flow, without a browser:
    start, the fake's install page approved, finish."""
    from crm_renewals.connector import bootstrap
    from crm_renewals.connector.oauth import flows

    base = bootstrap.load_base(str(deployment))
    registry = bootstrap.open_registry(base)
    try:
        url = flows.start(base, registry, "hubspot", name, nonce, "test", "http://localhost/")
        back = query_of(requests.get(url, allow_redirects=False, timeout=5).headers["Location"])
        flows.finish(
            base, registry, "hubspot", back["state"], back["code"], nonce, "http://localhost"
        )
    finally:
        registry.close()
