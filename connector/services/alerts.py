"""What `notify:` alerts on, and when: a run that ended failed, stopped or interrupted (once per
run; a run that ends as the one before it did is a repeat and not sent again) and the first
run that ends well after such alerted runs (the recovery), open dead letters over the
threshold and an inbox that waits too long (once per episode: again only after it ended and
began anew), and the daily digest of accounts turned red.

Each alert's episode key is claimed in the state store before sending (state/notices.py), so
any number of processes can check: one of them sends. Checks run as each run ends
(services/runs.py), in the inbox worker's loop (webhooks/worker.py) and, for the digest, in
the scheduler (jobs/tasks.py). A check never raises into what called it.

A connection whose refresh token the CRM refused (connector/oauth/tokens.py) is told at once,
once per episode per connection, until it is connected again."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, timedelta

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services.notify import Message, send
from crm_renewals.connector.state import Run, StateStore, now
from crm_renewals.connector.state.database import aware

log = logging.getLogger(__name__)
FAILING = ("failed", "stopped", "interrupted")
#: the notice that remembers the last run checked (runs after it are looked at)
RUNS_CHECKED = "runs:checked"
DEAD_LETTERS, INBOX_WAIT, DIGEST = "dead_letters", "inbox_wait", "red_digest:"
#: a connection whose refresh token was refused (kept in the registry's notices, per name)
RECONNECT = "needs_reconnect:"
#: runs looked at per check at most (one ends between two checks, as a rule)
RUNS_PER_CHECK = 50
#: the first check after alerts are turned on looks at the runs started this recently
FIRST_LOOK_BACK = timedelta(days=1)
#: accounts named in the digest; the others are counted
DIGEST_NAMES = 20
#: red accounts read to name them (the worst scores first)
DIGEST_READ = 10_000


def check(config: AppConfig, store: StateStore) -> list[str]:
    """Every alert due now (runs, dead letters, the inbox's wait); the keys it sent. Never
    raises: a check that fails is logged and the others still run."""
    if not config.notify.on:
        return []
    sent: list[str] = []
    for step in (_runs, _dead_letters, _inbox_wait):
        try:
            sent += step(config, store)
        except Exception:  # noqa: BLE001 - an alert must never fail what checked it
            log.exception("alert check %s failed", step.__name__.strip("_"))
    return sent


def _runs(config: AppConfig, store: StateStore) -> list[str]:
    if not config.notify.run_failed:
        return []
    recent = store.runs.list(RUNS_PER_CHECK)  # newest first
    if not recent:
        return []
    mark = store.notices.get(RUNS_CHECKED)
    if mark and mark.detail:
        after = mark.detail["run_id"]
    else:  # the first check: the runs of the last day (a run killed before it, say)
        since = now() - FIRST_LOOK_BACK
        after = min([r.id for r in recent if aware(r.started_at) >= since] or [recent[0].id]) - 1
    sent, checked = [], after
    for run in sorted((r for r in recent if r.id > after), key=lambda r: r.id):
        if run.status == "running":
            break  # a run after it cannot have ended yet: look again next time
        checked = run.id
        if run.status in FAILING and _send_run(config, store, run):
            sent.append(f"run:{run.id}")
        elif run.status not in FAILING and _send_recovery(config, store, run):
            sent.append(f"recovered:{run.id}")
    if checked != after:
        store.notices.note(RUNS_CHECKED, {"run_id": checked})
    return sent


def _send_run(config: AppConfig, store: StateStore, run: Run) -> bool:
    before = store.runs.get(store.runs.before(run.id) or 0)
    repeat = before is not None and (before.status, before.error) == (run.status, run.error)
    key = f"run:{run.id}"
    if not store.notices.open(key, {"status": run.status, "repeat": repeat}) or repeat:
        return False
    _send_noted(config, store, key, _run_message(config, store, run), {"status": run.status})
    return True


def _send_recovery(config: AppConfig, store: StateStore, run: Run) -> bool:
    """A run that ended well after runs that were alerted as failing: told once."""
    streak: list[Run] = []
    before = store.runs.get(store.runs.before(run.id) or 0)
    while before is not None and before.status in FAILING and len(streak) < RUNS_PER_CHECK:
        streak.append(before)
        before = store.runs.get(store.runs.before(before.id) or 0)
    if not streak or store.notices.get(f"run:{streak[0].id}") is None:
        return False  # the run before it did not fail, or was never alerted
    key = f"recovered:{run.id}"
    statuses = " or ".join(sorted({r.status for r in streak}))
    detail = {"after": len(streak), "since_run": streak[-1].id}
    if not store.notices.open(key, detail):
        return False
    body = (
        f"Run {run.id} ({run.mode}, as of {run.as_of}) on {config.crm} ended {run.status}, "
        f"after {_n(len(streak), 'run')} that ended {statuses} (since run {streak[-1].id}).\n"
        f"Details: renewals runs --id {run.id}; {_page(config, f'/admin/runs/{run.id}')}"
    )
    title = f"crm-renewals: run {run.id} recovered"
    _send_noted(config, store, key, Message(title, body, "success"), detail)
    return True


def _run_message(config: AppConfig, store: StateStore, run: Run) -> Message:
    counts = run.counts or {}
    what = f"Run {run.id} ({run.mode}, as of {run.as_of}) on {config.crm} ended {run.status}"
    lines = [f"{what}: {run.error or 'no reason recorded'}."]
    if counts:
        done = ", ".join(f"{k} {counts.get(k, 0)}" for k in ("created", "updated", "failed"))
        lines.append(f"Renewals until then: {done}.")
    lines.append(f"Open dead letters: {store.dead_letters.open_count()}.")
    lines.append(f"Details: renewals runs --id {run.id}; {_page(config, f'/admin/runs/{run.id}')}")
    title = f"crm-renewals: run {run.id} {run.status}"
    return Message(title, "\n".join(lines), "failure" if run.status == "failed" else "warning")


def _dead_letters(config: AppConfig, store: StateStore) -> list[str]:
    over = config.notify.dead_letters_over
    if over is None:
        return []
    count = store.dead_letters.open_count()
    if count <= over:
        store.notices.close(DEAD_LETTERS)
        return []
    if not store.notices.open(DEAD_LETTERS, {"count": count, "over": over}):
        return []  # this episode was told
    letters = store.dead_letters.list()
    common = Counter(f"{d.kind}.{d.field}" if d.field else d.kind for d in letters)
    most = ", ".join(f"{what} {n}" for what, n in common.most_common(3))
    body = (
        f"{_n(count, 'open dead letter')}, over the alert threshold of {over}: records the CRM "
        f"refused or that failed to map.\nMost: {most}.\n"
        f"List: renewals deadletters list; {_page(config, '/admin/deadletters')}\n"
        "Once their cause is fixed: renewals deadletters retry."
    )
    title = f"crm-renewals: {_n(count, 'open dead letter')} (over {over})"
    _send_noted(config, store, DEAD_LETTERS, Message(title, body), {"count": count, "over": over})
    return [DEAD_LETTERS]


def _inbox_wait(config: AppConfig, store: StateStore) -> list[str]:
    minutes = config.notify.inbox_wait_minutes
    if minutes is None:
        return []
    inbox = Inbox(store)
    waited = inbox.oldest_wait()
    if waited <= minutes * 60:
        store.notices.close(INBOX_WAIT)
        return []
    detail = {"waited_minutes": round(waited / 60), "limit": minutes}
    if not store.notices.open(INBOX_WAIT, detail):
        return []
    body = (
        f"The webhook inbox's oldest work has waited {waited / 60:.0f} minutes (alert after "
        f"{minutes}): {_n(inbox.depth(), 'event')} and {_n(inbox.waiting(), 'delivery')} "
        "waiting.\n"
        "Is the inbox worker of renewals serve running, or a long run holding the run lock? "
        f"See renewals status, renewals runs; {_page(config, '/admin/')}"
    )
    title = f"crm-renewals: webhook inbox waiting {waited / 60:.0f} minutes"
    _send_noted(config, store, INBOX_WAIT, Message(title, body), detail)
    return [INBOX_WAIT]


def red_digest(config: AppConfig, store: StateStore) -> dict:
    """The daily digest: the accounts whose newest grade is red and was not at the previous
    digest (at the first: the day before the newest), sent only when there are some. One per
    day of health recorded, whichever scheduler gets there first; the job's summary."""
    day = store.history.last_day()
    if not config.notify.on or day is None:
        return {"status": "ok", "turned_red": 0}
    previous = store.notices.last(DIGEST)
    since = previous.detail["as_of"] if previous and previous.detail else _day_before(day)
    turned = _turned_red(store, since, day)
    detail = {"as_of": day, "since": since, "turned_red": len(turned)}
    if not store.notices.open(f"{DIGEST}{day}", detail):
        return {"status": "ok", **detail, "sent": False}  # told already
    if turned:
        _send_noted(config, store, f"{DIGEST}{day}", _digest(config, store, turned, since), detail)
    return {"status": "ok", **detail, "sent": bool(turned)}


def _turned_red(store: StateStore, since: str, day: str) -> set[str]:
    """Accounts red on `day` that were graded otherwise on `since`, or not graded yet (when
    anyone was: the first digest after the first scoring names no one)."""
    if since >= day:
        return set()
    latest, then = store.history.account_grades_on(day), store.history.account_grades_on(since)
    if not then:
        return set()
    return {a for a, grade in latest.items() if grade == "red" and then.get(a) != "red"}


def _digest(config: AppConfig, store: StateStore, turned: set[str], since: str) -> Message:
    rows, _, _ = store.browse.health("red", "", "score", DIGEST_READ, 0)
    named = [r for r in rows if r.account_id in turned][:DIGEST_NAMES]
    lines = [f"{_n(len(turned), 'account')} turned red since {since}:"]
    for r in named:
        drivers = "; ".join(r.drivers[:2]) if r.drivers else "no driver recorded"
        name = r.account_name or r.account_id
        lines.append(f"- {name}: score {r.score}, {r.trend or 'new'}; {drivers}")
    if len(turned) > len(named):
        lines.append(f"and {len(turned) - len(named)} more.")
    lines.append(f"Every red account: {_page(config, '/admin/health?grade=red')}")
    return Message(f"crm-renewals: {_n(len(turned), 'account')} turned red", "\n".join(lines))


def _send_noted(config: AppConfig, store: StateStore, key: str, message: Message, detail: dict):
    delivery = send(config.notify, message)
    store.notices.note(key, {**detail, "delivery": delivery.as_dict()})


def _page(config: AppConfig, path: str) -> str:
    """The console page, in full when the public address of renewals serve is known."""
    base = (config.webhooks.public_base_url or "").rstrip("/")
    return f"console: {base}{path}"


def _n(count: int, word: str) -> str:
    """`1 account`, `2 accounts`, `3 deliveries`."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


def _day_before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def reconnect_key(name: str) -> str:
    return f"{RECONNECT}{name}"


def needs_reconnect(config: AppConfig, registry: StateStore, name: str, reason: str) -> bool:
    """Connection `name` must be connected again (its refresh token was refused): told once
    per episode, in the registry's notices (the episode ends when it is connected again,
    `reconnected`). True if this call sent it. Never raises."""
    try:
        if not config.notify.on:
            return False
        detail = {"connection": name, "crm": config.crm}
        if not registry.notices.open(reconnect_key(name), detail):
            return False  # this episode was told
        body = (
            f"The {config.crm} connection {name} needs reconnecting: {reason}.\n"
            "Its runs stop (nothing is lost) until an admin connects it again: "
            f"{_page(config, '/admin/connections')} > Reconnect."
        )
        title = f"crm-renewals: connection {name} needs reconnecting"
        message = Message(title, body, "failure")
        _send_noted(config, registry, reconnect_key(name), message, detail)
        return True
    except Exception:  # noqa: BLE001 - an alert must never fail what raised it
        log.exception("alert needs_reconnect failed")
        return False


def reconnected(registry: StateStore, name: str) -> bool:
    """Connection `name` is connected again: its needs-reconnect episode ends."""
    return registry.notices.close(reconnect_key(name))
