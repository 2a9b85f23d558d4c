"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright with that
executable: no browser download) against a real `renewals serve` on loopback over the seeded
demo book. Skips, saying why, where no Chromium or Playwright is installed (`make test`
installs Chromium when it can)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, wait_for

ADMIN = ("admin@example.com", "browser test password")
SECRET = "browser-test-secret-key"
#: flags this machine's closed network needs (no background connections, no GPU, as root)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    found = os.environ.get("RENEWALS_CHROMIUM") or shutil.which("chromium")
    return found or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium (make test does, as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose console errors and failed requests are collected."""

    def __init__(self, page):
        self.page, self.errors = page, []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("requestfailed", lambda r: self.errors.append(f"{r.url}: {r.failure}"))

    def clean(self) -> None:
        errors, self.errors[:] = list(self.errors), []
        assert errors == [], errors


def serve_env(folder: Path, **more: str) -> dict[str, str]:
    """The environment of a served deployment: the console's key, its own metrics folder."""
    env = {
        **os.environ,
        "RENEWALS_SECRET_KEY": SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
        **more,
    }
    env.pop("RENEWALS_CONNECTION", None)
    return env


def add_admin(cli: list[str], env: dict[str, str]) -> None:
    """ADMIN, a console admin of the deployment `cli` runs on."""
    subprocess.run(
        [*cli, "users", "add", ADMIN[0], "--role", "admin", "--password-stdin"],
        input=ADMIN[1] + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )


@contextmanager
def serving(cli: list[str], env: dict[str, str], folder: Path, port: int | None = None):
    """`renewals serve` on loopback (`port`, else a free one) until the block ends; yields its
    base URL. Its stderr goes to folder/serve.log (a file: a full pipe would stall it)."""
    port = port or free_port()
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [*cli, "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    try:
        wait_for(lambda: healthy(port) or proc.poll() is not None)
        assert proc.poll() is None, (folder / "serve.log").read_text()[-2000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def signed_in_page(browser, base: str):
    """A page of `browser` signed in to the console at `base` as ADMIN (a Watched)."""
    context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
    watched = Watched(context.new_page())
    page = watched.page
    page.goto("/admin/")
    assert page.url.endswith("/admin/login?next=/admin/")
    page.fill("input[name=email]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    watched.clean()
    try:
        yield watched
    finally:
        context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`renewals serve` over the demo book, with an admin; yields (base URL, folder)."""
    folder = tmp_path_factory.mktemp("browser")
    mapping = folder / "mapping.yaml"  # a copy: the mapping page saves over the installed file
    mapping.write_bytes((ROOT / "mappings" / "sandbox.yaml").read_bytes())
    config = write_config(folder, mapping=str(mapping))
    cli = [*renewals_cli(), "--config", str(config)]
    env = serve_env(folder)
    subprocess.run([*cli, "demo"], check=True, capture_output=True, env=env)
    add_admin(cli, env)
    with serving(cli, env, folder) as base:
        yield base, folder


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go: RENEWALS_SCREENSHOTS (`make screenshots`: docs/screenshots)."""
    wanted = os.environ.get("RENEWALS_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
