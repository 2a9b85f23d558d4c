"""Every command with --json prints JSON in every outcome (issue 13): a fatal error is a JSON
object on stdout (`ok: false`, `error`, `problems`), with the same exit code and the same one
line on stderr for a person."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from crm_renewals.connector.cli import main

COMMANDS = [
    ["sync", "--json"],
    ["sync", "--dry-run", "--json"],
    ["explain", "800X", "--json"],
    ["runs", "--json"],
    ["deadletters", "list", "--json"],
    ["deadletters", "retry", "--json"],
    ["report", "--json"],
    ["cpq", "retry", "--all", "--json"],
    ["mappings", "history", "--json"],
    ["mappings", "validate", "--json"],
    ["doctor", "--json"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:-1]))
def test_a_missing_configuration_is_json_with_json(tmp_path, args):
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), *args])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["error"] == "configuration"
    assert "configuration file not found" in data["problems"][0]["message"]
    assert "configuration file not found" in result.stderr


def test_signals_import_of_an_empty_file_is_json_with_json(tmp_path):
    from tests.conftest import write_config

    config = write_config(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    args = ["--config", str(config), "signals", "import", str(empty), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["error"] == "InputFileError"
    assert "the file is empty" in data["problems"][0]["message"]
