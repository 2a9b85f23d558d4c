"""`renewals mappings history` and `renewals mappings diff`: the mapping versions runs used,
and what changed between two of them. Registered on the `mappings` group by cli_admin."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    EXIT_FATAL,
    cli_actor,
    config_of,
    fatal_errors,
    json_option,
    out,
)
from crm_renewals.connector.domain.mapping_changes import FieldChange, describe
from crm_renewals.connector.services.mapping_edits import installed, save, version_text
from crm_renewals.connector.services.versions import (
    UnknownVersionError,
    VersionDiff,
    compare,
    current_hash,
    diff_versions,
)
from crm_renewals.connector.state import Version
from crm_renewals.connector.state.versions import short


@click.command("history")
@json_option
@click.pass_context
@fatal_errors
def mappings_history(ctx, as_json: bool) -> None:
    """Mapping versions runs used, the last used first: first and last use, runs, path."""
    cfg = config_of(ctx)
    store = bootstrap.open_store(cfg)  # the state store only: no CRM login
    try:
        versions = store.versions.history("mapping")
    finally:
        store.close()
    current = current_hash(cfg)  # None: the file is gone; its versions are still listed
    if as_json:
        out.print_json(json.dumps([_version_json(v, v.hash == current) for v in versions]))
        return
    if not versions:
        out.print("No mapping versions recorded yet: every run records the mapping it used.")
        return
    t = Table("version", "first used", "last used", "runs", "path", title="Mapping versions")
    for v in versions:
        mark = " *" if v.hash == current else ""
        t.add_row(
            v.short + mark, _when(v.first_used_at), _when(v.last_used_at), str(v.runs), v.path
        )
    out.print(t)
    if current in {v.hash for v in versions}:
        out.print("* the mapping file as it is now")


@click.command("diff")
@click.argument("a", required=False, metavar="[A]")
@click.argument("b", required=False, metavar="[B]")
@json_option
@click.pass_context
@fatal_errors
def mappings_diff(ctx, a: str | None, b: str | None, as_json: bool) -> None:
    """What changed in the mapping from version A to B (short hashes or unique prefixes, as
    `mappings history` shows them). Default: the two versions used last; A alone: A against
    the mapping file as it is now."""
    cfg = config_of(ctx)
    store = bootstrap.open_store(cfg)
    try:
        found = diff_versions(store, cfg, a, b)
    except UnknownVersionError as exc:
        if as_json:
            out.print_json(data={"error": str(exc)})
            sys.exit(EXIT_FATAL)
        raise
    finally:
        store.close()
    if found is None:
        message = "Fewer than two mapping versions recorded: nothing to compare yet."
        if as_json:
            out.print_json(
                data={"from": None, "to": None, "changes": [], "diff": "", "message": message}
            )
        else:
            out.print(message)
        return
    if as_json:
        out.print_json(json.dumps(_diff_json(found), default=str))
    else:
        _print_diff(found)


@click.command("revert")
@click.argument("version")
@click.option("--yes", is_flag=True, help="Install it without asking.")
@json_option
@click.pass_context
@fatal_errors
def mappings_revert(ctx, version: str, yes: bool, as_json: bool) -> None:
    """Install mapping VERSION (a version or unique prefix, as `mappings history` shows them)
    as the mapping file app.yaml selects: checked as `config check` checks the file, written
    in one step, kept in the history, audited. Shows what changes and asks first (--yes: not)."""
    cfg = config_of(ctx)
    store = bootstrap.open_store(cfg)
    try:
        found, text = version_text(store, version)
        current = installed(cfg)
        if not yes:
            if as_json:
                raise click.UsageError("--json needs --yes (nothing is asked in JSON mode)")
            diff, changes = compare(current.content, text, current.path, found.short)
            out.print(f"Mapping {current.path} -> {found.short}", markup=False)
            _print_changes(diff, changes)
            click.confirm(f"Install version {found.short} as {cfg.mapping_path}?", abort=True)
        saved = save(store, cfg, text, current.hash, cli_actor(), revert_of=found.short)
    finally:
        store.close()
    if as_json:
        data = {"ok": True, "version": short(saved.after), "before": short(saved.before)}
        out.print_json(data={**data, "path": saved.path, "changed": saved.changed})
    elif saved.changed:
        out.print(f"saved: version {short(saved.after)}; the next sync uses it", markup=False)
    else:
        out.print(f"version {short(saved.after)} is the installed mapping already", markup=False)


def _print_diff(d: VersionDiff) -> None:
    after = d.after.short if d.after is not None else "the current file"
    out.print(f"Mapping {d.before.short} -> {after} ({d.after_path})", markup=False)
    _print_changes(d.diff, d.changes)


def _print_changes(diff: list[str], changes: list[FieldChange] | None) -> None:
    if not diff:
        out.print("No changes.")
        return
    for change in changes or ():
        out.print(f"  {describe(change)}", markup=False, highlight=False)
    out.print("")
    for line in diff:
        out.print(line.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _version_json(v: Version, current: bool | None = None) -> dict[str, Any]:
    data = {
        "version": v.short,
        "hash": v.hash,
        "first_used": v.first_used_at.isoformat(),
        "last_used": v.last_used_at.isoformat() if v.last_used_at else None,
        "runs": v.runs,
        "path": v.path,
    }
    if current is not None:
        data["current"] = current
    return data


def _diff_json(d: VersionDiff) -> dict[str, Any]:
    after = _version_json(d.after) if d.after is not None else None
    return {
        "from": _version_json(d.before),
        "to": after or {"version": short(d.after_hash), "hash": d.after_hash, "path": d.after_path},
        "changes": None if d.changes is None else [_change_json(c) for c in d.changes],
        "diff": "".join(d.diff),
    }


def _change_json(c: FieldChange) -> dict[str, Any]:
    data = {"model": c.model, "field": c.field, "change": c.change}
    data.update(before=c.before, after=c.after)
    if c.map_added or c.map_removed or c.map_changed:
        data.update(map_added=c.map_added, map_removed=c.map_removed, map_changed=c.map_changed)
    return data


COMMANDS = (mappings_history, mappings_diff, mappings_revert)
