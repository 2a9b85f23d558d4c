"""Bad input and unusable files through the `renewals` command line: never a traceback, one line
on stderr that names the file, line or key and says what to do, and the documented exit code
(2: bad configuration, unusable state or CRM, bad usage; 1: some rows rejected)."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import string
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_renewals.connector.cli import main
from crm_renewals.connector.state import SCHEMA_VERSION, StateStore
from tests.conftest import ROOT, write_config

AS_OF = "2026-11-23"
HEADER = b"account,measure,value,timestamp\n"
GOOD = b"001A,nps,35,2026-11-20T09:00:00Z\n"
#: 2 KB of binary noise on one line (no CR or LF, which start a CSV row), the same every run
NOISE = random.Random(7).randbytes(2048).translate(None, b"\r\n")


def run(config, *args):
    """`renewals --config CONFIG ARGS` in-process; an exception escaping the CLI fails the test."""
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def one_line_error(result, code: int, *words: str) -> str:
    """The command exited with `code` and said why on exactly one line of stderr."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path)


# ------------------------------------------------------------------ app.yaml and the state URL


def test_a_data_dir_that_is_a_file_names_the_key_and_says_to_use_a_folder(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    config = write_config(tmp_path, data_dir=str(afile))
    line = one_line_error(run(config, "runs"), 2, "data_dir", "app.yaml", "folder")
    assert str(afile) in line
    one_line_error(run(config, "config", "check"), 2, "data_dir")


def test_an_unknown_database_kind_in_state_url_names_the_key(tmp_path):
    config = write_config(tmp_path, state={"url": "notadb://x"})
    one_line_error(run(config, "runs"), 2, "state.url", "notadb", "sqlite", "postgresql")


@pytest.mark.parametrize(
    "url, package",
    [
        ("postgresql+pg8000://u:secret@localhost/renewals", "pg8000"),
        ("postgresql://u:secret@localhost/renewals", "psycopg[binary]"),
    ],
)
def test_a_postgresql_url_without_its_driver_says_what_to_install(
    tmp_path, monkeypatch, url, package
):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were not installed
    config = write_config(tmp_path, state={"url": url})
    line = one_line_error(run(config, "runs"), 2, "state.url", "pip install", package)
    assert "secret" not in line


# ------------------------------------------------------------------ YAML files


def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_file(tmp_path):
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        rows.append(f"{name}: &{name} [" + ",".join(["*" + prev] * 9) + "]")
    config = tmp_path / "app.yaml"
    config.write_text("\n".join(rows) + "\n")
    one_line_error(run(config, "config", "check"), 2, str(config), "alias")


def test_yaml_nested_50000_deep_is_refused_naming_the_file(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("crm: " + "[" * 50_000 + "]" * 50_000 + "\n")
    one_line_error(run(config, "config", "check"), 2, str(config), "deep")


def test_a_binary_mapping_file_is_refused_as_not_utf8_text(tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_bytes(b"crm: sandbox\n\xde\xa6\xa0\xc4\x00\xff\xfe binary")
    config = write_config(tmp_path, mapping=str(mapping))
    one_line_error(run(config, "config", "check"), 2, f"{mapping}:2", "UTF-8")


# ------------------------------------------------------------------ state and sandbox databases


def damaged(path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(8192))
        return
    store = StateStore(f"sqlite:///{path}")
    store.signals.add([])  # a real database, with every table
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (x TEXT)")
        for _ in range(200):
            conn.exec_driver_sql("INSERT INTO filler VALUES (?)", ("x" * 1000,))
    store.close()
    with sqlite3.connect(path) as db:  # fold the WAL into the file, as after a clean stop
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[:100] if how == "truncated" else data[: len(data) // 2])


@pytest.mark.parametrize("how", ["garbage", "truncated", "half-truncated"])
def test_a_damaged_state_database_says_which_file_and_what_to_do(config, tmp_path, how):
    state = tmp_path / "data" / "state.db"
    state.parent.mkdir()
    damaged(state, how)
    for args in (("runs",), ("report", "--as-of", AS_OF), ("sync", "--as-of", AS_OF)):
        line = one_line_error(run(config, *args), 2, str(state))
        assert "backup" in line


def test_a_damaged_sandbox_database_says_which_file_and_how_to_start_over(config, tmp_path):
    sandbox = tmp_path / "data" / "sandbox.db"
    sandbox.parent.mkdir()
    sandbox.write_bytes(os.urandom(8192))
    line = one_line_error(run(config, "sync", "--as-of", AS_OF), 2, str(sandbox))
    assert "sandbox seed --reset" in line


def test_a_read_only_state_database_says_it_cannot_be_written(config, tmp_path):
    assert run(config, "sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    assert run(config, "runs").exit_code == 0  # creates the state database
    state = tmp_path / "data" / "state.db"
    read_only = write_config(tmp_path, state={"url": f"sqlite:///file:{state}?mode=ro&uri=true"})
    one_line_error(run(read_only, "sync", "--as-of", AS_OF), 2, str(state), "read-only")
    # the run lock sits beside the database file, not in a folder named after the URI
    assert not Path("file:").exists()
    assert (tmp_path / "data" / "state.db.run.lock").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_state_database_without_write_permission_says_it_cannot_be_written(config, tmp_path):
    assert run(config, "sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    assert run(config, "runs").exit_code == 0
    state = tmp_path / "data" / "state.db"
    state.chmod(0o444)
    one_line_error(run(config, "sync", "--as-of", AS_OF), 2, str(state), "read-only")


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize("option", ["--as-of", "--from", "--to"])
def test_a_date_out_of_range_is_bad_usage(config, option):
    result = run(config, "report", option, "0001-01-01")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"Invalid value for '{option}'" in result.stderr and "1900-01-01" in result.stderr


# ------------------------------------------------------------------ signals CSV


def import_csv(config, tmp_path, content: bytes):
    path = tmp_path / "signals.csv"
    path.write_bytes(content)
    return path, run(config, "signals", "import", str(path), "--json")


@pytest.mark.parametrize(
    "bad_timestamp", ["99999999999999999999", "100000000000000000", "1e17", "-99999999999999"]
)
def test_a_timestamp_out_of_range_rejects_its_row_and_keeps_the_good_ones(
    config, tmp_path, bad_timestamp
):
    content = (
        HEADER + GOOD + f"001B,nps,1,{bad_timestamp}\n".encode() + b"001C,nps,2,1763629200000\n"
    )
    _, result = import_csv(config, tmp_path, content)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert (data["rows"], data["stored"]) == (3, 2)
    assert [e["line"] for e in data["errors"]] == [3]
    assert "timestamp" in data["errors"][0]["error"]


def test_a_field_over_the_csv_limit_rejects_its_row_and_keeps_the_good_ones(config, tmp_path):
    content = (
        HEADER
        + GOOD
        + b"a" * 200_000
        + b",nps,1,2026-11-20T09:00:00Z\n"
        + GOOD.replace(b"001A", b"001B")
    )
    _, result = import_csv(config, tmp_path, content)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert (data["rows"], data["stored"]) == (3, 2)
    assert [e["line"] for e in data["errors"]] == [3]
    assert "131072" in data["errors"][0]["error"]


def test_latin1_bytes_reject_their_row_as_not_utf8_and_keep_the_good_ones(config, tmp_path):
    latin1 = "001É,nps,1,2026-11-20T09:00:00Z\n".encode("latin-1")
    _, result = import_csv(config, tmp_path, HEADER + latin1 + GOOD)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert (data["rows"], data["stored"]) == (2, 1)
    assert data["errors"][0]["line"] == 2 and "UTF-8" in data["errors"][0]["error"]


def test_a_utf8_file_with_a_byte_order_mark_imports(config, tmp_path):
    _, result = import_csv(config, tmp_path, b"\xef\xbb\xbf" + HEADER + GOOD)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] == 1


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", ("empty", "account,measure,value,timestamp")),
        (b"\n\n", ("empty", "account,measure,value,timestamp")),
        (GOOD + GOOD, ("line 1", "header", "account,measure,value,timestamp")),
        (NOISE + b"\n" + GOOD, ("line 1", "header")),
        (b"account,measure,value,timestamp,colour\n" + GOOD, ("line 1", "colour")),
    ],
    ids=["empty", "blank-lines", "no-header", "binary", "unknown-column"],
)
def test_a_file_without_a_usable_header_is_refused_not_imported_as_0_rows(
    config, tmp_path, content, words
):
    path, result = import_csv(config, tmp_path, content)
    one_line_error(result, 2, str(path), *words)


FIELD_TEXT = st.text(string.printable + 'É€\u2028\x00\r"', max_size=30)
#: without quotes, so no field runs on over the good row that closes the file
UNQUOTED = st.text(string.printable.replace('"', "") + "É€\u2028\x00", max_size=30)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.lists(st.lists(FIELD_TEXT, min_size=0, max_size=6), max_size=8).map(
            lambda rows: (
                HEADER + "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")
            )
        ),
        st.lists(
            st.tuples(
                st.sampled_from(["001A", "", "x" * 90]),
                st.sampled_from(["nps", "seat_utilisation", "mood", ""]),
                st.one_of(st.floats(allow_nan=True).map(str), UNQUOTED),
                st.one_of(
                    st.integers(-(10**22), 10**22).map(str),
                    st.floats(allow_nan=True).map(str),
                    st.datetimes().map(lambda d: d.isoformat() + "Z"),
                    UNQUOTED,
                ),
            ),
            max_size=6,
        ).map(
            lambda rows: (
                HEADER
                + b"".join(",".join(r).encode("utf-8", "surrogatepass") + b"\n" for r in rows)
                + GOOD
            )
        ),
    )
)
def test_any_bytes_as_a_signals_csv_give_a_documented_exit_and_no_traceback(config, tmp_path, body):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(body)
    result = run(config, "signals", "import", str(path), "--json")
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        one_line_error(result, 2, str(path))
    else:
        data = json.loads(result.stdout)
        assert data["rows"] == data["stored"] + data["duplicates"] + len(data["errors"])
        assert (result.exit_code == 1) == bool(data["errors"])
        if body.endswith(GOOD):  # the good last row is kept whatever came before it
            assert data["rows"] >= 1 and len(data["errors"]) < data["rows"]


# ------------------------------------------------------------------ state schema versions

STATE_FIXTURES = sorted((ROOT / "tests" / "fixtures" / "state").glob("v*.sql"))


def load_state(path, sql_file) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(sql_file.read_text())


def schema_of(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT max(version) FROM schema_version").fetchone()[0]


def test_every_earlier_schema_version_has_a_fixture():
    stems = [f.stem for f in STATE_FIXTURES]
    assert stems[: SCHEMA_VERSION - 1] == [f"v{v}" for v in range(1, SCHEMA_VERSION)]


@pytest.mark.parametrize("sql_file", STATE_FIXTURES, ids=lambda f: f.stem)
def test_a_state_database_of_a_released_version_is_migrated_and_keeps_its_history(
    config, tmp_path, sql_file
):
    state = tmp_path / "data" / "state.db"
    load_state(state, sql_file)
    runs = run(config, "runs", "--json")
    assert runs.exit_code == 0, runs.output
    (old,) = json.loads(runs.stdout)
    assert (old["status"], old["counts"]["created"], old["api_calls"]) == ("partial", 1, 7)
    assert schema_of(state) == SCHEMA_VERSION
    (letter,) = json.loads(run(config, "deadletters", "list", "--json").stdout)
    assert (letter["record_id"], letter["field"]) == ("800B", "end_date")
    assert run(config, "sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    synced = run(config, "sync", "--as-of", AS_OF, "--json")
    assert synced.exit_code in (0, 1) and json.loads(synced.stdout)["created"] > 0


def test_schema_9_names_each_mirrored_record_s_contract_and_account(config, tmp_path):
    state = tmp_path / "data" / "state.db"
    load_state(state, STATE_FIXTURES[7])  # v8: mirror rows from before the columns
    assert run(config, "runs", "--json").exit_code == 0
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT id, contract_id, account_id FROM mirror ORDER BY id").fetchall()
        read_at = db.execute("SELECT read_at FROM cursors").fetchall()
    assert rows == [("800A", "800A", "001A"), ("800B", "800B", None), ("802A", "800A", None)]
    assert read_at == [(None,)]  # unknown: the next run re-reads the overlap before the cursor


def test_a_state_database_from_a_newer_release_is_refused_and_left_as_it_is(config, tmp_path):
    state = tmp_path / "data" / "state.db"
    load_state(state, STATE_FIXTURES[-1])
    with sqlite3.connect(state) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        tables = db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    for args in (("runs",), ("sync", "--as-of", AS_OF), ("signals", "import", str(state))):
        line = one_line_error(run(config, *args), 2, str(state), "newer", "upgrade")
        assert f"version {SCHEMA_VERSION + 1}" in line and str(SCHEMA_VERSION) in line
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall() == tables
    assert schema_of(state) == SCHEMA_VERSION + 1
