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

from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache, lru_cache

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
from crm_renewals.connector.domain.policy import EventStep, Playbook, PlaybookStep, Touchpoint

#: More than any run of weekend days and public holidays a due date can be moved across.
SHIFT_DAYS = 14


@cache
def _holidays(country: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year))


def is_business_day(day: date, weekend: tuple[int, ...], country: str | None = None) -> bool:
    return day.weekday() not in weekend and (
        country is None or day not in _holidays(country, day.year)
    )


@lru_cache(maxsize=4096)  # a book's due dates fall on a few hundred days
def business_day(
    day: date, weekend: tuple[int, ...], backwards: bool, country: str | None = None
) -> date:
    """Move a due date off weekends and holidays: back for deadlines, forward for follow-ups."""
    step = timedelta(days=-1 if backwards else 1)
    while not is_business_day(day, weekend, country):
        day += step
    return day


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    if day.day <= 28:  # every month has it: no need to find the month's last day
        return date(year, month, day.day)
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def occurrences(step: PlaybookStep, contract: Contract) -> Iterator[tuple[date, str | None]]:
    """(unshifted due date, period label) of each time the step falls due in the term."""
    anchor = contract.end_date if step.anchor == "end" else contract.start_date
    if anchor is None:
        return
    first = anchor + timedelta(days=step.offset_days)
    if step.repeat == "once":
        yield first, None
        return
    i = 1
    while (day := add_months(first, 3 * i)) < contract.end_date:
        yield day, quarter(day)
        i += 1


def _current(
    step: PlaybookStep, contract: Contract, as_of: date
) -> Iterable[tuple[date, str | None]]:
    """occurrences() less those that planning passes over unread: a quarterly step's quarters
    that fell due more than SHIFT_DAYS before `as_of` when it is not `late_if_missed` (a
    three-year term has twelve). A step due once: a tuple, no generator (six a contract)."""
    if step.repeat == "once":
        anchor = contract.end_date if step.anchor == "end" else contract.start_date
        return () if anchor is None else ((anchor + timedelta(days=step.offset_days), None),)
    if step.late_if_missed:
        return occurrences(step, contract)
    return _quarters_since(step, contract, as_of)


def _quarters_since(
    step: PlaybookStep, contract: Contract, as_of: date
) -> Iterator[tuple[date, str | None]]:
    anchor = contract.end_date if step.anchor == "end" else contract.start_date
    if anchor is None:
        return
    first = anchor + timedelta(days=step.offset_days)
    since = as_of - timedelta(days=SHIFT_DAYS)
    # a quarter i with 3i months < the months from `first` to `since` falls before `since`
    i = max(1, ((since.year - first.year) * 12 + since.month - first.month) // 3)
    while (day := add_months(first, 3 * i)) < contract.end_date:
        if day >= since:
            yield day, quarter(day)
        i += 1


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


def may_be_due(playbook: Playbook, as_of: date, contract: Contract) -> bool:
    """Whether any dated step could fall in its creation window today (a cheap bound)."""
    for step in playbook.steps:
        lead = timedelta(days=step.create_before_days + SHIFT_DAYS)
        for day, _ in _current(step, contract, as_of):
            if as_of < day - lead:
                break
            if step.late_if_missed or day + timedelta(days=SHIFT_DAYS) >= as_of:
                return True
    return False


def plan_tasks(playbook: Playbook, as_of: date, tc: TaskContext) -> tuple[Task, ...]:
    contract = tc.contract
    renewal_contacts = sorted((c for c in tc.contacts if c.renewal_contact), key=lambda c: c.name)
    values: dict = {}
    weekend, country = playbook.weekend_days, playbook.holiday_country
    tasks = []
    shift = timedelta(days=SHIFT_DAYS)
    for step in playbook.steps:
        ahead = timedelta(days=step.create_before_days)
        lead = ahead + shift
        for day, period in _current(step, contract, as_of):
            # cheap bounds first: moving off weekends and holidays shifts a date by a few days
            if as_of < day - lead:
                break
            if not step.late_if_missed and day + shift < as_of:
                continue
            due = business_day(day, weekend, step.anchor == "end", country)
            if as_of < due - ahead:
                break
            if due < as_of:
                if not step.late_if_missed or as_of >= contract.end_date:
                    continue
                due = business_day(as_of, weekend, False, country)
            if step.scope == "account":
                key = f"{tc.account.id}:{step.id}:{period or quarter(day)}"
            else:
                key = f"{tc.term_key}:{step.id}" + (f":{period}" if period else "")
            values = values or _values(tc, renewal_contacts)
            tasks.append(
                _task(
                    key,
                    step,
                    due,
                    {**values, "period": period or ""},
                    tc,
                    renewal_contacts,
                    step.scope == "account",
                )
            )
    # events are the account's (its health, its contacts): one task per account, not per
    # contract, whichever of its contracts is planned first
    events = []
    if tc.at_risk and playbook.at_risk.enabled:
        events.append((f"{tc.account.id}:at_risk:{as_of.isoformat()}", playbook.at_risk))
    if not renewal_contacts and playbook.name_contact.enabled:
        events.append((f"{tc.account.id}:name_contact:{quarter(as_of)}", playbook.name_contact))
    if events and as_of < contract.end_date:
        values = values or _values(tc, renewal_contacts)
        soon = business_day(as_of, weekend, False, country)
        for key, event in events:
            tasks.append(_task(key, event, soon, values, tc, renewal_contacts, True))
    return tuple(tasks)


def on_account(task: Task) -> bool:
    """An account's task (an account step or an event, keyed `<account id>:...`): each of
    the account's contracts plans it."""
    return task.account_id is not None and task.dedupe_key.startswith(f"{task.account_id}:")


def quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _values(tc: TaskContext, renewal_contacts: list[Contact]) -> dict:
    h = tc.health
    util = h.values.get("seat_utilisation") if h else None
    before = h.previous.values.get("seat_utilisation") if h and h.previous else None
    usage = "no usage data"
    if util is not None:
        usage = f"seat utilisation {util:.0%}" + (f" (was {before:.0%})" if before else "")
    return {
        "account_name": tc.account.name,
        "contract_number": tc.contract.number or tc.contract.id,
        "end_date": tc.contract.end_date,
        "amount": _Amount(tc.amount) if callable(tc.amount) else f"{tc.amount:,.2f}",
        "currency": tc.contract.currency or "",
        "uplift_percent": f"{tc.uplift.normalize():f}",
        "contacts": _names(renewal_contacts),
        "owner_name": tc.owner.name,
        "health_score": "unknown" if h is None or h.score is None else str(h.score),
        "grade": (h.grade if h else None) or "unknown",
        "trend": h.trend if h else "new",
        "drivers": h.drivers_text() if h else "none",
        "usage_trend": usage,
        "upsell": "; ".join(ln.description or ln.product_code for ln in tc.upsell) or "none",
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
    exists: before, off the account too)."""
    values = {**values, "due_date": due}
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
