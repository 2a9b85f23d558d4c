"""Journey coverage: how many of the customer journey's touchpoints (one task per account per
segment, connector.domain.journey) fell due in the report's window, how many the reps
completed, and the renewal rate of accounts that kept up with their journey against those that
did not. Pure.

- a touchpoint is a journey task: one the ledger says we created, or one read back from the
  CRM with a journey dedupe key (`<account>:journey:<segment>:<segment start>`); its due date
  and status are the CRM's as last read, else what we wrote (open)
- due: its due date falls in the window and on or before as-of (a task not yet due is not
  counted); completed: the CRM says so (its status, or a completion time); overdue: due
  before as-of and not completed; open: due on as-of and not completed yet
- kept up: an account with touchpoints due whose completed share is at least `threshold`
  (1: all of them); behind: the other accounts with touchpoints due. Accounts with none due
  are in neither group. Each group's renewal rate is the report's (renewals won over renewals
  decided, connector.domain.reports) over its accounts' contracts ending in the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from crm_renewals.connector.domain.models import Task
from crm_renewals.connector.domain.reports import Outcome, ratio, retention

MARK = ":journey:"


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One journey task as far as we know it: `read` is False when the CRM's copy was not
    read back (yet), so its status is the one we wrote."""

    key: str
    account_id: str
    segment: int
    due_date: date
    completed: bool
    read: bool


@dataclass(frozen=True, slots=True)
class SegmentCoverage:
    segment: int | None  # None: every segment
    due: int
    completed: int
    overdue: int
    open: int
    completion: Decimal | None


@dataclass(frozen=True, slots=True)
class GroupRate:
    """The renewal figures of one group of accounts (kept up, or behind)."""

    accounts: int
    contracts_due: int
    renewed: int
    lost: int
    renewal_rate: Decimal | None


@dataclass(frozen=True, slots=True)
class JourneyCoverage:
    segments: list[SegmentCoverage]
    total: SegmentCoverage
    #: touchpoints due whose CRM copy was not read back (counted as not completed)
    unread: int
    threshold: Decimal
    kept_up: GroupRate
    behind: GroupRate


def touchpoints(written: Mapping[str, Mapping[str, Any]], read: Iterable[Task]) -> list[Touchpoint]:
    """The journey tasks: `written` (dedupe key -> fields the ledger recorded) and `read` (the
    tasks read back from the CRM), each key once, the CRM's copy first."""
    out: dict[str, Touchpoint] = {}
    for task in read:
        if (where := _place(task.dedupe_key)) is not None:
            # a status an admin added that closes a task reads `open`; the CRM's completion
            # time still says it was closed (Salesforce TaskStatus.IsClosed, CompletedDateTime)
            done = task.status == "completed" or task.completed_at is not None
            out[task.dedupe_key] = Touchpoint(task.dedupe_key, *where, task.due_date, done, True)
    for key, fields in written.items():
        due = fields.get("due_date")
        if key not in out and due and (where := _place(key)) is not None:
            out[key] = Touchpoint(key, *where, date.fromisoformat(due), False, False)
    return sorted(out.values(), key=lambda t: (t.account_id, t.segment, t.due_date))


def _place(key: str | None) -> tuple[str, int] | None:
    """(account id, segment number) of a journey dedupe key; None: not a journey task's."""
    if not key or MARK not in key:
        return None
    account, _, rest = key.rpartition(MARK)
    number = rest.split(":", 1)[0]
    return (account, int(number)) if number.isdigit() and account else None


def coverage(
    points: Iterable[Touchpoint],
    items: Iterable[Outcome],
    segments: int,
    start: date,
    end: date,
    as_of: date,
    threshold: Decimal = Decimal(1),
) -> JourneyCoverage:
    """Journey coverage over the touchpoints due in [start, min(end, as_of)] (module doc)."""
    due = [p for p in points if start <= p.due_date <= min(end, as_of)]
    numbers = range(1, max([segments, *(p.segment for p in due)]) + 1)
    rows = [_segment(n, [p for p in due if p.segment == n], as_of) for n in numbers]
    by_account: dict[str, list[Touchpoint]] = {}
    for p in due:
        by_account.setdefault(p.account_id, []).append(p)
    kept = {
        a
        for a, mine in by_account.items()
        if sum(p.completed for p in mine) >= threshold * len(mine)
    }
    ending = [o for o in items if start <= o.end_date <= end]
    return JourneyCoverage(
        rows,
        _segment(None, due, as_of),
        sum(not p.read for p in due),
        threshold,
        _group(kept, ending),
        _group(by_account.keys() - kept, ending),
    )


def _segment(number: int | None, due: list[Touchpoint], as_of: date) -> SegmentCoverage:
    done = sum(p.completed for p in due)
    late = sum(not p.completed and p.due_date < as_of for p in due)
    return SegmentCoverage(
        number, len(due), done, late, len(due) - done - late, ratio(done, len(due))
    )


def _group(accounts: set[str], ending: list[Outcome]) -> GroupRate:
    r = retention("", (o for o in ending if o.account_id in accounts))
    return GroupRate(len(accounts), r.due, r.renewed, r.lost, r.renewal_rate)
