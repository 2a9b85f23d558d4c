"""The console on a real `renewals serve` (gunicorn, gevent workers, pages in native threads),
without a browser: what only the real server can get wrong (starting a run from a page in a
native thread of a gevent worker, the session cookie over the real stack)."""

from __future__ import annotations

import os
import re
import subprocess

import requests

from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, query, wait_for

ADMIN = ("ops@example.com", "serve test password")


def test_sync_now_on_a_real_server_starts_a_run_that_finishes(tmp_path):
    config = write_config(tmp_path)
    cli = [*renewals_cli(), "--config", str(config)]
    env = {
        **os.environ,
        "RENEWALS_SECRET_KEY": "serve-test-secret",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    subprocess.run([*cli, "sandbox", "seed", "--reset"], check=True, capture_output=True)
    add = [*cli, "users", "add", ADMIN[0], "--role", "admin", "--password-stdin"]
    subprocess.run(add, input=ADMIN[1], text=True, check=True, capture_output=True)
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([*cli, "serve", "--bind", f"127.0.0.1:{port}"], stderr=log, env=env)
        try:
            wait_for(lambda: healthy(port))
            base, web = f"http://127.0.0.1:{port}", requests.Session()
            token = re.search(
                r'name="csrf_token" value="([^"]+)"', web.get(f"{base}/admin/login").text
            )
            signed = web.post(
                f"{base}/admin/login",
                data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": token.group(1)},
            )
            assert signed.url == f"{base}/admin/", signed.text[:300]
            token = re.search(r'name="csrf_token" value="([^"]+)"', signed.text).group(1)
            started = web.post(
                f"{base}/admin/runs/start", data={"command": "sync", "csrf_token": token}
            )
            assert started.status_code == 200 and "started" in started.text.lower(), started.text
            db = tmp_path / "data" / "state.db"
            # the demo book has records that fail to map: the run is partial, and it ends
            done = lambda: query(db, "SELECT status FROM runs") == [("partial",)]  # noqa: E731
            wait_for(done, timeout=90)
            ended = lambda: "Run 1 ended" in web.get(f"{base}/admin/runs/live").text  # noqa: E731
            wait_for(ended, timeout=30)  # the process exits just after recording its run
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
