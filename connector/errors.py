"""One exception tree, grouped by what the caller should do about it."""

from __future__ import annotations

from dataclasses import dataclass


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One configuration or mapping problem, located in its file."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ConnectorError):
    """Every problem found in a configuration or mapping file, reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MappingError(ConnectorError):
    """A record that cannot be mapped: names the record, the field and the value."""

    def __init__(self, kind: str, record_id: str | None, field: str, value: object, reason: str):
        self.kind = kind
        self.record_id = record_id
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{kind} {record_id or '?'}: field {field!r} value {value!r}: {reason}")


class UnmappedValueError(MappingError):
    """A value the field's value map (`map:`) has no entry for."""


class MappingGuardStop(ConnectorError):
    """A run stopped before its first write: too many of the records it read failed to map
    (`sync.max_map_failure_share`, or a kind that mapped cleanly now fails); `--force` writes
    anyway. The message names the field and reason that dominate."""


class CrmError(ConnectorError):
    """A CRM call failed."""

    def __init__(
        self,
        message: str,
        *,
        system: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: str | None = None,
    ):
        self.system = system
        self.status = status
        self.code = code
        self.request_id = request_id
        self.body = (body or "")[:500]
        super().__init__(message)


class RetriableCrmError(CrmError):
    """Transient: 429, 5xx, timeouts, row locks. Safe to retry (our writes are idempotent)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class FatalCrmError(CrmError):
    """Auth, permissions, limits exhausted: stop the run and say why."""


class ApiLimitReached(FatalCrmError):
    """The CRM's API allowance is used up (or past the configured share): the run stops cleanly
    and the next one resumes from its cursors."""


class RecordRejectedError(CrmError):
    """One record refused by the CRM: dead-letter it and carry on with the rest."""


class UnusableDatabaseError(ConnectorError):
    """A local database (the state store, the sandbox CRM's file) cannot be used: no driver for
    it, not a database, damaged, read-only, or written by a newer version. Stop; the message
    names the database and how to fix it."""


class InputFileError(ConnectorError):
    """An input file (a signals CSV) that cannot be read at all: names the file, the line and
    what it should hold. Nothing of it is imported."""


class WebhookRejectedError(ConnectorError):
    """A webhook delivery with a bad signature or payload: answer 4xx, store nothing."""
