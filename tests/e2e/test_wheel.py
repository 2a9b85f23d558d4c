"""The wheel as a user gets it: built from the repository, installed into a clean virtual
environment (no system site packages; dependencies from the package index as pip is set up
here, so pip's cache makes a repeat quick), then `renewals --version`, `renewals init DIR` and
`renewals demo` run from DIR."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_renewals.connector.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("connector", "webhooks", "jobs", "console")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
#: what a build does not read; setuptools' build/ keeps stale copies of deleted modules
NOT_BUILT = shutil.ignore_patterns(
    ".git", ".venv", "build", "data", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def run(*argv, **kw) -> subprocess.CompletedProcess:
    """A command in a clean environment: no RENEWALS_* setting of the caller leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENEWALS_", "PYTHON"))}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the working tree (as it is, uncommitted files too)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_BUILT)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp / "dist", source)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = (tmp / "dist").glob("*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed; its bin folder."""
    folder = tmp_path_factory.mktemp("venv")
    made = run(sys.executable, "-m", "venv", folder)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (folder / "pyvenv.cfg").read_text()
    pip = (folder / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile")
    installed = run(*pip, wheel, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return folder / "bin"


def test_version_comes_from_the_installed_distribution(venv):
    done = run(venv / "renewals", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"renewals, version {VERSION}"


def test_wheel_claims_one_import_name(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        dist_info = f"crm_renewals-{VERSION}.dist-info/"
        top_level = whl.read(dist_info + "top_level.txt").decode().split()
        metadata = whl.read(dist_info + "METADATA").decode()
    assert top_level == ["crm_renewals"]
    strays = [n for n in names if not n.startswith(("crm_renewals/", dist_info))]
    assert not strays
    assert dist_info + "licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata.splitlines()


def test_installed_site_packages_gain_no_generic_name(venv):
    (site,) = (venv.parent / "lib").glob("python3*/site-packages")
    top = {p.name for p in site.iterdir()}
    assert "crm_renewals" in top
    assert not top & {*SHIPPED, "mappings", "app.yaml", "tests", "tools", "benchmarks"}


def test_wheel_holds_every_file_of_the_shipped_folders(wheel):
    """Templates, static files, defaults: a file left out of package-data fails in production
    only (the development install reads the repository)."""
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    expected = {
        f"crm_renewals/{path.relative_to(ROOT).as_posix()}"
        for folder in SHIPPED
        for dirpath, _, files in os.walk(ROOT / folder, followlinks=True)
        if "__pycache__" not in dirpath
        for path in (Path(dirpath) / f for f in files)
    }
    assert expected - names == set()


def test_init_then_demo_from_the_new_folder(venv, tmp_path):
    project = tmp_path / "renewals"
    done = run(venv / "renewals", "init", project)
    assert done.returncode == 0, done.stderr
    assert f"cd {project} && renewals demo" in done.stdout
    assert (project / "app.yaml").read_bytes() == (ROOT / "app.yaml").read_bytes()
    for mapping in (ROOT / "mappings").glob("*.yaml"):
        assert (project / "mappings" / mapping.name).read_bytes() == mapping.read_bytes()

    demo = run(venv / "renewals", "demo", cwd=project, timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "crm-renewals demo" in demo.stdout
    assert "Second run: 0 writes" in demo.stdout
    # app.yaml's relative paths resolved from the new folder
    assert {p.name for p in (project / "data").iterdir()} >= {"sandbox.db", "state.db"}


def test_init_refuses_to_overwrite_unless_forced(venv, tmp_path):
    (tmp_path / "app.yaml").write_text("crm: hubspot  # mine\n")
    refused = run(venv / "renewals", "init", tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'app.yaml'}: already exists; nothing written (--force overwrites)"
    ]
    assert (tmp_path / "app.yaml").read_text() == "crm: hubspot  # mine\n"
    assert not (tmp_path / "mappings").exists()

    forced = run(venv / "renewals", "init", "--force", tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "app.yaml").read_bytes() == (ROOT / "app.yaml").read_bytes()


def test_init_in_the_development_install_writes_the_repository_files(tmp_path):
    """The editable install reads the same package data (symlinks into the repository)."""
    result = CliRunner().invoke(main, ["init", str(tmp_path / "new")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "new").as_posix() for p in tmp_path.rglob("*.yaml"))
    expected = ["app.yaml", *(f"mappings/{m.name}" for m in (ROOT / "mappings").glob("*.yaml"))]
    assert written == sorted(expected)
