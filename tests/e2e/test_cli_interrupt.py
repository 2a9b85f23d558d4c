"""Ctrl-C during `renewals sync` (a real process sent SIGINT): the run is recorded
`interrupted` with the writes it made, and the exit code says so (130)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

from click.testing import CliRunner

from crm_renewals.connector.cli import main
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli

AS_OF = "2026-11-23"
TIMEOUT_S = 120


def ledger_rows(state) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_ctrl_c_during_a_sync_records_it_interrupted_with_what_it_wrote(tmp_path):
    config = write_config(tmp_path, sandbox={"batch_size": 2})
    seeded = CliRunner().invoke(
        main,
        ["--config", str(config), "sandbox", "seed", "--as-of", AS_OF, "--contracts", "1200"],
    )
    assert seeded.exit_code == 0, seeded.output
    state = tmp_path / "data" / "state.db"
    cmd = [*renewals_cli(), "--config", str(config), "sync", "--as-of", AS_OF, "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    while ledger_rows(state) < 200 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the sync ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.strip() and "%" not in x]
    assert "Interrupted" in line
    runs = CliRunner().invoke(main, ["--config", str(config), "runs", "--json"])
    (run,) = json.loads(runs.stdout)
    written = ledger_rows(state)
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert written >= 200
    assert sum(run["counts"]["writes"].values()) == written
    assert run["counts"]["created"] == run["counts"]["writes"]["renewal_opportunity.create"] > 0
    assert "Ctrl-C" in run["error"]
