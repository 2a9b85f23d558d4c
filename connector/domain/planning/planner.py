"""The planner: the run's settings and book-wide facts, and the entry points that plan one
contract or the whole book (eligibility, then the renewal and the tasks) as ContractPlans."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.planning.eligibility import eligibility
from crm_renewals.connector.domain.planning.renewal import build_renewal, price_renewal
from crm_renewals.connector.domain.planning.tasks import early_tasks, plan_tasks
from crm_renewals.connector.domain.planning.values import NO_TASKS, ContractPlan, Skip
from crm_renewals.connector.domain.playbook import Schedule
from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy, Scorecard, Upsell
from crm_renewals.connector.domain.upsell import BookFacts, book_facts
from crm_renewals.connector.domain.writes import LedgerView


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
    #: the playbook's schedule on `as_of` (`schedule()`), and the last account's journey
    #: segments and tasks (plans come account by account: each of its contracts would plan the
    #: same ones; see planning.tasks)
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def schedule(self) -> Schedule:
        """The playbook's steps as read on `as_of`, built once a planner (a run plans one day
        with one playbook): creation windows, business days found, the last account's values."""
        s = self.memo.get("schedule")
        if s is None:
            s = self.memo["schedule"] = Schedule(self.playbook, self.as_of)
        return s

    def with_facts(self, book: Book) -> Planner:
        """The planner with the book-wide facts the upsell rules read (computed once)."""
        if self.facts is not None or not self.upsell.enabled:
            return self
        seat_products = self.upsell.seat_expansion.seat_products
        facts = book_facts(book, self.policy.active_statuses, seat_products)
        return replace(self, facts=facts)

    def plan_book(self, book: Book, ledger: LedgerView) -> Iterator[ContractPlan]:
        planner = self.with_facts(book)
        # the ids stay unnamed: the generator would hold them (MBs) for the whole planning;
        # most books have no broken or deleted contract: their ids need no set to be unique
        for contract_id in planning_order(
            book, book.plannable_ids() if book.broken or book.deleted_contracts else book.contracts
        ):
            yield planner.plan(book, ledger, contract_id)

    def plan(self, book: Book, ledger: LedgerView, contract_id: str) -> ContractPlan:
        verdict = eligibility(self, book, ledger, contract_id)
        if isinstance(verdict, Skip):
            tasks = NO_TASKS
            if verdict.reason == "not_due":
                tasks = early_tasks(self, book, ledger, book.contracts[contract_id])
            return ContractPlan(contract_id, verdict, tasks)
        planner = self.with_facts(book)
        priced = price_renewal(planner, verdict)
        renewal = build_renewal(planner, book, ledger, verdict, priced)
        return ContractPlan(
            contract_id, renewal, plan_tasks(planner, book, ledger, verdict, priced)
        )


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
