"""The console over a seeded sandbox book (`renewals demo` once a session, copied per test),
with an admin and a viewer, through the Flask test client."""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_renewals.connector.cli import main
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.users import add_user
from crm_renewals.connector.state import StateStore
from tests.conftest import AS_OF, write_config

ADMIN = ("admin@example.com", "admin password 1")
VIEWER = ("viewer@example.com", "viewer password 1")
SECRET = "console-test-secret-key"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def demo_book(tmp_path_factory) -> Path:
    """A folder with app.yaml and the demo book synced in it (users: ADMIN and VIEWER)."""
    folder = tmp_path_factory.mktemp("console-book")
    config = write_config(folder)
    result = CliRunner().invoke(
        main, ["--config", str(config), "demo", "--as-of", AS_OF.isoformat()]
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(config)
    store = StateStore(cfg.state_url)
    add_user(store, ADMIN[0], "admin", ADMIN[1], "test")
    add_user(store, VIEWER[0], "viewer", VIEWER[1], "test")
    store.close()
    return folder


@pytest.fixture
def console_config(demo_book: Path, tmp_path: Path) -> Path:
    """This test's own copy of the demo book (its data and app.yaml)."""
    shutil.copytree(demo_book / "data", tmp_path / "data")
    return write_config(tmp_path)


@pytest.fixture
def app(console_config: Path):
    with console_app(load_config(console_config), {"RENEWALS_SECRET_KEY": SECRET}) as made:
        yield made


@contextmanager
def console_app(config, env: dict[str, str]):
    """The webhook app with its console, for the Flask test client; closed afterwards."""
    from crm_renewals.webhooks.app import create_app

    app = create_app(config, env=env)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["console"].close()
        app.extensions["renewals"].store.close()


def csrf_token(client, path: str = "/admin/login") -> str:
    """The CSRF token a page's form carries."""
    page = client.get(path)
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, f"no csrf_token on {path} ({page.status_code})"
    return found.group(1)


def sign_in(client, who: tuple[str, str] = ADMIN):
    email, password = who
    answer = client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


@pytest.fixture
def admin(app):
    return sign_in(app.test_client(), ADMIN)


@pytest.fixture
def viewer(app):
    return sign_in(app.test_client(), VIEWER)


def post(client, path: str, data: dict | None = None, token_from: str = "/admin/"):
    """A form post with the token the signed-in session's pages carry."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, token_from)})
