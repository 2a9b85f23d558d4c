"""Renewal planning: for each contract, decide (as a value) to create or update its renewal
opportunity, or skip it with a reason. Pure: the same function answers `sync`, `--dry-run`
and `explain`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from connector.domain.book import Book
from connector.domain.health import Health, is_at_risk
from connector.domain.models import (
    Account,
    Contract,
    ContractLine,
    CpqRenewal,
    Owner,
    RenewalLine,
    RenewalOpportunity,
    Task,
)
from connector.domain.playbook import TaskContext, may_be_due, on_account, plan_tasks
from connector.domain.policy import Playbook, RenewalPolicy, Scorecard, Upsell
from connector.domain.upsell import BookFacts, book_facts, suggest
from connector.domain.writes import (
    LedgerView,
    Write,
    edited_by_rep,
    line_writes,
    renewal_writes,
    task_writes,
    value_locks,
)

CENT = Decimal("0.01")
NAME_LIMIT = 120
#: Fields a rep owns once they act on the renewal.
SALES_FIELDS = frozenset({"name", "stage", "close_date", "owner_id", "amount", "lines"})

SkipReason = Literal[
    "not_due",
    "contract_ended",
    "contract_not_active",
    "already_renewed",
    "closed_renewal_exists",
    "missing_data",
    "no_active_owner",
    "renewal_deleted",
    "contract_deleted",
    "awaiting_cpq",
    "cpq_overdue",
]


@dataclass(frozen=True, slots=True)
class Skip:
    contract_id: str
    reason: SkipReason
    detail: str
    #: playbook tasks of a contract whose renewal is not due yet (onboarding, QBR, prep)
    tasks: tuple[Task, ...] = ()
    writes: tuple[Write, ...] = ()


@dataclass(frozen=True, slots=True)
class RenewalPlan:
    contract_id: str
    action: Literal["create", "update"]
    renewal: RenewalOpportunity
    lines: tuple[RenewalLine, ...]
    tasks: tuple[Task, ...]
    locked: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    writes: tuple[Write, ...] = ()
    current: RenewalOpportunity | None = field(default=None, compare=False)


Plan = RenewalPlan | Skip


@dataclass(frozen=True, slots=True)
class Planner:
    policy: RenewalPolicy
    playbook: Playbook
    as_of: date
    scorecard: Scorecard = field(default_factory=Scorecard)
    upsell: Upsell = field(default_factory=lambda: Upsell(enabled=False))
    #: account id -> health today (accounts with no measure are absent)
    health: Mapping[str, Health] = field(default_factory=dict)
    #: account id -> latest usage signal values (capped_feature_usage, ...)
    usage: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    facts: BookFacts | None = None
    #: renewal fields the CRM computes (mapping `computed: true`): never a rep's edit
    computed: frozenset[str] = frozenset()

    def with_facts(self, book: Book) -> Planner:
        """The planner with the book-wide facts the upsell rules read (computed once)."""
        if self.facts is not None or not self.upsell.enabled:
            return self
        seat_products = self.upsell.seat_expansion.seat_products
        facts = book_facts(book, self.policy.active_statuses, seat_products)
        return replace(self, facts=facts)

    def plan_book(self, book: Book, ledger: LedgerView) -> Iterator[Plan]:
        planner = self.with_facts(book)
        # the id set stays unnamed: the generator would hold it (MBs) for the whole planning
        for contract_id in planning_order(book, book.plannable_ids()):
            yield planner.plan(book, ledger, contract_id)

    def plan(self, book: Book, ledger: LedgerView, contract_id: str) -> Plan:
        contract = book.contracts.get(contract_id)
        if contract is None and contract_id in book.deleted_contracts:
            open_renewals = [
                r.key
                for r in book.renewals_of(contract_id)
                if r.stage not in self.policy.closed_won_stages + self.policy.closed_lost_stages
            ]
            return Skip(
                contract_id,
                "contract_deleted",
                "contract was deleted (or merged away) in the CRM: no renewal is created"
                + (
                    f"; open renewal {', '.join(open_renewals)} left as is" if open_renewals else ""
                ),
            )
        broken = book.broken_reason(contract_id)
        if contract is None or broken:
            return Skip(contract_id, "missing_data", broken or "contract is not in the book")
        planner = self.with_facts(book)
        plan = _plan_contract(planner, book, ledger, contract)
        if isinstance(plan, Skip) and plan.reason == "not_due":
            return _early_tasks(planner, book, ledger, contract, plan)
        return plan


def planning_order(book: Book, contract_ids: Iterable[str]) -> list[str]:
    """Contracts account by account (by id within one): an account's tasks, which each of its
    contracts plans, come one after another, so a run sends them once without remembering
    every account's (see services.apply.collect)."""
    order = sorted(contract_ids)
    order.sort(key=lambda c: account_of(book, c))
    return order


def account_of(book: Book, contract_id: str) -> str:
    contract = book.contracts.get(contract_id)
    return contract.account_id if contract is not None else ""


def renewal_key(contract: Contract) -> str:
    """One renewal per contract term: the contract id and the term's end date."""
    return f"{contract.id}:{contract.end_date.isoformat()}"


def _plan_contract(p: Planner, book: Book, ledger: LedgerView, contract: Contract) -> Plan:
    policy = p.policy
    cid = contract.id
    key = renewal_key(contract)
    if key in book.deleted_renewal_keys and ledger.written("renewal_opportunity", key):
        return Skip(
            cid, "renewal_deleted", f"renewal {key} was deleted in the CRM; it is not created again"
        )
    existing = _existing_renewal(book.renewals_of(cid), key)
    if existing is not None:
        if existing.stage in policy.closed_won_stages:
            return Skip(cid, "already_renewed", f"renewal {existing.key} is {existing.stage}")
        if existing.stage in policy.closed_lost_stages and existing.key == key:
            return Skip(cid, "closed_renewal_exists", f"renewal {existing.key} is {existing.stage}")
        if existing.stage in policy.closed_lost_stages:
            existing = None
    if contract.status not in policy.active_statuses:
        return Skip(cid, "contract_not_active", f"contract status is {contract.status}")
    if policy.renewal_mode == "cpq" and contract.renewal_forecast and not contract.cpq_renewal_id:
        return _awaiting_cpq(p, ledger, contract)
    end = contract.end_date
    baseline = ledger.written("renewal_opportunity", existing.key if existing else key)
    if existing is None and baseline is None:
        opens = end - timedelta(days=policy.lead_time_days)
        if p.as_of < opens:
            return Skip(
                cid,
                "not_due",
                f"renewal window opens {opens} ({policy.lead_time_days} "
                f"days before the end date {end})",
            )
        if p.as_of > end:
            return Skip(cid, "contract_ended", f"contract ended {end} with no renewal")
    account = book.accounts.get(contract.account_id)
    if account is None:
        return Skip(cid, "missing_data", f"account {contract.account_id} is not in the synced book")
    lines = [ln for ln in book.lines_of(cid) if ln.recurring]
    if not lines:
        return Skip(cid, "missing_data", "contract has no recurring lines to renew")
    owner, owner_note = _owner(policy, book, contract, account)
    if owner is None:
        return Skip(cid, "no_active_owner", owner_note)

    uplift = _uplift(policy, contract)
    key = existing.key if existing is not None else key
    renewal_lines = tuple(_renewal_line(key, ln, uplift) for ln in lines)
    health = p.health.get(account.id)
    upsell = suggest(
        p.upsell,
        key,
        contract,
        account.segment,
        renewal_lines,
        health,
        p.usage.get(account.id, {}),
        p.facts or BookFacts(),
    )
    name = policy.name_template.format(
        account_name=account.name, contract_number=contract.number or cid, end_date=end
    )
    renewal = RenewalOpportunity(
        key=key,
        contract_id=cid,
        account_id=account.id,
        name=name[:NAME_LIMIT],
        type=policy.opportunity_type,
        stage=policy.initial_stage,
        close_date=end,
        owner_id=owner.id,
        amount=_amount(renewal_lines),
        health_score=health.score if health else None,
        health_grade=health.grade if health else None,
        health_drivers=health.drivers_text()[:255] if health else None,
    )
    renewal_lines += upsell
    notes = [owner_note] if owner_note else []
    if existing is None and p.as_of > end - timedelta(days=policy.latest_creation_days):
        notes.append(f"late: created after end - {policy.latest_creation_days} days")
    if existing is not None and existing.close_date != end:
        notes.append(f"end date amended: close date moves {existing.close_date} -> {end}")
    locked = _locked_fields(policy, existing, book, ledger, renewal_lines) | value_locks(
        renewal, existing, baseline, p.computed
    )
    task_owner, amount, task_uplift = owner, renewal.amount, uplift
    if policy.renewal_mode == "cpq" and contract.cpq_renewal_id:
        task_owner, amount, task_uplift = _cpq_terms(policy, book, contract, lines, owner, amount)
    tasks = plan_tasks(
        p.playbook,
        p.as_of,
        TaskContext(
            key,
            key,
            contract,
            account,
            task_owner,
            book.contacts_of(account.id),
            amount,
            task_uplift,
            health,
            upsell,
            is_at_risk(p.scorecard, health),
        ),
    )
    if policy.renewal_mode == "cpq":
        # the account's own tasks (QBR, at risk) stay with the account's owner
        tasks = tuple(replace(t, owner_id=owner.id) if on_account(t) else t for t in tasks)
        return _plan_cpq(contract, renewal, tasks, ledger, tuple(notes), p.as_of)
    writes = renewal_writes(renewal, existing, baseline, frozenset(locked), p.computed)
    if "lines" not in locked:
        writes += line_writes(cid, key, renewal_lines, book.renewal_lines_of(key), ledger)
    writes += task_writes(cid, tasks, ledger)
    action = "create" if existing is None and baseline is None else "update"
    return RenewalPlan(
        cid,
        action,
        renewal,
        renewal_lines,
        tasks,
        frozenset(locked),
        tuple(notes),
        tuple(writes),
        existing,
    )


def _plan_cpq(
    contract: Contract,
    renewal: RenewalOpportunity,
    tasks: tuple[Task, ...],
    ledger: LedgerView,
    notes: tuple[str, ...],
    as_of: date,
) -> Plan:
    """Salesforce CPQ makes the renewal (quote, pricing, lines): the connector asks for it by
    setting the contract's renewal forecast, then adds the playbook tasks to CPQ's renewal
    opportunity. It never writes a renewal opportunity or lines of its own."""
    cid = contract.id
    if contract.cpq_renewal_id is None:
        asked = ForecastAsked(as_of)
        write = Write("contract", "update", cid, cid, asked, ("renewal_forecast", "asked_on"))
        note = "CPQ creates the renewal once the contract's renewal forecast is on"
        return RenewalPlan(cid, "create", renewal, (), (), notes=(*notes, note), writes=(write,))
    note = f"renewal opportunity {contract.cpq_renewal_id} is CPQ's; the connector adds tasks"
    writes = tuple(task_writes(cid, tasks, ledger, contract.cpq_renewal_id))
    return RenewalPlan(cid, "update", renewal, (), tasks, notes=(*notes, note), writes=writes)


def _cpq_terms(
    policy: RenewalPolicy,
    book: Book,
    contract: Contract,
    lines: list[ContractLine],
    owner: Owner,
    amount: Decimal,
) -> tuple[Owner, Decimal, Decimal]:
    """What CPQ's renewal says: its owner (CPQ's renewal owner choice; an inactive one's
    manager, or the fallback owner), its amount, and the uplift that amount implies over the
    contract's recurring value (CPQ prices with its own uplift)."""
    cpq = contract.cpq or CpqRenewal()
    if cpq.cpq_renewal_owner_id:
        cpq_owner, _ = resolve_owner(book.owners, cpq.cpq_renewal_owner_id, policy.fallback_owner)
        owner = cpq_owner or owner
    value = sum((ln.quantity * ln.unit_price for ln in lines), Decimal(0))
    if cpq.cpq_renewal_amount is None or not value:
        return owner, amount, _uplift(policy, contract)
    uplift = ((cpq.cpq_renewal_amount / value - 1) * 100).quantize(CENT, ROUND_HALF_UP)
    return owner, cpq.cpq_renewal_amount, uplift


@dataclass(frozen=True, slots=True)
class ForecastAsked:
    """The write that asks CPQ for a renewal; `asked_on` (no CRM field) stays in the ledger,
    so a forecast CPQ does not honour is noticed."""

    asked_on: date
    renewal_forecast: bool = True


def _awaiting_cpq(p: Planner, ledger: LedgerView, contract: Contract) -> Skip:
    """Forecast on, CPQ's renewal not there yet: waiting, or overdue once the forecast is
    older than `cpq_overdue_days` or the latest-creation point has passed (and after the end)."""
    cid, policy = contract.id, p.policy
    asked = (ledger.written("contract", cid) or {}).get("asked_on")
    since = f" since {asked}" if asked else ""
    latest = contract.end_date - timedelta(days=policy.latest_creation_days)
    late = (
        asked is not None and (p.as_of - date.fromisoformat(asked)).days > policy.cpq_overdue_days
    )
    if not late and p.as_of <= latest:
        return Skip(
            cid, "awaiting_cpq", f"renewal forecast is on{since}; waiting for CPQ to create it"
        )
    return Skip(
        cid,
        "cpq_overdue",
        f"renewal forecast is on{since} and CPQ has not created the renewal (latest creation "
        f"{latest}); check CPQ's renewal job (an inactive renewal owner, a pricing error), then "
        f"re-flag it: renewals cpq retry {cid}",
    )


def _early_tasks(
    p: Planner, book: Book, ledger: LedgerView, contract: Contract, skip: Skip
) -> Skip:
    """Playbook tasks due before the renewal exists: onboarding, adoption, QBRs, prep, risk."""
    account: Account | None = book.accounts.get(contract.account_id)
    if account is None:
        return skip
    health = p.health.get(account.id)
    at_risk = is_at_risk(p.scorecard, health)
    contacts = book.contacts_of(account.id)
    named = any(c.renewal_contact for c in contacts)
    if named and not at_risk and not may_be_due(p.playbook, p.as_of, contract):
        return skip  # most contracts, most days: nothing to do, so nothing to compute
    owner, _ = _owner(p.policy, book, contract, account)
    if owner is None:
        return skip
    uplift = _uplift(p.policy, contract)

    def amount() -> Decimal:  # what the renewal will amount to; only a template may ask
        lines = book.lines_of(contract.id)
        return _amount([_renewal_line("", ln, uplift) for ln in lines if ln.recurring])

    tc = TaskContext(
        renewal_key(contract),
        None,
        contract,
        account,
        owner,
        contacts,
        amount,
        uplift,
        health,
        (),
        at_risk,
    )
    tasks = plan_tasks(p.playbook, p.as_of, tc)
    if not tasks:
        return skip
    return replace(skip, tasks=tasks, writes=tuple(task_writes(contract.id, tasks, ledger)))


def _owner(
    policy: RenewalPolicy, book: Book, contract: Contract, account: Account
) -> tuple[Owner | None, str]:
    """The renewal's owner (contract's or account's, by policy; an inactive one's manager, or
    the configured fallback) and a note on how it was chosen."""
    owner_id = contract.owner_id if policy.owner_source == "contract" else account.owner_id
    return resolve_owner(book.owners, owner_id or account.owner_id, policy.fallback_owner)


def _uplift(policy: RenewalPolicy, contract: Contract) -> Decimal:
    return contract.uplift_percent if contract.uplift_percent is not None else policy.uplift_percent


def _amount(lines: Iterable[RenewalLine]) -> Decimal:
    """The renewal amount: the renewal lines summed, to the cent."""
    total = sum((rl.quantity * rl.unit_price for rl in lines), Decimal(0))
    return total.quantize(CENT, ROUND_HALF_UP)


def _existing_renewal(
    renewals: tuple[RenewalOpportunity, ...], key: str
) -> RenewalOpportunity | None:
    """This term's renewal, else an open one of the contract (the end date was amended)."""
    for r in renewals:
        if r.key == key:
            return r
    candidates = sorted(renewals, key=lambda r: r.close_date, reverse=True)
    return candidates[0] if candidates else None


def _renewal_line(renewal_key_: str, line, uplift: Decimal) -> RenewalLine:
    price = (line.unit_price * (1 + uplift / 100)).quantize(CENT, ROUND_HALF_UP)
    return RenewalLine(
        key=f"{renewal_key_}:{line.id}",
        renewal_key=renewal_key_,
        product_code=line.product_code,
        quantity=line.quantity,
        unit_price=price,
        kind="renewal",
        description=f"Renewal of {line.product_name or line.product_code}"
        + (f" (+{uplift}% uplift)" if uplift else ""),
    )


def resolve_owner(
    owners: dict[str, Owner], owner_id: str | None, fallback: str | None
) -> tuple[Owner | None, str]:
    """Owner -> first active manager up the chain -> configured fallback owner."""
    seen: list[str] = []
    current = owners.get(owner_id) if owner_id else None
    while current is not None and current.id not in seen:
        if current.active:
            if not seen:
                return current, ""
            return current, f"owner {seen[0]} is inactive; assigned to manager {current.id}"
        seen.append(current.id)
        current = owners.get(current.manager_id) if current.manager_id else None
    gone = f"owner {owner_id} is inactive" if seen else f"owner {owner_id} is unknown"
    if fallback:
        fb = owners.get(fallback)
        if fb is None or fb.active:
            return fb or Owner(
                id=fallback, name=fallback, active=True, email=None, manager_id=None
            ), f"{gone} with no active manager; assigned to fallback owner {fallback}"
    return None, (
        f"{gone} with no active manager and no usable renewals.fallback_owner in app.yaml"
    )


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
