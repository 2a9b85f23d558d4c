"""Sending a message to the targets of `notify:` through Apprise (Slack, Microsoft Teams,
e-mail, or any URL Apprise knows). Each target is an environment variable holding an Apprise
URL: its tokens never live in app.yaml, and never reach a log line or the state store.

Sending never holds up or fails what called it: every target gets its own daemon thread, all
of them at most `notify.timeout_seconds` together, and whatever goes wrong (a variable unset,
a URL Apprise cannot use, a refusal, no answer) is returned and logged per target, the URL's
parts masked. Apprise's own log lines (which may quote a webhook URL) are kept to ourselves,
and urllib3's (its debug lines name the path posted to) are masked the same way."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from crm_renewals.connector.config_sections import NotifySettings
from crm_renewals.connector.ports import Check

log = logging.getLogger(__name__)
#: Apprise's logger: its records are caught per sending thread, never passed on as they are
APPRISE_LOGGER = "apprise"
#: the HTTP library's logger that names the URLs requested (at debug level)
HTTP_LOGGER = "urllib3.connectionpool"
#: URL parts at least this long are masked in what Apprise says (shorter ones say nothing)
SECRET_MIN = 6
WARNINGS = ("WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Message:
    """An alert: a one-line title and a few lines of body (plain text)."""

    title: str
    body: str
    #: info | success | warning | failure (Apprise's notify types: the colour in Slack/Teams)
    level: str = "warning"


@dataclass
class Delivery:
    """How a message went out: the targets that took it, and why each other one did not."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "failed": self.failed}


def send(
    settings: NotifySettings,
    message: Message,
    env: Mapping[str, str] | None = None,
    *,
    log_failures: bool = True,
) -> Delivery:
    """Send `message` to every target at once; waits `settings.timeout_seconds` at most. Each
    target that did not take it is logged (unless the caller says so itself)."""
    env = os.environ if env is None else env
    results: dict[str, str | None] = {}
    threads = []
    for name in settings.targets:
        url = (env.get(name) or "").strip()
        worker = threading.Thread(
            target=_deliver, args=(name, url, message, results), name=f"notify-{name}", daemon=True
        )
        worker.start()
        threads.append(worker)
    deadline = time.monotonic() + settings.timeout_seconds
    for worker in threads:
        worker.join(max(0.0, deadline - time.monotonic()))
    done = dict(results)  # a target answering after the deadline changes nothing now
    outcome = Delivery()
    for name in settings.targets:
        if name not in done:
            done[name] = f"no answer within {settings.timeout_seconds:g} s"
        if done[name] is None:
            outcome.sent.append(name)
            continue
        outcome.failed[name] = done[name]
        if log_failures:
            log.warning("alert %r not sent to %s: %s", message.title, name, done[name])
    if outcome.sent:
        log.info("alert %r sent to %s", message.title, ", ".join(outcome.sent))
    return outcome


def checks(settings: NotifySettings, env: Mapping[str, str] | None = None) -> list[Check]:
    """`renewals doctor`'s lines: each target set to a URL Apprise can use."""
    env = os.environ if env is None else env
    out = []
    for name in settings.targets:
        url = (env.get(name) or "").strip()
        problem = _unusable(url)
        if problem is None:
            out.append(Check(f"alert target {name}", True, f"{_scheme(url)}:// (Apprise)"))
        else:
            fix = f"set {name} to an Apprise URL (README: Alerts), e.g. slack://T.../B.../..."
            out.append(Check(f"alert target {name}", False, problem, fix))
    return out


def _deliver(name: str, url: str, message: Message, results: dict[str, str | None]) -> None:
    """One target (in its own thread): None in `results` when it took the message."""
    try:
        problem = _unusable(url)
        if problem is not None:
            results[name] = problem
            return
        import apprise

        with _caught(url) as said:
            sender = apprise.Apprise()
            sender.add(url)
            result = sender.notify(
                body=message.body,
                title=message.title,
                notify_type=message.level,
                body_format=apprise.NotifyFormat.TEXT,
            )
        # what Apprise said while sending (from its own threads): kept with its result
        said += [_mask(e.message, url) for e in result.logs() if e.level in WARNINGS]
        results[name] = None if result else (said[-1][:300] if said else "refused")
    except Exception as exc:  # noqa: BLE001 - a bug in a plugin must not reach the run
        results[name] = _mask(f"{type(exc).__name__}: {exc}", url)


def _unusable(url: str) -> str | None:
    """Why the target cannot be used as set (None: Apprise can use its URL)."""
    if not url:
        return "not set"
    if "://" not in url:
        return "not a URL (an Apprise URL looks like slack://...)"
    import apprise

    with _caught(url) as said:
        usable = apprise.Apprise().add(url)
    if usable:
        return None
    why = f": {said[-1]}" if said else ""
    return f"Apprise cannot use this {_scheme(url)}:// URL{why}"


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


class _Catch(logging.Handler):
    """Apprise's warnings of one thread, its URL's parts masked."""

    def __init__(self, url: str):
        super().__init__(logging.WARNING)
        self.url, self.thread, self.said = url, threading.get_ident(), []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            text = record.getMessage().strip().splitlines()
            self.said.append(_mask(text[0] if text else record.levelname, self.url)[:300])


class _caught:
    """`with _caught(url) as said:` what Apprise says meanwhile in this thread, masked."""

    _lock = threading.Lock()

    def __init__(self, url: str):
        self.handler = _Catch(url)

    def __enter__(self) -> list[str]:
        logger = logging.getLogger(APPRISE_LOGGER)
        with self._lock:
            logger.propagate = False  # its lines may quote a webhook URL with its token
            logger.addHandler(self.handler)
            _masked_http_log().urls.add(self.handler.url)
        return self.handler.said

    def __exit__(self, *_exc) -> None:
        with self._lock:
            logging.getLogger(APPRISE_LOGGER).removeHandler(self.handler)


class _MaskUrls(logging.Filter):
    """Masks the parts of the target URLs used so far in the HTTP library's lines."""

    def __init__(self):
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for url in list(self.urls):
            text = _mask(text, url)
        record.msg, record.args = text, ()
        return True


def _masked_http_log() -> _MaskUrls:
    """The one mask on the HTTP library's logger (added the first time a target is used)."""
    logger = logging.getLogger(HTTP_LOGGER)
    found = [f for f in logger.filters if isinstance(f, _MaskUrls)]
    if found:
        return found[0]
    mask = _MaskUrls()
    logger.addFilter(mask)
    return mask


def _mask(text: str, url: str) -> str:
    """`text` with every part of `url` that could be a secret (user, password, path segments,
    query values; as written and decoded) replaced by ***. The host stays: it tells where."""
    parts = urlsplit(url)
    words = [*parts.netloc.rpartition("@")[0].split(":"), *parts.path.split("/")]
    words += [v for _, v in parse_qsl(parts.query)]
    secrets = {w for word in words for w in (word, unquote(word)) if len(w) >= SECRET_MIN}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
