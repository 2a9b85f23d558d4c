"""Playbook engine: steps keyed to contract dates become tasks, each with a dedupe key.

A step's task is planned once today reaches `due - create_before_days`; a step whose due date
has already passed (the contract was first seen late) is planned due on the next business day,
as long as the contract has not ended. The dedupe key (renewal key = contract + term, step id)
means no re-run, retry or overlapping job creates it twice.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from connector.domain.models import Account, Contact, Contract, Owner, RenewalOpportunity, Task
from connector.domain.policy import Playbook, PlaybookStep


def business_day(day: date, weekend: tuple[int, ...], backwards: bool) -> date:
    """Move a due date off the weekend: back for deadlines, forward for follow-ups."""
    step = timedelta(days=-1 if backwards else 1)
    while day.weekday() in weekend:
        day += step
    return day


def step_due(step: PlaybookStep, contract: Contract, weekend: tuple[int, ...]) -> date | None:
    anchor = contract.end_date if step.anchor == "end" else contract.start_date
    if anchor is None:
        return None
    return business_day(
        anchor + timedelta(days=step.offset_days), weekend, backwards=step.anchor == "end"
    )


def plan_tasks(
    playbook: Playbook,
    as_of: date,
    contract: Contract,
    account: Account,
    renewal: RenewalOpportunity,
    owner: Owner,
    contacts: list[Contact],
    uplift: Decimal,
) -> tuple[Task, ...]:
    renewal_contacts = sorted((c for c in contacts if c.renewal_contact), key=lambda c: c.name)
    values = {
        "account_name": account.name,
        "contract_number": contract.number or contract.id,
        "end_date": contract.end_date,
        "amount": f"{renewal.amount:,.2f}",
        "currency": contract.currency or "",
        "uplift_percent": f"{uplift.normalize():f}",
        "contacts": _names(renewal_contacts),
        "owner_name": owner.name,
    }
    tasks = []
    for step in playbook.steps:
        due = step_due(step, contract, playbook.weekend_days)
        if due is None or as_of < due - timedelta(days=step.create_before_days):
            continue
        if due < as_of:
            if not step.late_if_missed or as_of >= contract.end_date:
                continue
            due = business_day(as_of, playbook.weekend_days, backwards=False)
        tasks.append(_task(step, due, values, renewal, owner, renewal_contacts))
    return tuple(tasks)


def _task(
    step: PlaybookStep,
    due: date,
    values: dict,
    renewal: RenewalOpportunity,
    owner: Owner,
    contacts: list[Contact],
) -> Task:
    values = {**values, "due_date": due}
    description = step.description.format(**values)
    if contacts:
        description += f"\nRenewal contacts: {values['contacts']}."
    else:
        description += (
            f"\nNo renewal contact is named for {values['account_name']}: "
            "name one on the account before this is due."
        )
    return Task(
        dedupe_key=f"{renewal.key}:{step.id}",
        owner_id=owner.id,
        subject=step.subject.format(**values),
        description=description,
        due_date=due,
        priority="high" if not contacts else step.priority,
        status="open",
        renewal_key=renewal.key,
        account_id=renewal.account_id,
        contact_id=contacts[0].id if contacts else None,
    )


def _names(contacts: list[Contact]) -> str:
    return ", ".join(f"{c.name} <{c.email}>" if c.email else c.name for c in contacts)
