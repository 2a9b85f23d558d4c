"""Journey coverage (connector.domain.journey_report): the touchpoints due in a report's window,
completed or not as the CRM says, and the renewal rate of accounts that kept up with their
journey against those that did not."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from crm_renewals.connector.domain.journey_report import coverage, touchpoints
from crm_renewals.connector.domain.models import Task
from crm_renewals.connector.domain.reports import Outcome

START, END, AS_OF = date(2026, 1, 1), date(2026, 6, 30), date(2026, 5, 15)


def key(account: str, segment: int, start: date) -> str:
    return f"{account}:journey:{segment}:{start.isoformat()}"


def written(*tasks: tuple[str, int, date]) -> dict[str, dict]:
    """Ledger rows of journey tasks we created: key -> the fields sent (JSON-safe)."""
    return {
        key(a, n, due): {"due_date": due.isoformat(), "account_id": a, "status": "open"}
        for a, n, due in tasks
    }


def read(account: str, segment: int, due: date, status: str = "completed", moved=None) -> Task:
    """A journey task as read back from the CRM (`moved`: the rep changed its due date)."""
    return Task(
        dedupe_key=key(account, segment, due),
        owner_id="005A",
        subject="Check in",
        due_date=moved or due,
        status=status,
        account_id=account,
    )


def outcome(contract: str, account: str, end: date, status: str) -> Outcome:
    return Outcome(contract, account, end, Decimal(1000), status)  # type: ignore[arg-type]


def test_touchpoints_due_are_those_in_the_window_up_to_as_of():
    points = touchpoints(
        written(
            ("A", 1, date(2025, 12, 31)),  # before the window
            ("A", 2, START),  # first day of the window
            ("A", 3, date(2026, 3, 2)),
            ("A", 4, AS_OF),  # due today: open, not overdue
            ("A", 5, date(2026, 5, 18)),  # not due yet: not counted
        ),
        [read("A", 2, START), read("A", 3, date(2026, 3, 2), status="open")],
    )
    j = coverage(points, [], 18, START, END, AS_OF)
    rows = {r.segment: r for r in j.segments}
    assert len(j.segments) == 18 and rows[1].due == 0 and rows[5].due == 0
    assert (rows[2].due, rows[2].completed, rows[2].overdue, rows[2].completion) == (
        1,
        1,
        0,
        Decimal(1),
    )
    assert (rows[3].due, rows[3].completed, rows[3].overdue, rows[3].open) == (1, 0, 1, 0)
    assert (rows[4].due, rows[4].overdue, rows[4].open) == (1, 0, 1)
    assert (j.total.due, j.total.completed, j.total.overdue, j.total.open) == (3, 1, 1, 1)
    assert j.total.completion == Decimal("0.3333")
    assert j.unread == 1  # segment 4's task was written, not read back yet


def test_the_window_end_before_as_of_bounds_the_touchpoints_due():
    points = touchpoints(written(("A", 1, date(2026, 6, 30)), ("A", 2, date(2026, 7, 1))), [])
    j = coverage(points, [], 18, START, END, date(2026, 8, 1))
    assert j.total.due == 1 and j.total.overdue == 1


def test_the_crms_copy_wins_over_what_we_wrote_and_other_tasks_are_not_touchpoints():
    due = date(2026, 4, 1)
    qbr = Task(dedupe_key="C1:qbr:2026-04-01", owner_id="005A", subject="QBR", due_date=due)
    points = touchpoints(written(("A", 4, due)), [read("A", 4, due, moved=date(2026, 5, 20)), qbr])
    assert [(p.account_id, p.segment, p.due_date, p.read) for p in points] == [
        ("A", 4, date(2026, 5, 20), True)
    ]
    j = coverage(points, [], 18, START, END, AS_OF)
    assert j.total.due == 0  # the rep moved it past as-of: not due yet


def test_a_task_read_back_without_a_ledger_row_still_counts():
    points = touchpoints({}, [read("A", 2, date(2026, 2, 1))])
    assert coverage(points, [], 18, START, END, AS_OF).total.completed == 1


def test_renewal_rate_of_accounts_that_kept_up_against_those_behind():
    points = touchpoints(
        written(("KEPT", 3, date(2026, 2, 1)), ("BEHIND", 3, date(2026, 2, 1))),
        [
            read("KEPT", 3, date(2026, 2, 1)),
            read("BEHIND", 3, date(2026, 2, 1), status="open"),
            read("BEHIND", 4, date(2026, 3, 3)),
            # lapsed: its last touchpoint was done, then the contract was lost
            read("LAPSED", 11, date(2026, 1, 20)),
            # a touchpoint after the window: the account has none due
            read("NONE", 1, date(2026, 9, 1)),
        ],
    )
    items = [
        outcome("k1", "KEPT", date(2026, 3, 31), "renewed"),
        outcome("k2", "KEPT", date(2026, 7, 31), "lost"),  # ends after the window
        outcome("b1", "BEHIND", date(2026, 4, 30), "lost"),
        outcome("b2", "BEHIND", date(2026, 5, 31), "renewed"),
        outcome("l1", "LAPSED", date(2026, 2, 28), "lost"),
        outcome("n1", "NONE", date(2026, 4, 30), "renewed"),
        outcome("x1", "NOJOURNEY", date(2026, 4, 30), "lost"),
    ]
    j = coverage(points, items, 18, START, END, AS_OF)
    kept, behind = j.kept_up, j.behind
    assert (kept.accounts, kept.contracts_due, kept.renewed, kept.lost) == (2, 2, 1, 1)
    assert kept.renewal_rate == Decimal("0.5")
    assert (behind.accounts, behind.contracts_due, behind.renewed, behind.lost) == (1, 2, 1, 1)
    assert behind.renewal_rate == Decimal("0.5")

    half = coverage(points, items, 18, START, END, AS_OF, threshold=Decimal("0.5"))
    assert (half.kept_up.accounts, half.behind.accounts) == (3, 0)
    assert half.behind.renewal_rate is None  # no account: no rate


def test_no_journey_no_touchpoints_no_rates():
    j = coverage([], [outcome("c", "A", date(2026, 3, 1), "renewed")], 18, START, END, AS_OF)
    assert [r.due for r in j.segments] == [0] * 18 and j.total.completion is None
    assert j.kept_up.accounts == j.behind.accounts == 0 and j.kept_up.renewal_rate is None


def test_a_task_closed_with_a_custom_status_counts_completed_by_its_completion_time():
    # Salesforce: several Task Status values may close a task (TaskStatus.IsClosed); one an
    # admin added reads `open`, but CompletedDateTime says when it was closed
    closed = read("A", 2, date(2026, 2, 1), status="open")
    closed = Task(**{**vars_of(closed), "completed_at": datetime(2026, 2, 3, 9, 30, tzinfo=UTC)})
    still_open = read("B", 2, date(2026, 2, 1), status="open")
    total = coverage(touchpoints({}, [closed, still_open]), [], 18, START, END, AS_OF).total
    assert (total.due, total.completed, total.overdue) == (2, 1, 1)


def vars_of(task: Task) -> dict:
    return {name: getattr(task, name) for name in Task.__dataclass_fields__}
