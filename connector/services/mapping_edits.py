"""Changing the installed mapping (the admin console's mapping page, `renewals mappings
revert`). The mapping file app.yaml selects stays the one source of truth; a candidate text is
checked as `renewals config check` checks the file, previewed as `mappings preview` does, and
saved only when the file is still the one the admin started from (its sha256, `base`): written
atomically, and every saved version kept in the history runs record into, so it can be
diffed and reverted to before any run used it."""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.errors import ConfigError, ConnectorError, Problem
from crm_renewals.connector.mapping_file import mapping_from_text
from crm_renewals.connector.services.context import UsedFile
from crm_renewals.connector.services.versions import read_used_files, resolve
from crm_renewals.connector.state import StateStore, Version
from crm_renewals.connector.state.versions import short

#: A candidate larger than this is refused unread (the shipped mappings are under 10 kB).
MAX_BYTES = 1_000_000
_LOCK = threading.Lock()


class StaleBaseError(ConnectorError):
    """The file changed (another admin saved, or it was edited on disk) since the candidate
    was made from it: nothing is written."""


class CandidateTooLargeError(ConnectorError):
    """A candidate over MAX_BYTES."""


@dataclass
class Candidate:
    """A mapping text not installed yet: the Mapping it holds, or the problems that stop it."""

    text: str
    mapping: Mapping | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mapping is not None and not self.problems


@dataclass(frozen=True)
class Saved:
    before: str  # sha256 of the file replaced
    after: str  # sha256 of the file now
    path: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def installed(config: AppConfig) -> UsedFile:
    """The mapping file as it is now: its path, text and sha256 (what `base` names)."""
    return read_used_files(config)[0]


def check(config: AppConfig, text: str) -> Candidate:
    """`text` checked as `renewals config check` checks the installed file: the canonical
    models, the CRM app.yaml selects and app.yaml's stages against its value maps; problems
    carry the line in `text`."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise CandidateTooLargeError(
            f"the candidate is larger than {MAX_BYTES:,} bytes: not a mapping file"
        )
    try:
        mapping = mapping_from_text(
            text, str(config.mapping_path), expect_crm=config.crm, policy=config.renewals
        )
    except ConfigError as exc:
        return Candidate(text, None, exc.problems)
    return Candidate(text, mapping)


def with_line_ends(text: str, like: str) -> str:
    """A text posted by a browser (its lines end CRLF) with the line ends of the file `like`."""
    text = text.replace("\r\n", "\n")
    return text.replace("\n", "\r\n") if "\r\n" in like else text


def version_text(store: StateStore, ref: str) -> tuple[Version, str]:
    """The stored version `ref` names (a hash or a unique prefix) and its text."""
    version = resolve(store, "mapping", ref)
    return version, store.versions.content("mapping", version.hash) or ""


def save(
    store: StateStore,
    config: AppConfig,
    text: str,
    base: str,
    actor: str,
    revert_of: str | None = None,
) -> Saved:
    """Install `text` as the mapping file: checked again (ConfigError), refused when the
    file is no longer `base` (StaleBaseError), written atomically with the file's mode, both
    versions kept in the history, audited `mapping.save`."""
    candidate = check(config, text)
    if not candidate.ok:
        raise ConfigError(candidate.problems)
    path = config.mapping_path
    with _one_save(config):
        current = installed(config)
        if current.hash != base.strip().lower():
            raise StaleBaseError(
                "the file changed since you opened it (by another admin or on disk): reload"
            )
        after = UsedFile("mapping", str(path), text)
        if after.hash != current.hash:
            _write(path, text)
        # the replaced version too: it may never have been used by a run (edited on disk)
        store.versions.keep("mapping", current.hash, current.content, current.path)
        store.versions.keep("mapping", after.hash, text, str(path))
    detail = {"connection": config.connection}
    detail |= {"before": short(current.hash), "after": short(after.hash)}
    if revert_of:
        detail["revert_of"] = revert_of
    store.audit.record(actor, "mapping.save", str(path), detail)
    return Saved(current.hash, after.hash, str(path))


@contextmanager
def _one_save(config: AppConfig) -> Iterator[None]:
    """One save at a time: threads of this process, and other processes (web workers, CLI)."""
    folder = config.data_path
    folder.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(folder / "mapping-save.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, text: str) -> None:
    """Replace the file in one step (a reader sees the old file or the new, never half),
    keeping its permissions."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
