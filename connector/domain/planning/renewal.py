"""The renewal of an eligible contract: priced (uplifted lines, upsell suggestions, health),
then planned as writes that respect what a rep has taken over; in CPQ mode, CPQ's variant."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.models import RenewalLine, RenewalOpportunity
from crm_renewals.connector.domain.planning.cpq import cpq_renewal
from crm_renewals.connector.domain.planning.eligibility import Eligible
from crm_renewals.connector.domain.planning.terms import amount_of, renewal_lines, uplift_of
from crm_renewals.connector.domain.planning.values import RenewalPlan
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.upsell import BookFacts, suggest
from crm_renewals.connector.domain.writes import (
    LedgerView,
    edited_by_rep,
    line_writes,
    renewal_writes,
    value_locks,
)

if TYPE_CHECKING:
    from crm_renewals.connector.domain.planning.planner import Planner

NAME_LIMIT = 120
#: Fields a rep owns once they act on the renewal.
SALES_FIELDS = frozenset({"name", "stage", "close_date", "owner_id", "amount", "lines"})


class Priced(NamedTuple):
    """The renewal as priced for the term: what its plan and its tasks both read (a tuple,
    as `Eligible`: one per renewal planned)."""

    opportunity: RenewalOpportunity
    lines: tuple[RenewalLine, ...]  # the renewal lines, then the upsell suggestions
    upsell: tuple[RenewalLine, ...]
    uplift: Decimal
    health: Health | None


def price_renewal(p: Planner, e: Eligible) -> Priced:
    """The renewal opportunity and its lines: the recurring lines uplifted, the upsell the
    rules suggest, the account's health; the amount is the renewal lines' alone."""
    policy, contract, account = p.policy, e.contract, e.account
    uplift = uplift_of(policy, contract)
    lines = renewal_lines(e.key, e.lines, uplift)
    health = p.health.get(account.id)
    facts = p.facts or BookFacts()
    usage = p.usage.get(account.id, {})
    upsell = suggest(p.upsell, e.key, contract, account.segment, lines, health, usage, facts)
    end = contract.end_date
    name = policy.name_template.format(
        account_name=account.name, contract_number=contract.number or contract.id, end_date=end
    )
    opportunity = RenewalOpportunity(
        key=e.key,
        contract_id=contract.id,
        account_id=account.id,
        name=name[:NAME_LIMIT],
        type=policy.opportunity_type,
        stage=policy.initial_stage,
        close_date=end,
        owner_id=e.owner.id,
        amount=amount_of(lines),
        health_score=health.score if health else None,
        health_grade=health.grade if health else None,
        health_drivers=health.drivers_text()[:255] if health else None,
    )
    return Priced(opportunity, lines + upsell, upsell, uplift, health)


def build_renewal(
    p: Planner, book: Book, ledger: LedgerView, e: Eligible, priced: Priced
) -> RenewalPlan:
    """Create the renewal, or update what differs and no rep has taken over (CPQ: ask CPQ)."""
    notes = _notes(p, e)
    if p.policy.renewal_mode == "cpq":
        return cpq_renewal(e.contract, priced.opportunity, notes, p.as_of)
    opportunity, existing, baseline = priced.opportunity, e.existing, e.baseline
    locked = _locks(p, book, ledger, e, priced) if existing is not None else frozenset()
    writes = renewal_writes(opportunity, existing, baseline, locked, p.computed)
    if "lines" not in locked:
        current = book.renewal_lines_of(e.key)
        writes += line_writes(e.contract.id, e.key, priced.lines, current, ledger)
    action = "create" if existing is None and baseline is None else "update"
    return RenewalPlan(
        action, opportunity, priced.lines, locked, notes, tuple(writes), current=existing
    )


def _locks(
    p: Planner, book: Book, ledger: LedgerView, e: Eligible, priced: Priced
) -> frozenset[str]:
    """What a rep has taken over of the existing renewal: fields and lines."""
    existing, opportunity = e.existing, priced.opportunity
    return frozenset(
        _locked_fields(p.policy, existing, book, ledger, priced.lines)
        | value_locks(opportunity, existing, e.baseline, p.computed)
    )


def _notes(p: Planner, e: Eligible) -> tuple[str, ...]:
    """How the owner was chosen; a renewal created late; a close date an amendment moves."""
    policy, end, existing = p.policy, e.contract.end_date, e.existing
    notes = [e.owner_note] if e.owner_note else []
    if existing is None and p.as_of > end - timedelta(days=policy.latest_creation_days):
        notes.append(f"late: created after end - {policy.latest_creation_days} days")
    if existing is not None and existing.close_date != end:
        notes.append(f"end date amended: close date moves {existing.close_date} -> {end}")
    return tuple(notes)


def _locked_fields(
    policy: RenewalPolicy,
    current: RenewalOpportunity | None,
    book: Book,
    ledger: LedgerView,
    desired_lines: tuple[RenewalLine, ...],
) -> set[str]:
    """Sales fields a rep has taken over; computed against the CRM's current values."""
    if current is None:
        return set()
    if current.stage != policy.initial_stage:
        return set(SALES_FIELDS)
    key = current.key
    wanted = {ln.key: ln for ln in desired_lines}
    ours = f"{key}:"
    for line in book.renewal_lines_of(key):
        if not (line.key or "").startswith(ours):
            return {"lines", "amount"}  # a line a rep added
        if line.kind == "renewal" and edited_by_rep(line, ledger, wanted.get(line.key)):
            return {"lines", "amount"}  # a renewal line a rep changed
    # a line we wrote and still want is gone: a rep removed it (a deleted line we no longer
    # want is our own delete whose ledger update a killed run did not record)
    if any(k in wanted and ledger.written("renewal_line", k) for k in book.deleted_lines_of(key)):
        return {"lines", "amount"}
    return set()
