"""The connector at a glance (`renewals status`, the console's overview): the last runs, the
CRM API calls runs made today, the webhook inbox, open dead letters and the accounts' latest
health mix. From the state store only: no CRM call, nothing loaded per record of the book."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_renewals.connector.domain.health import health_mix
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import Run, StateStore

#: health_on this day: each account's latest recorded health, whatever its day
_LATEST = "9999-12-31"


@dataclass(frozen=True)
class Status:
    runs: list[Run]
    #: CRM API calls recorded by the runs started since `day_start` (00:00 UTC today)
    api_calls_today: int
    day_start: datetime
    #: inbox events waiting to be processed, deliveries not yet read into events, and how
    #: long the longest-waiting of them has waited (what /healthz reports)
    inbox_waiting: int
    deliveries_waiting: int
    oldest_wait_s: float
    dead_letters_open: int
    #: accounts by their latest recorded grade: green, yellow, red, grey (scored without a grade)
    health: dict[str, int]
    #: the newest day a health was recorded (None: none yet)
    health_as_of: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [r.id for r in self.runs],
            "api_calls_today": self.api_calls_today,
            "day_start": self.day_start.isoformat(),
            "inbox_waiting": self.inbox_waiting,
            "deliveries_waiting": self.deliveries_waiting,
            "oldest_wait_seconds": round(self.oldest_wait_s),
            "dead_letters_open": self.dead_letters_open,
            "health": self.health,
            "health_as_of": self.health_as_of,
        }


def status(store: StateStore, *, last_runs: int = 8, now: datetime | None = None) -> Status:
    moment = now or datetime.now(UTC)
    day_start = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    inbox = Inbox(store)
    health, as_of = latest_health(store)
    return Status(
        runs=store.runs.list(last_runs),
        api_calls_today=store.runs.api_calls_since(day_start),
        day_start=day_start,
        inbox_waiting=inbox.depth(),
        deliveries_waiting=inbox.waiting(),
        oldest_wait_s=inbox.oldest_wait(),
        dead_letters_open=store.dead_letters.open_count(),
        health=health,
        health_as_of=as_of,
    )


def latest_health(store: StateStore) -> tuple[dict[str, int], str | None]:
    """Accounts by their latest recorded grade (grey: no grade), and the newest day."""
    grades = store.history.grades_on(_LATEST)
    mix = health_mix(())  # green, yellow, red: none yet
    mix.update({grade: n for grade, n in grades.items() if grade})
    mix["grey"] = grades.get(None, 0)
    return mix, store.history.last_day()
