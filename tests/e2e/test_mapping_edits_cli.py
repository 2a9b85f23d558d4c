"""`renewals mappings revert` and `renewals mappings fields`: the command-line side of the
console's mapping editor, through the same service (checks, atomic write, history, audit)."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from crm_renewals.connector.adapters.sandbox.schema import OBJECTS
from crm_renewals.connector.cli import main
from crm_renewals.connector.config import load_config
from crm_renewals.connector.state import StateStore
from tests.conftest import AS_OF, ROOT, write_config

DAY = AS_OF.isoformat()


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def setup(tmp_path):
    """A seeded sandbox, a copy of the sandbox mapping, one sync (the copy's first version)."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text((ROOT / "mappings" / "sandbox.yaml").read_text())
    config = write_config(tmp_path, mapping=str(mapping))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["--config", str(config), *args], input=input)

    assert run("sandbox", "seed", "--as-of", DAY).exit_code == 0
    assert run("sync", "--as-of", DAY).exit_code in (0, 1)
    return run, mapping, config


def store_of(config) -> StateStore:
    return StateStore(load_config(config).state_url)


def test_revert_installs_a_version_keeps_the_replaced_one_and_is_audited(setup):
    run, mapping, config = setup
    first, original = sha(mapping), mapping.read_text()
    mapping.write_text(original.replace("segment: Segment__c", "segment: Health_Grade__c"))
    edited = sha(mapping)
    answer = run("mappings", "revert", first[:8], "--yes", "--json")
    assert answer.exit_code == 0, answer.output
    data = json.loads(answer.output)
    assert data["version"] == first[:8] and data["before"] == edited[:8] and data["changed"]
    assert mapping.read_text() == original
    store = store_of(config)
    try:
        assert {first, edited} <= {v.hash for v in store.versions.history("mapping")}
        (entry,) = [e for e in store.audit.list() if e.action == "mapping.save"]
    finally:
        store.close()
    assert entry.actor.startswith("cli")
    assert entry.detail == {
        "before": edited[:8],
        "after": first[:8],
        "revert_of": first[:8],
        "connection": "default",
    }


def test_revert_shows_the_change_and_asks_first(setup):
    run, mapping, _ = setup
    first, original = sha(mapping), mapping.read_text()
    edited = original.replace("segment: Segment__c", "segment: Health_Grade__c")
    mapping.write_text(edited)
    answer = run("mappings", "revert", first[:8], input="n\n")
    assert answer.exit_code == 1
    assert "~ account.segment" in answer.output and "+      segment: Segment__c" in answer.output
    assert mapping.read_text() == edited


def test_a_version_that_fails_the_checks_is_not_installed(setup):
    run, mapping, config = setup
    before = mapping.read_text()
    bad = before.replace("segment: Segment__c", "segment: {field: Segment__c, colour: red}")
    digest = hashlib.sha256(bad.encode()).hexdigest()
    store = store_of(config)
    store.versions.keep("mapping", digest, bad, str(mapping))
    store.close()
    answer = run("mappings", "revert", digest[:8], "--yes")
    assert answer.exit_code == 2
    assert "models.account.fields.segment.colour" in answer.output
    assert mapping.read_text() == before


def test_an_unknown_version_is_refused(setup):
    run, mapping, _ = setup
    answer = run("mappings", "revert", "ffffffff", "--yes", "--json")
    assert answer.exit_code == 2
    assert "is unknown" in json.loads(answer.stdout)["problems"][0]["message"]


def test_fields_lists_a_crm_objects_fields_from_its_schema(setup):
    run, _, _ = setup
    answer = run("mappings", "fields", "Account", "--json")
    assert answer.exit_code == 0, answer.output
    fields = json.loads(answer.output)["fields"]
    assert [f["name"] for f in fields] == sorted(OBJECTS["Account"])
    segment = next(f for f in fields if f["name"] == "Segment__c")
    assert segment["type"] == "picklist" and "Enterprise" in segment["picklist"]
    missing = run("mappings", "fields", "Nope")
    assert missing.exit_code == 1 and "no object 'Nope'" in missing.output
