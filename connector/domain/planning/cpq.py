"""Salesforce CPQ makes the renewal (quote, pricing, lines): the connector asks for it by
setting the contract's renewal forecast, waits for it, then adds the playbook's tasks to CPQ's
renewal opportunity. It never writes a renewal opportunity or lines of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from crm_renewals.connector.domain.models import (
    Contract,
    ContractLine,
    CpqRenewal,
    Owner,
    RenewalOpportunity,
)
from crm_renewals.connector.domain.planning.terms import CENT, resolve_owner, uplift_of
from crm_renewals.connector.domain.planning.values import RenewalPlan
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.writes import LedgerView, Write

if TYPE_CHECKING:
    from crm_renewals.connector.domain.planning.planner import Planner


@dataclass(frozen=True, slots=True)
class ForecastAsked:
    """The write that asks CPQ for a renewal; `asked_on` (no CRM field) stays in the ledger,
    so a forecast CPQ does not honour is noticed."""

    asked_on: date
    renewal_forecast: bool = True


def forecast_wait(p: Planner, ledger: LedgerView, contract: Contract) -> tuple[bool, str] | None:
    """Forecast on, CPQ's renewal not there yet: (overdue?, why), else None. Overdue once the
    forecast is older than `cpq_overdue_days` or the latest-creation point has passed (and
    after the end)."""
    policy = p.policy
    if policy.renewal_mode != "cpq" or not contract.renewal_forecast or contract.cpq_renewal_id:
        return None
    cid = contract.id
    asked = (ledger.written("contract", cid) or {}).get("asked_on")
    since = f" since {asked}" if asked else ""
    latest = contract.end_date - timedelta(days=policy.latest_creation_days)
    late = (
        asked is not None and (p.as_of - date.fromisoformat(asked)).days > policy.cpq_overdue_days
    )
    if not late and p.as_of <= latest:
        return False, f"renewal forecast is on{since}; waiting for CPQ to create it"
    return True, (
        f"renewal forecast is on{since} and CPQ has not created the renewal (latest creation "
        f"{latest}); check CPQ's renewal job (an inactive renewal owner, a pricing error), then "
        f"re-flag it: renewals cpq retry {cid}"
    )


def cpq_renewal(
    contract: Contract, opportunity: RenewalOpportunity, notes: tuple[str, ...], as_of: date
) -> RenewalPlan:
    """Ask CPQ for the renewal (set the forecast), or note that the renewal is CPQ's."""
    cid = contract.id
    if contract.cpq_renewal_id is None:
        asked = ForecastAsked(as_of)
        write = Write("contract", "update", cid, cid, asked, ("renewal_forecast", "asked_on"))
        note = "CPQ creates the renewal once the contract's renewal forecast is on"
        return RenewalPlan("create", opportunity, (), notes=(*notes, note), writes=(write,))
    note = f"renewal opportunity {contract.cpq_renewal_id} is CPQ's; the connector adds tasks"
    return RenewalPlan("update", opportunity, (), notes=(*notes, note))


def cpq_terms(
    policy: RenewalPolicy,
    owners: dict[str, Owner],
    contract: Contract,
    lines: Sequence[ContractLine],
    owner: Owner,
    amount: Decimal,
) -> tuple[Owner, Decimal, Decimal]:
    """What CPQ's renewal says: its owner (CPQ's renewal owner choice; an inactive one's
    manager, or the fallback owner), its amount, and the uplift that amount implies over the
    contract's recurring value (CPQ prices with its own uplift)."""
    cpq = contract.cpq or CpqRenewal()
    if cpq.cpq_renewal_owner_id:
        cpq_owner, _ = resolve_owner(owners, cpq.cpq_renewal_owner_id, policy.fallback_owner)
        owner = cpq_owner or owner
    value = sum((ln.quantity * ln.unit_price for ln in lines), Decimal(0))
    if cpq.cpq_renewal_amount is None or not value:
        return owner, amount, uplift_of(policy, contract)
    uplift = ((cpq.cpq_renewal_amount / value - 1) * 100).quantize(CENT, ROUND_HALF_UP)
    return owner, cpq.cpq_renewal_amount, uplift
