"""Setting the connector up: `renewals config check`, `mappings validate`, `doctor` and
`setup`. Registered by connector.cli."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from crm_renewals.connector.cli_common import (
    EXIT_FATAL,
    EXIT_PARTIAL,
    config_of,
    config_problem,
    fatal_errors,
    json_option,
    open_context,
    out,
)
from crm_renewals.connector.cli_history import mappings_diff, mappings_history, mappings_revert
from crm_renewals.connector.cli_preview import preview_cmd
from crm_renewals.connector.cli_render import print_checks
from crm_renewals.connector.errors import ConfigError, Problem
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import Check, Diagnosable
from crm_renewals.connector.services.doctor import doctor as doctor_checks
from crm_renewals.connector.services.settings import (
    config_files,
    effective_config,
    effective_yaml,
    secrets_set,
)
from crm_renewals.connector.services.versions import mask_passwords


@click.group("config")
def config_group() -> None:
    """Configuration (app.yaml)."""


@config_group.command("check")
@click.pass_context
@fatal_errors
def config_check(ctx) -> None:
    """Validate app.yaml and its mapping file; print every problem with file and line."""
    cfg = config_of(ctx.parent)
    load_mapping(cfg.mapping_path, expect_crm=cfg.crm, policy=cfg.renewals)
    out.print(
        f"[green]OK[/]: configuration valid (crm: {cfg.crm}, mapping: {cfg.mapping_path}, "
        f"state: {mask_passwords(cfg.state_url)})"
    )


@config_group.command("show")
@json_option
@click.pass_context
@fatal_errors
def config_show(ctx, as_json: bool) -> None:
    """Print the effective configuration (every key, defaults included), the files it points
    at, and which secret environment variables are set (never their values)."""
    cfg = config_of(ctx.parent)
    secrets = secrets_set(cfg, os.environ)
    if as_json:
        data = {"config": effective_config(cfg), "files": config_files(cfg), "secrets": secrets}
        out.print_json(data=data)
        return
    out.print(effective_yaml(cfg), markup=False, highlight=False, end="")
    files = Table("file", "path", title="Files")
    for name, path in config_files(cfg).items():
        files.add_row(name, path)
    out.print(files)
    table = Table("environment variable", "secret", title="Secrets (from the environment)")
    for name, is_set in secrets.items():
        table.add_row(name, "[green]set[/]" if is_set else "[dim]unset[/]")
    out.print(table)


@click.group("mappings")
def mappings_group() -> None:
    """Field mappings (mappings/*.yaml)."""


mappings_group.add_command(mappings_history)
mappings_group.add_command(mappings_diff)
mappings_group.add_command(preview_cmd)
mappings_group.add_command(mappings_revert)


@mappings_group.command("validate")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--online", is_flag=True, help="Also check the mapping against the connected CRM's schema."
)
@json_option
@click.pass_context
@fatal_errors
def mappings_validate(ctx, files: tuple[Path, ...], online: bool, as_json: bool) -> None:
    """Check mapping FILES (default: the one app.yaml selects) against the canonical models
    (and the selected one against the stages app.yaml names)."""
    if online:
        if files:
            raise click.UsageError("--online checks the mapping app.yaml selects; give no FILES")
        _run_checks(ctx.parent, lambda crm: crm.check_mapping_online(), as_json)
        return
    cfg = None if files else config_of(ctx.parent)
    checked, problems = [], []
    for path in files or (cfg.mapping_path,):
        try:
            mapping = load_mapping(path, policy=cfg.renewals if cfg is not None else None)
            checked.append({"file": str(path), "crm": mapping.crm, "models": len(mapping.models)})
        except ConfigError as exc:
            problems += exc.problems
    if as_json:
        out.print_json(data={"ok": not problems, "files": checked, "problems": _problems(problems)})
        if problems:
            sys.exit(EXIT_FATAL)
        return
    for f in checked:
        out.print(f"[green]OK[/]: {f['file']} ({f['crm']}, {f['models']} models)")
    if problems:
        raise ConfigError(problems)


@mappings_group.command("fields")
@click.argument("obj", metavar="OBJECT")
@json_option
@click.pass_context
@fatal_errors
def mappings_fields(ctx, obj: str, as_json: bool) -> None:
    """The fields of CRM OBJECT (Account, deals, ...) as the CRM's schema describes them
    (Salesforce describe, HubSpot properties, the sandbox's schema): what a mapping can name,
    and what the console's field picker offers."""
    context = open_context(ctx.find_root())
    try:
        fields = context.crm.object_fields(obj)
    finally:
        context.close()
    if as_json:
        out.print_json(data={"object": obj, "fields": [asdict(f) for f in fields]})
    else:
        table = Table("field", "label", "type", "values", "", title=f"{obj} fields")
        for f in fields:
            ro = "read-only" if f.read_only else ""
            table.add_row(f.name, f.label, f.type, ", ".join(f.picklist), ro)
        message = f"The CRM has no object {obj!r} (or shows it no fields)."
        out.print(table if fields else message, markup=False)
    if not fields:
        sys.exit(EXIT_PARTIAL)


@click.command("doctor")
@json_option
@click.pass_context
@fatal_errors
def doctor(ctx, as_json: bool) -> None:
    """Check credentials, API version, object and field access, limits, and the mapping
    against the CRM's schema (what `mappings validate --online` checks), and the alert
    targets; print what to fix."""
    config = config_of(ctx)
    _run_checks(ctx, lambda crm: doctor_checks(crm, config), as_json)


@click.command("setup")
@click.argument("crm_name", metavar="CRM", type=click.Choice(["salesforce", "hubspot"]))
@click.option("--apply", "apply_", is_flag=True, help="Create what is missing (default: print).")
@json_option
@click.pass_context
@fatal_errors
def setup(ctx, crm_name: str, apply_: bool, as_json: bool) -> None:
    """Show (or with --apply create) the custom fields/properties the connector needs."""
    cfg = config_of(ctx)
    if cfg.crm != crm_name:
        raise ConfigError([config_problem("crm", f"`setup {crm_name}` needs crm: {crm_name}")])
    _run_checks(ctx, lambda crm: crm.setup(apply_), as_json)


def _run_checks(
    ctx: click.Context, run: Callable[[Diagnosable], list[Check]], as_json: bool
) -> None:
    context = open_context(ctx)
    try:
        checks = run(context.crm)
    finally:
        context.close()
    if as_json:
        out.print_json(
            data={"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
        )
    else:
        print_checks(out, checks)
    if not all(c.ok for c in checks):
        sys.exit(EXIT_PARTIAL)


def _problems(problems: list[Problem]) -> list[dict]:
    return [asdict(p) for p in problems]


COMMANDS = (config_group, mappings_group, doctor, setup)
