"""`renewals mappings preview FILE`: the dry run of a candidate mapping next to the current
one, over the mirror, and the candidate against the CRM's schema (nothing written or stored,
app.yaml unchanged). Registered on the
`mappings` group by connector.cli_admin."""

from __future__ import annotations

import json
import sys
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_PARTIAL,
    as_of_option,
    fatal_errors,
    json_option,
    open_context,
    out,
)
from crm_renewals.connector.cli_render import print_check_lines
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import Check
from crm_renewals.connector.services.preview import (
    Preview,
    preview,
    schema_problems,
    summary,
    worse,
)
from crm_renewals.connector.services.sync import today


@click.command("preview")
@click.argument("file", type=click.Path(path_type=Path))
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def preview_cmd(ctx, file: Path, as_of: date | None, as_json: bool) -> None:
    """What mapping FILE would change: planned writes, skip reasons and records failing to
    map, next to the current mapping's, re-mapping the synced records; and FILE against the
    CRM's schema (what `mappings validate --online` reads). Nothing is written."""
    context = open_context(ctx.find_root())
    try:
        candidate = _candidate(file, context.config.crm, as_json)
        result = preview(context, candidate, as_of or today())
        problems = schema_problems(partial(bootstrap.build_crm, context.config), candidate)
    finally:
        context.close()
    data = summary(result, context.config.mapping_path, file, problems)
    if as_json:
        click.echo(json.dumps(data))
    else:
        print_preview(out, result, data)
    sys.exit(EXIT_PARTIAL if worse(data) else EXIT_OK)


def _candidate(file: Path, crm: str, as_json: bool):
    """The candidate, checked offline first; its problems as one error (JSON with --json)."""
    try:
        return load_mapping(file, expect_crm=crm)
    except ConfigError as exc:
        if not as_json:
            raise
        problems = [str(p) for p in exc.problems]
        error = f"{file} is not a usable {crm} mapping"
        click.echo(json.dumps({"ok": False, "error": error, "problems": problems}))
        sys.exit(EXIT_FATAL)


def print_preview(console: Console, p: Preview, data: dict[str, Any]) -> None:
    console.print(
        f"Preview of {data['candidate']} against {data['current']}: {data['records']} synced "
        f"records re-mapped (nothing written), as of {data['as_of']}",
        markup=False,
        highlight=False,
    )
    for title, rows in (
        ("Contracts", data["contracts"]),
        ("Writes planned", data["writes"]),
        ("Skipped, by reason", data["skip_reasons"]),
    ):
        if not rows:
            console.print(f"{title}: none, with either mapping.")
            continue
        t = Table("", "current", "candidate", "change", title=title)
        for name, n in rows.items():
            change = f"{n['change']:+d}" if n["change"] else ""
            t.add_row(name, str(n["current"]), str(n["candidate"]), change)
        console.print(t)
    if data["map_failures"]:
        f = Table("kind.field", "reason", "records", "sample ids", title="Candidate: map failures")
        for g in data["map_failures"]:
            f.add_row(
                f"{g['kind']}.{g['field']}", g["reason"], str(g["count"]), " ".join(g["sample_ids"])
            )
        console.print(f)
    for kind, fields in data["unread_fields"].items():
        console.print(
            f"Not in the mirror (previewed as empty): {kind} {', '.join(fields)}; install the "
            "candidate and run renewals sync --dry-run --full to read them",
            markup=False,
            highlight=False,
        )
    problems = [Check(**c) for c in data["schema_problems"]]
    if problems:
        console.print(f"[bold red]Candidate against the CRM's schema: {len(problems)} to fix[/]")
        print_check_lines(console, problems)
    else:
        console.print("The candidate fits the CRM's schema.")
    if p.candidate.guard:
        console.print("[bold red]A sync with the candidate would stop before writing:[/] ", end="")
        console.print(p.candidate.guard, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print("The mapping guard would let a sync with the candidate write.")
