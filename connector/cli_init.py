"""`renewals init DIR`: the commented app.yaml and the default mappings, written for a user who
installed the wheel (the repository's own files, shipped as package data in
connector/defaults/). Registered by connector.cli."""

from __future__ import annotations

import errno
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import click
from rich.markup import escape

from crm_renewals.connector.cli_common import fatal_errors, out


def defaults() -> dict[str, Traversable]:
    """Each default file by its path relative to the folder it is written to."""
    root = resources.files("crm_renewals.connector") / "defaults"
    files = {"app.yaml": root / "app.yaml"}
    for mapping in sorted((root / "mappings").iterdir(), key=lambda f: f.name):
        if mapping.name.endswith(".yaml"):
            files[f"mappings/{mapping.name}"] = mapping
    return files


def write_defaults(folder: Path, force: bool) -> list[Path]:
    """Write the defaults into `folder`; without `force` nothing is written when one of them
    is there already (a user's edited app.yaml is never replaced by accident)."""
    targets = {folder / name: source for name, source in defaults().items()}
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        raise FileExistsError(
            errno.EEXIST, "already exists; nothing written (--force overwrites)", str(existing[0])
        )
    for path, source in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read_bytes())
    return list(targets)


@click.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite app.yaml and mappings already there.")
@fatal_errors
def init_cmd(folder: Path, force: bool) -> None:
    """Write a commented app.yaml and the default mappings into FOLDER (created if missing)."""
    written = write_defaults(folder, force)
    for path in written:
        out.print(f"Wrote {path}", markup=False, highlight=False)
    here = escape(str(folder))
    out.print(
        f"\nNext: [bold]cd {here} && renewals demo[/] (the bundled sandbox CRM: no credentials)."
        f"\nFor Salesforce or HubSpot: set crm: in {here}/app.yaml and the credentials in"
        "\nenvironment variables (SALESFORCE_* or HUBSPOT_ACCESS_TOKEN, never in a file), then"
        "\n[bold]renewals doctor[/] and [bold]renewals sync --dry-run[/]."
    )


COMMANDS = (init_cmd,)
