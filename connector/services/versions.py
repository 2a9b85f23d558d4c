"""Config versions: the mapping file and app.yaml each run used (read once as the Context is
built, stored once per distinct content, named by the run), their history, and what changed
between two of them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.mapping_changes import FieldChange, mapping_changes
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.services.context import Context, UsedFile
from crm_renewals.connector.state import StateStore, Version
from crm_renewals.connector.yamlsource import parse_yaml

#: a database password written into state.url (scheme://user:PASSWORD@host, or ?password=)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)|([?&]password=)([^&\s]+)")


class UnknownVersionError(ConnectorError):
    """A version asked for that is not stored, or a prefix that fits more than one."""


def read_used_files(config: AppConfig) -> tuple[UsedFile, ...]:
    """The mapping file and app.yaml of `config` as they are now (app.yaml when it came from a
    file). Secrets never reach the store: app.yaml holds none by design (they come from the
    environment only: connector/config.py SECRET_ENV_VARS), except a database password that
    may be written into state.url, which is masked here before the text is hashed or stored."""
    files = [UsedFile("mapping", str(config.mapping_path), _read(config.mapping_path))]
    if config.source is not None:
        text = mask_passwords(_read(config.source))
        files.append(UsedFile("config", str(config.source), text))
    return tuple(files)


def current_hash(config: AppConfig) -> str | None:
    """sha256 of the mapping file as it is now (None: it cannot be read)."""
    try:
        return read_used_files(config)[0].hash
    except OSError:
        return None


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def mask_passwords(text: str) -> str:
    """`text` with every database password in a URL (user:PASSWORD@, ?password=) as ***."""
    return _URL_PASSWORD.sub(_masked, text)


def _masked(match: re.Match) -> str:
    if match.group(1):
        return f"{match.group(1)}***{match.group(3)}"
    return f"{match.group(4)}***"


def start_run(ctx: Context, mode: str, as_of: date) -> int:
    """A run in the history naming the versions of the files it uses, each stored once, in one
    commit with the run."""
    hashes = {f.kind: f.hash for f in ctx.files}
    with ctx.store.begin() as uow:
        for f in ctx.files:
            uow.versions.keep(f.kind, f.hash, f.content, f.path)
        return uow.runs.start(mode, as_of.isoformat(), hashes.get("mapping"), hashes.get("config"))


@dataclass
class VersionDiff:
    """Two versions of a file (`after` None: the file as it is now, not used by a run yet)
    and what changed: the unified diff of the text and, for mappings, the summary by model
    and field (None: a side is not YAML this release can read)."""

    before: Version
    after: Version | None
    after_path: str
    after_hash: str
    diff: list[str]
    changes: list[FieldChange] | None


def resolve(store: StateStore, kind: str, ref: str) -> Version:
    """The version `ref` (a hash or a unique prefix of one) names."""
    ref = ref.strip().lower()
    found = store.versions.matching(kind, ref) if re.fullmatch(r"[0-9a-f]{1,64}", ref) else []
    if len(found) != 1:
        what = f"is ambiguous ({len(found)} versions start with it)" if found else "is unknown"
        raise UnknownVersionError(
            f"{kind} version {ref!r} {what}: `renewals mappings history` lists them"
        )
    return next(v for v in store.versions.history(kind) if v.hash == found[0])


def diff_versions(
    store: StateStore, config: AppConfig, a: str | None, b: str | None
) -> VersionDiff | None:
    """What changed in the mapping from A to B (default: the two versions used last; A alone:
    against the current file). None: fewer than two versions to compare."""
    if a is None:
        history = store.versions.history("mapping")
        if len(history) < 2:
            return None
        before, after = history[1], history[0]
    else:
        before = resolve(store, "mapping", a)
        after = resolve(store, "mapping", b) if b is not None else None
    old = store.versions.content("mapping", before.hash) or ""
    if after is not None:
        new, new_path, new_hash = (
            store.versions.content("mapping", after.hash) or "",
            after.path,
            after.hash,
        )
    else:
        current = read_used_files(config)[0]
        new, new_path, new_hash = current.content, current.path, current.hash
        after = current_version(store, current)
    label_b = after.short if after is not None else f"{new_path} (current)"
    diff, changes = compare(old, new, before.short, label_b)
    return VersionDiff(before, after, new_path, new_hash, diff, changes)


def compare(
    old: str, new: str, label_a: str, label_b: str
) -> tuple[list[str], list[FieldChange] | None]:
    """The unified diff of two mapping texts and their changes by model and field (None: a
    side is not YAML this release can read)."""
    text = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), label_a, label_b
    )
    return list(text), _changes(old, new)


def current_version(store: StateStore, current: UsedFile) -> Version | None:
    """The stored version of the file as it is now (None: no run has used it yet)."""
    return next((v for v in store.versions.history(current.kind) if v.hash == current.hash), None)


def _changes(old: str, new: str) -> list[FieldChange] | None:
    try:
        return mapping_changes(parse_yaml(old, "before").data, parse_yaml(new, "after").data)
    except ConfigError:
        return None
