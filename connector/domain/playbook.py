"""Playbook engine: steps keyed to contract dates become tasks, each with a dedupe key.

A step's task is planned once today reaches `due - create_before_days`; a step whose due date
has already passed (the contract was first seen late) is planned due on the next business day,
as long as the contract has not ended and the step is `late_if_missed`. The dedupe key (the
term's renewal key = contract + term end, the step id, and for repeating steps the period)
means no re-run, retry or overlapping job creates it twice. Steps of `scope: account` (QBR,
adoption check) and the events (the grade turned red or dropped sharply: at risk; no renewal
contact named) are the account's: keyed by account, step and period (quarter, or day for at
risk), so an account with several contracts gets one task, on the account.
Due dates fall on business days: not a weekend day, not a public holiday of `holiday_country`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.models import (
    Account,
    Contact,
    Contract,
    Owner,
    RenewalLine,
    Task,
)
from crm_renewals.connector.domain.playbook_dates import (
    SHIFT_DAYS,
    business_day,
    quarter,
    quarters,
)
from crm_renewals.connector.domain.policy import (
    EventStep,
    Playbook,
    PlaybookStep,
    Touchpoint,
)


@fast_init
@dataclass(frozen=True, slots=True)
class TaskContext:
    """What the tasks of one contract term are written from."""

    term_key: str  # the renewal key (contract + term end): the dedupe keys' stem
    parent_key: str | None  # the renewal opportunity the tasks hang off, once it exists
    contract: Contract
    account: Account
    owner: Owner
    contacts: tuple[Contact, ...]
    amount: Decimal | Callable[[], Decimal]  # a callable is asked only if a task is due
    uplift: Decimal
    health: Health | None = None
    upsell: tuple[RenewalLine, ...] = ()
    at_risk: bool = False


class Schedule:
    """The steps as read on one day: each step's creation window as bounds on its unshifted
    due dates (so a contract's steps are dates compared, not dates computed), and the
    business days already found. Built once a planning day, not once a contract."""

    __slots__ = (
        "as_of",
        "steps",
        "soon",
        "_shifted",
        "_weekend",
        "_country",
        "_account",
    )

    def __init__(self, playbook: Playbook, as_of: date):
        shift = timedelta(days=SHIFT_DAYS)
        self.as_of, self._weekend, self._country = (
            as_of,
            playbook.weekend_days,
            playbook.holiday_country,
        )
        self._shifted: dict[tuple[date, bool], date] = {}
        self.steps = tuple(
            (
                step,
                step.anchor == "end",
                step.repeat == "once",
                timedelta(days=step.offset_days),
                as_of + timedelta(days=step.create_before_days) + shift,  # later: not yet
                as_of - shift,  # earlier: missed, unless late_if_missed
                as_of + timedelta(days=step.create_before_days),  # a later due date: not yet
            )
            for step in playbook.steps
        )
        self.soon = self.business_day(as_of, False)
        self._account: tuple = ()

    def for_account(self, tc: TaskContext) -> tuple[list[Contact], dict]:
        """The renewal contacts by name and the placeholders' values that are the account's,
        kept for the last account asked (its contracts are planned one after another)."""
        held = self._account
        if (
            held
            and held[0] is tc.account
            and held[1] is tc.contacts
            and held[2] is tc.owner
            and held[3] is tc.health
        ):
            return held[4], held[5]
        contacts = sorted((c for c in tc.contacts if c.renewal_contact), key=lambda c: c.name)
        values = _account_values(tc, contacts)
        # one assignment: a thread sees the whole of one account's or of another's
        self._account = (tc.account, tc.contacts, tc.owner, tc.health, contacts, values)
        return contacts, values

    def business_day(self, day: date, backwards: bool) -> date:
        found = self._shifted.get((day, backwards))
        if found is None:
            found = business_day(day, self._weekend, backwards, self._country)
            self._shifted[day, backwards] = found
        return found

    def occurrences(
        self, step: PlaybookStep, first: date, end: date
    ) -> Iterable[tuple[date, str | None]]:
        """(unshifted due date, period label) of each time the step falls due in the term, from
        its first `first`, less what planning passes over unread: a quarterly step's quarters
        that fell due more than SHIFT_DAYS ago when it is not `late_if_missed`."""
        if step.repeat == "once":
            return ((first, None),)
        if step.late_if_missed:
            return quarters(first, end, 1)
        since = self.as_of - timedelta(days=SHIFT_DAYS)
        # a quarter i with 3i months < the months from `first` to `since` falls before `since`
        i = max(1, ((since.year - first.year) * 12 + since.month - first.month) // 3)
        return (q for q in quarters(first, end, i) if q[0] >= since)


def may_be_due(s: Schedule, contract: Contract) -> bool:
    """Whether any dated step could fall in its creation window today (a cheap bound)."""
    end = contract.end_date
    for step, end_anchor, _, offset, opens, missed, _ in s.steps:
        anchor = end if end_anchor else contract.start_date
        if anchor is None:
            continue
        for day, _ in s.occurrences(step, anchor + offset, end):
            if day > opens:
                break
            if step.late_if_missed or day >= missed:
                return True
    return False


def plan_tasks(
    playbook: Playbook, as_of: date, tc: TaskContext, s: Schedule | None = None
) -> tuple[Task, ...]:
    """The playbook's tasks of this contract due to be created on `as_of`. `s`: the playbook's
    schedule on that day, which a run's planner builds once (Planner.schedule)."""
    s = s or Schedule(playbook, as_of)
    contract, account_id = tc.contract, tc.account.id
    end = contract.end_date
    renewal_contacts = s.for_account(tc)[0]
    values: dict = {}
    tasks = []
    for step, end_anchor, once, offset, opens, missed, due_by in s.steps:
        anchor = end if end_anchor else contract.start_date
        if anchor is None:
            continue
        late, first = step.late_if_missed, anchor + offset
        if once and (first > opens or (not late and first < missed)):
            continue  # the bounds below, asked of a step due once: most steps, most contracts
        for day, period in s.occurrences(step, first, end):
            # cheap bounds first: moving off weekends and holidays shifts a date by a few days
            if day > opens:
                break
            if not late and day < missed:
                continue
            due = s.business_day(day, end_anchor)
            if due > due_by:
                break
            if due < as_of:
                if not late or as_of >= end:
                    continue
                due = s.soon
            if step.scope == "account":
                key = f"{account_id}:{step.id}:{period or quarter(day)}"
            else:
                key = f"{tc.term_key}:{step.id}" + (f":{period}" if period else "")
            values = values or _values(s, tc)
            values["period"] = period or ""
            tasks.append(
                _task(
                    key,
                    step,
                    due,
                    values,
                    tc,
                    renewal_contacts,
                    step.scope == "account",
                )
            )
    # events are the account's (its health, its contacts): one task per account, not per
    # contract, whichever of its contracts is planned first
    events = []
    if tc.at_risk and playbook.at_risk.enabled:
        events.append((f"{account_id}:at_risk:{as_of.isoformat()}", playbook.at_risk))
    if not renewal_contacts and playbook.name_contact.enabled:
        events.append((f"{account_id}:name_contact:{quarter(as_of)}", playbook.name_contact))
    if events and as_of < end:
        values = values or _values(s, tc)
        values.pop("period", None)  # an event has no period
        for key, event in events:
            tasks.append(_task(key, event, s.soon, values, tc, renewal_contacts, True))
    return tuple(tasks)


def on_account(task: Task) -> bool:
    """An account's task (an account step or an event, keyed `<account id>:...`): each of
    the account's contracts plans it."""
    return task.account_id is not None and task.dedupe_key.startswith(f"{task.account_id}:")


def _values(s: Schedule, tc: TaskContext) -> dict:
    """The placeholders' values for the contract's tasks: a dict of the caller's, which adds
    each task's period or segment (`_task` its due date)."""
    return {
        **s.for_account(tc)[1],
        "contract_number": tc.contract.number or tc.contract.id,
        "end_date": tc.contract.end_date,
        "amount": _Amount(tc.amount) if callable(tc.amount) else f"{tc.amount:,.2f}",
        "currency": tc.contract.currency or "",
        "uplift_percent": f"{tc.uplift.normalize():f}",
        "upsell": "; ".join(ln.description or ln.product_code for ln in tc.upsell) or "none",
    }


def _account_values(tc: TaskContext, renewal_contacts: list[Contact]) -> dict:
    h = tc.health
    util = h.values.get("seat_utilisation") if h else None
    before = h.previous.values.get("seat_utilisation") if h and h.previous else None
    usage = "no usage data"
    if util is not None:
        usage = f"seat utilisation {util:.0%}" + (f" (was {before:.0%})" if before else "")
    return {
        "account_name": tc.account.name,
        "contacts": _names(renewal_contacts),
        "owner_name": tc.owner.name,
        "health_score": "unknown" if h is None or h.score is None else str(h.score),
        "grade": (h.grade if h else None) or "unknown",
        "trend": h.trend if h else "new",
        "drivers": h.drivers_text() if h else "none",
        "usage_trend": usage,
    }


class _Amount:
    """The `{amount}` of a task planned before the renewal exists: the renewal's amount,
    worked out only if a template shows it (most tasks then, onboarding or QBRs, do not)."""

    __slots__ = ("_amount", "_text")

    def __init__(self, amount: Callable[[], Decimal]):
        self._amount, self._text = amount, None

    def __str__(self) -> str:
        if self._text is None:
            self._text = f"{self._amount():,.2f}"
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return repr(str(self))

    def __getitem__(self, key):
        return str(self)[key]


def _task(
    key: str,
    step: PlaybookStep | EventStep | Touchpoint,
    due: date,
    values: dict,
    tc: TaskContext,
    contacts: list[Contact],
    on_account: bool = False,
) -> Task:
    """The task; an account's task hangs off the account, a term's off its renewal (once it
    exists: before, off the account too). `values`: the caller's, given this due date."""
    values["due_date"] = due
    description = step.description.format_map(values)
    if contacts:
        description += f"\nRenewal contacts: {values['contacts']}."
    else:
        description += (
            f"\nNo renewal contact is named for {values['account_name']}: "
            "name one on the account before this is due."
        )
    return Task(
        dedupe_key=key,
        owner_id=tc.owner.id,
        subject=step.subject.format_map(values)[:255],
        description=description,
        due_date=due,
        priority="high" if not contacts else step.priority,
        status="open",
        renewal_key=None if on_account else tc.parent_key,
        account_id=tc.account.id,
        contact_id=contacts[0].id if contacts else None,
    )


def _names(contacts: list[Contact]) -> str:
    return ", ".join(f"{c.name} <{c.email}>" if c.email else c.name for c in contacts)
