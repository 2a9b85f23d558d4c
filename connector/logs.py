"""Logging for every process (the CLI, `renewals serve` with its web and inbox workers, the
scheduler): text (the default) or one JSON object per line (`--log-format json`,
RENEWALS_LOG_FORMAT), secrets redacted from both. What a run is (run id, CRM, scheduled job)
is held in a contextvar where the run starts, so every line logged during it names it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from pythonjsonlogger.json import JsonFormatter

from crm_renewals.connector.config import SECRET_ENV_PREFIXES, SECRET_ENV_VARS, STATE_URL_ENV

FORMATS = ("text", "json")
#: the log format when --log-format is not given
FORMAT_ENV = "RENEWALS_LOG_FORMAT"
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
#: shorter values are no secret worth hiding, and hiding them would blank out ordinary words
MIN_SECRET = 4
#: a record's own attributes: any other is an extra field (run_id, counts, ...)
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_PLAIN = logging.Formatter()
_fields: ContextVar[Mapping[str, Any]] = ContextVar(
    "renewals_log_fields", default=MappingProxyType({})
)


def secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """The values to redact, longest first: the secret environment variables (the state URL
    among them), those named RENEWALS_NOTIFY_* (alert targets with tokens) and, on its own, the
    password in RENEWALS_STATE_URL (as written in the URL and decoded)."""
    env = os.environ if env is None else env
    values = [env.get(name, "") for name in SECRET_ENV_VARS]
    values += [value for name, value in env.items() if name.startswith(SECRET_ENV_PREFIXES)]
    password = _password(env.get(STATE_URL_ENV, ""))
    values += [password, unquote(password)]
    return sorted({v for v in values if len(v) >= MIN_SECRET}, key=len, reverse=True)


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:  # not a URL: the state store says so, not the logs
        return ""


class RedactSecrets(logging.Filter):
    """Replaces every secret (see `secrets`) with '***' in a record: its message, its extra
    fields and its exception and stack text, whichever formatter writes it next."""

    def __init__(self, env: Mapping[str, str] | None = None):
        super().__init__()
        self.secrets = secrets(env)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:  # formatted here, once: formatters then print the text
            record.exc_text = record.exc_text or _PLAIN.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        record.__dict__.update({k: self._scrub(v) for k, v in extras.items()})
        return True

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        text = str(value)  # an object: as the JSON encoder would write it, if it shows a secret
        return value if self.redact(text) == text else self.redact(text)


class RunFields(logging.Filter):
    """Adds the fields of the run in progress (`log_context`) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            record.__dict__.setdefault(key, value)
        return True


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside (in this thread or greenlet) carries these fields."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


class JsonLines(JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, then the
    record's extra fields (run_id, crm, job, ...; the items of an extra `counts` dict, such
    as created, as fields of their own) and its exception text (exc_info)."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
        )

    def add_fields(self, log_data, record, message_dict) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)
        counts = log_data.pop("counts", None)
        if isinstance(counts, Mapping):
            log_data.update(counts)


def prepare(handler: logging.Handler, fmt: str) -> logging.Handler:
    """Redaction and the run's fields on `handler`; with `json`, JSON lines."""
    handler.addFilter(RedactSecrets())
    handler.addFilter(RunFields())
    if fmt == "json":
        handler.setFormatter(JsonLines())
    return handler


def setup(level: int = logging.WARNING, fmt: str = "text") -> None:
    """This process's root logger: one handler on stderr, in `fmt` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [prepare(handler, fmt)]
    root.setLevel(level)
    logging.captureWarnings(fmt == "json")  # a warning printed as is would not parse


def json_lines() -> bool:
    """Whether this process logs JSON lines (setup with `json`)."""
    return any(isinstance(h.formatter, JsonLines) for h in logging.getLogger().handlers)


def announce(log: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """A line a process always tells, whatever the level (listening on, its jobs, waiting for
    a run...): with JSON lines, where a plain print would not parse."""
    log.handle(log.makeRecord(log.name, level, "(cli)", 0, message, None, None, None, fields))
