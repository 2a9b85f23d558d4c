"""History: every run records the mapping file and app.yaml it used (once per distinct
content); `renewals runs`, `mappings history` and `mappings diff` show them; `explain` names
the account and owner next to their ids."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from crm_renewals.connector.config import AppConfig, load_config
from crm_renewals.connector.services import retry_dead_letters, sync
from crm_renewals.connector.services.refresh import sync_records
from crm_renewals.connector.services.versions import read_used_files
from crm_renewals.connector.state import StateStore
from tests.conftest import AS_OF, ROOT, cli_for, write_config

DAY = AS_OF.isoformat()
STATUS_MAP = "Terminated: terminated, Cancelled: cancelled}"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mapping(tmp_path):
    """A copy of the sandbox mapping the test can edit between runs."""
    path = tmp_path / "mapping.yaml"
    path.write_text((ROOT / "mappings" / "sandbox.yaml").read_text())
    return path


@pytest.fixture
def cli(tmp_path, mapping):
    invoke = cli_for(write_config(tmp_path, mapping=str(mapping)))
    assert invoke("sandbox", "seed", "--as-of", DAY).exit_code == 0
    return invoke


def add_status(mapping, crm_value: str, ours: str) -> None:
    """An admin's edit: one more entry in the contract status value map."""
    text = mapping.read_text()
    assert STATUS_MAP in text
    mapping.write_text(text.replace(STATUS_MAP, f'{STATUS_MAP[:-1]}, "{crm_value}": {ours}}}'))


def test_a_run_records_both_files_and_a_second_run_with_the_same_files_adds_no_version(
    context, config_path
):
    sync(context, as_of=AS_OF)
    sync(context, as_of=AS_OF)
    store, mapping_file = context.store, context.config.mapping_path
    (mapping,) = store.versions.history("mapping")
    (config,) = store.versions.history("config")
    assert (mapping.hash, mapping.runs, mapping.path) == (
        sha256(mapping_file),
        2,
        str(mapping_file),
    )
    assert (config.hash, config.runs, config.path) == (sha256(config_path), 2, str(config_path))
    assert store.versions.content("config", config.hash) == config_path.read_text()
    assert store.versions.content("mapping", mapping.hash) == mapping_file.read_text()
    assert {(r.mapping_hash, r.config_hash) for r in store.runs.list()} == {
        (mapping.hash, config.hash)
    }


def test_every_kind_of_run_names_the_versions_it_used(context, book):
    contract = book.contract(book.account("Acme"), AS_OF + timedelta(days=100))
    sync(context, as_of=AS_OF, dry_run=True)  # a dry run is no run: nothing recorded
    assert context.store.runs.list() == [] and context.store.versions.history("mapping") == []
    sync(context, as_of=AS_OF)
    sync_records(context, {"contract": [contract]}, as_of=AS_OF)
    retry_dead_letters(context, AS_OF)
    runs = context.store.runs.list()
    assert [r.mode for r in runs] == ["incremental", "webhook", "incremental"]
    expected = {f.kind: f.hash for f in context.files}
    assert {(r.mapping_hash, r.config_hash) for r in runs} == {
        (expected["mapping"], expected["config"])
    }


def test_a_database_password_in_state_url_never_reaches_the_store(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text(
        "crm: sandbox\nstate:\n  url: postgresql+psycopg://renewals:s3cr%40t@db.internal/renewals\n"
        "# or postgresql://db.internal/renewals?user=renewals&password=hunter2\n"
    )
    config = AppConfig.model_validate(
        {"state": {"url": "x"}, "mapping": str(ROOT / "mappings" / "sandbox.yaml"), "source": app}
    )
    stored = {f.kind: f for f in read_used_files(config)}["config"]
    assert "s3cr" not in stored.content and "hunter2" not in stored.content
    assert "postgresql+psycopg://renewals:***@db.internal/renewals" in stored.content
    assert "&password=***" in stored.content


def test_a_mapping_edit_between_runs_shows_in_runs_history_and_diff(cli, mapping):
    first = sha256(mapping)
    assert cli("sync", "--as-of", DAY).exit_code == 1  # the demo book is broken on purpose
    add_status(mapping, "On Hold", "draft")
    second = sha256(mapping)
    cli("sync", "--as-of", DAY)
    runs = json.loads(cli("runs", "--json").output)
    assert [r["mapping_version"] for r in runs] == [second[:8], first[:8]]
    assert runs[0]["config_version"] == runs[1]["config_version"] is not None
    assert second[:8] in cli("runs").output

    history = json.loads(cli("mappings", "history", "--json").output)
    assert [(v["version"], v["runs"], v["current"]) for v in history] == [
        (second[:8], 1, True),
        (first[:8], 1, False),
    ]
    assert history[0]["path"] == str(mapping) and history[0]["hash"] == second
    table = cli("mappings", "history").output
    assert f"{second[:8]} *" in table and first[:8] in table

    diff = cli("mappings", "diff")
    assert diff.exit_code == 0, diff.output
    assert f"Mapping {first[:8]} -> {second[:8]}" in diff.output
    assert '~ contract.status: value map +"On Hold": "draft"' in diff.output
    assert f'+              {STATUS_MAP[:-1]}, "On Hold": draft}}' in diff.output
    data = json.loads(cli("mappings", "diff", "--json").output)
    assert (data["from"]["hash"], data["to"]["hash"]) == (first, second)
    (change,) = data["changes"]
    assert (change["model"], change["field"], change["change"]) == ("contract", "status", "changed")
    assert (change["map_added"], change["map_removed"]) == ({"On Hold": "draft"}, {})
    assert data["diff"].startswith(f"--- {first[:8]}\n+++ {second[:8]}\n")
    # both named, the other way round: the entry is removed
    back = json.loads(cli("mappings", "diff", second[:6], first, "--json").output)
    assert back["changes"][0]["map_removed"] == {"On Hold": "draft"}


def test_one_version_is_compared_with_the_mapping_file_as_it_is_now(cli, mapping):
    cli("sync", "--as-of", DAY)
    first = sha256(mapping)
    same = cli("mappings", "diff", first[:8])
    assert same.exit_code == 0 and "No changes." in same.output
    add_status(mapping, "Suspended", "terminated")  # edited, not run yet
    data = json.loads(cli("mappings", "diff", first[:8], "--json").output)
    assert data["to"] == {
        "version": sha256(mapping)[:8],
        "hash": sha256(mapping),
        "path": str(mapping),
    }
    assert data["changes"][0]["map_added"] == {"Suspended": "terminated"}
    text = cli("mappings", "diff", first[:8]).output
    assert f"Mapping {first[:8]} -> the current file ({mapping})" in text


def test_fewer_than_two_versions_is_said_and_is_no_error(cli):
    for _ in range(2):  # before any run, and after one
        result = cli("mappings", "diff")
        assert result.exit_code == 0 and "Fewer than two mapping versions" in result.output
        assert json.loads(cli("mappings", "diff", "--json").output)["changes"] == []
        cli("sync", "--as-of", DAY)
    assert "No mapping versions recorded yet" not in cli("mappings", "history").output


def test_an_unknown_or_ambiguous_version_is_one_line_and_exit_2(tmp_path, mapping):
    config = write_config(tmp_path, mapping=str(mapping))
    cli = cli_for(config)
    cli("sandbox", "seed", "--as-of", DAY)
    assert "No mapping versions recorded yet" in cli("mappings", "history").output
    assert json.loads(cli("mappings", "history", "--json").output) == []
    cli("sync", "--as-of", DAY)
    add_status(mapping, "On Hold", "draft")
    cli("sync", "--as-of", DAY)
    for ref in ("ffffffff", "not-a-hash", ""):
        result = cli("mappings", "diff", ref)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "is unknown" in lines[0] and "mappings history" in lines[0]
        data = json.loads(cli("mappings", "diff", ref, "--json").stdout)
        assert "is unknown" in data["error"]
    store = StateStore(load_config(config).state_url)  # two versions that share a prefix
    for digest in ("abc1" + "0" * 60, "abc2" + "0" * 60):
        store.versions.keep("mapping", digest, "version: 1\n", "old.yaml")
    store.close()
    result = cli("mappings", "diff", "ABC")
    assert (
        result.exit_code == 2 and "'abc' is ambiguous (2 versions start with it)" in result.stderr
    )
    assert cli("mappings", "diff", "abc1").exit_code == 0  # long enough to be one


def test_explain_names_the_account_and_owner_next_to_their_ids(context, book, config_path):
    rep = book.user("Riley Rep", manager=book.manager)
    account = book.account("Globex", owner=rep)
    renewed = book.contract(account, AS_OF + timedelta(days=100))
    gone = book.user("Gone Owner", active=False)
    orphan = book.contract(book.account("Initech", owner=gone), AS_OF + timedelta(days=100))
    cli = cli_for(config_path)
    cli("sync", "--as-of", DAY)
    data = json.loads(cli("explain", renewed, "--as-of", DAY, "--json").output)
    assert (data["account_id"], data["account_name"]) == (account, "Globex")
    assert (data["owner_id"], data["owner_name"]) == (rep, "Riley Rep")
    assert data["decision"] == "update" and data["renewal"]["owner_id"] == rep  # as before
    text = cli("explain", renewed, "--as-of", DAY).output
    assert f"account {account} (Globex)" in text and f"owner {rep} (Riley Rep)" in text
    # no renewal: the owner it would have had, named too (here the reason it has none)
    skipped = cli("explain", orphan, "--as-of", DAY)
    assert f"owner {gone} (Gone Owner)" in skipped.output and "(Initech)" in skipped.output
    unknown = json.loads(cli("explain", "800NOPE", "--json").output)
    assert (unknown["account_name"], unknown["owner_name"]) == (None, None)


def test_runs_and_the_history_answer_while_the_mapping_file_is_broken(cli, mapping):
    cli("sync", "--as-of", DAY)
    first = sha256(mapping)
    mapping.write_text("models: [\n")  # an edit gone wrong: what did it look like before?
    assert cli("sync", "--as-of", DAY).exit_code == 2
    (run,) = json.loads(cli("runs", "--json").output)  # no CRM login, no mapping needed
    assert run["mapping_version"] == first[:8]
    (version,) = json.loads(cli("mappings", "history", "--json").output)
    assert (version["hash"], version["current"]) == (first, False)
    data = json.loads(cli("mappings", "diff", first[:8], "--json").output)
    assert data["changes"] is None and "+models: [\n" in data["diff"]  # the text diff still
