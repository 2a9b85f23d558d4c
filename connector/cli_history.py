"""`renewals mappings history` and `renewals mappings diff`: the mapping versions runs used,
and what changed between two of them. Registered on the `mappings` group by cli_admin."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from connector import bootstrap
from connector.cli_common import EXIT_FATAL, fatal_errors, json_option, out
from connector.domain.mapping_changes import FieldChange
from connector.services.versions import (
    UnknownVersionError,
    VersionDiff,
    diff_versions,
    read_used_files,
)
from connector.state import Version
from connector.state.versions import short


@click.command("history")
@json_option
@click.pass_context
@fatal_errors
def mappings_history(ctx, as_json: bool) -> None:
    """Mapping versions runs used, the last used first: first and last use, runs, path."""
    cfg = bootstrap.load(ctx.obj["config"])
    store = bootstrap.open_store(cfg)  # the state store only: no CRM login
    try:
        versions = store.versions.history("mapping")
    finally:
        store.close()
    try:
        current = read_used_files(cfg)[0].hash
    except OSError:  # the file is gone: its versions are still listed
        current = None
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
    cfg = bootstrap.load(ctx.obj["config"])
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


def _print_diff(d: VersionDiff) -> None:
    after = d.after.short if d.after is not None else "the current file"
    out.print(f"Mapping {d.before.short} -> {after} ({d.after_path})", markup=False)
    if not d.diff:
        out.print("No changes.")
        return
    for change in d.changes or ():
        out.print(f"  {_summary(change)}", markup=False, highlight=False)
    out.print("")
    for line in d.diff:
        out.print(line.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


def _summary(c: FieldChange) -> str:
    """One line: + added, - removed, ~ changed (its value map's entries, or before -> after)."""
    if c.change != "changed":
        sign, spec = ("+", c.after) if c.change == "added" else ("-", c.before)
        return f"{sign} {c.where}: {_flow(spec)}"
    entries = [f"+{_flow(k)}: {_flow(v)}" for k, v in c.map_added.items()]
    entries += [f"-{_flow(k)}: {_flow(v)}" for k, v in c.map_removed.items()]
    entries += [f"{_flow(k)}: {_flow(o)} -> {_flow(n)}" for k, (o, n) in c.map_changed.items()]
    rest = [c.before, c.after]
    if entries:
        rest = [{k: v for k, v in s.items() if k != "map"} for s in (c.before, c.after)]
    said = [f"value map {', '.join(entries)}"] if entries else []
    if rest[0] != rest[1]:
        said.append(f"{_flow(rest[0])} -> {_flow(rest[1])}")
    return f"~ {c.where}: {'; '.join(said)}"


def _flow(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


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


COMMANDS = (mappings_history, mappings_diff)
