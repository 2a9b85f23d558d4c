"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright with that
executable: no browser download) against a real `renewals serve` on loopback over the seeded
demo book. Skips, saying why, where no Chromium or Playwright is installed (`make test`
installs Chromium when it can)."""

from __future__ import annotations

import os
import shutil
import subprocess
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`renewals serve` over the demo book, with an admin; yields (base URL, folder)."""
    folder = tmp_path_factory.mktemp("browser")
    mapping = folder / "mapping.yaml"  # a copy: the mapping page saves over the installed file
    mapping.write_bytes((ROOT / "mappings" / "sandbox.yaml").read_bytes())
    config = write_config(folder, mapping=str(mapping))
    cli = [*renewals_cli(), "--config", str(config)]
    env = {
        **os.environ,
        "RENEWALS_SECRET_KEY": SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
    }
    subprocess.run([*cli, "demo"], check=True, capture_output=True, env=env)
    subprocess.run(
        [*cli, "users", "add", ADMIN[0], "--role", "admin", "--password-stdin"],
        input=ADMIN[1] + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )
    port = free_port()
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 (a file: a full pipe would stall it)
    proc = subprocess.Popen(
        [*cli, "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    try:
        wait_for(lambda: healthy(port) or proc.poll() is not None)
        assert proc.poll() is None, (folder / "serve.log").read_text()[-2000:]
        yield f"http://127.0.0.1:{port}", folder
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go: RENEWALS_SCREENSHOTS (`make screenshots`: docs/screenshots)."""
    wanted = os.environ.get("RENEWALS_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
