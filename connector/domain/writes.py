"""From a desired renewal to the exact writes: respect rep edits, never rewrite what is in place.

A field counts as edited by a rep when the CRM's current value differs both from what we last
wrote (the ledger) and from what we want now. The second condition makes a run that was killed
between the CRM accepting a write and the ledger recording it converge instead of locking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal, Protocol

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.models import (
    AccountHealth,
    Record,
    RenewalLine,
    RenewalOpportunity,
    Task,
)

#: Fields the connector owns: always kept in line with the plan.
RENEWAL_OWNED = (
    "key",
    "contract_id",
    "account_id",
    "type",
    "health_score",
    "health_grade",
    "health_drivers",
)
RENEWAL_SALES = ("name", "stage", "close_date", "owner_id", "amount")
LINE_FIELDS = ("renewal_key", "product_code", "quantity", "unit_price", "kind", "description")
ACCOUNT_HEALTH_FIELDS = ("health_score", "health_grade", "health_drivers", "health_trend")
TASK_FIELDS = (
    "owner_id",
    "subject",
    "description",
    "due_date",
    "priority",
    "status",
    "renewal_key",
    "account_id",
    "contact_id",
)


class LedgerView(Protocol):
    """What the connector last wrote, by kind and key (JSON-safe field values)."""

    def written(self, kind: str, key: str) -> dict[str, Any] | None: ...


@fast_init
@dataclass(frozen=True, slots=True)
class Write:
    kind: Literal["renewal_opportunity", "renewal_line", "task", "contract", "account_health"]
    op: Literal["create", "update", "delete"]
    key: str
    contract_id: str
    #: the record whose `names` fields are written (kept by reference: a first sync plans
    #: hundreds of thousands of writes, and copying their values would double the memory)
    source: Any
    names: tuple[str, ...]
    parent_key: str | None = None
    #: the parent's CRM id when the plan knows it (CPQ's renewal): no lookup by key
    parent_id: str | None = None

    @property
    def fields(self) -> dict[str, Any]:
        return {n: getattr(self.source, n) for n in self.names}


def same(a: Any, b: Any) -> bool:
    """Equal as canonical values (Decimal 1.50 == '1.5', date == '2027-03-31')."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return Decimal(str(a)) == Decimal(str(b))
        except ArithmeticError:
            return False
    if isinstance(a, date) or isinstance(b, date):
        return str(a) == str(b)
    return a == b


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fields(record: Record, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(record, n) for n in names}


def value_locks(
    desired: RenewalOpportunity,
    current: RenewalOpportunity | None,
    baseline: dict[str, Any] | None,
    computed: frozenset[str] = frozenset(),
) -> set[str]:
    """Fields whose CRM value a rep changed since our last write. A field the CRM computes
    (an amount rolled up from the lines that exist) differs by the CRM's doing, not a rep's."""
    if current is None or baseline is None:
        return set()
    locked = set()
    for name in ("amount", "owner_id", "close_date", "name"):
        now = getattr(current, name)
        if (
            name not in computed
            and name in baseline
            and not same(now, baseline[name])
            and not same(now, getattr(desired, name))
        ):
            locked.add(name)
    if "amount" in locked:
        locked.add("lines")
    return locked


def renewal_writes(
    desired: RenewalOpportunity,
    current: RenewalOpportunity | None,
    baseline: dict[str, Any] | None,
    locked: frozenset[str],
    computed: frozenset[str] = frozenset(),
) -> list[Write]:
    """Create the renewal, or update the fields that differ; a field the CRM computes is
    written on create only (the CRM ignores a later write to it)."""
    all_names = RENEWAL_OWNED + RENEWAL_SALES
    if current is None and baseline is None:
        return [
            Write(
                "renewal_opportunity",
                "create",
                desired.key,
                desired.contract_id,
                desired,
                all_names,
            )
        ]
    have = _fields(current, all_names) if current else baseline
    changed = tuple(
        n
        for n in all_names
        if n not in locked
        and n not in computed
        and n != "stage"
        and not same(getattr(desired, n), have.get(n))
    )
    if not changed:
        return []
    return [
        Write("renewal_opportunity", "update", desired.key, desired.contract_id, desired, changed)
    ]


def line_writes(
    contract_id: str,
    renewal_key: str,
    desired: tuple[RenewalLine, ...],
    current: tuple[RenewalLine, ...],
    ledger: LedgerView,
) -> list[Write]:
    """Add, update and delete the connector's own lines of one renewal."""
    out: list[Write] = []
    by_key = {ln.key: ln for ln in current if ln.key}
    wanted = set()
    for line in desired:
        wanted.add(line.key)
        cur = by_key.get(line.key)
        if touched_suggestion(cur, ledger, line):
            continue
        have = _fields(cur, LINE_FIELDS) if cur else ledger.written("renewal_line", line.key)
        if have is None:
            out.append(
                Write(
                    "renewal_line", "create", line.key, contract_id, line, LINE_FIELDS, renewal_key
                )
            )
            continue
        changed = tuple(n for n in LINE_FIELDS if not same(getattr(line, n), have.get(n)))
        if changed:
            out.append(
                Write("renewal_line", "update", line.key, contract_id, line, changed, renewal_key)
            )
    ours = f"{renewal_key}:"
    for key in sorted(by_key):
        if (
            key.startswith(ours)
            and key not in wanted
            and not touched_suggestion(by_key[key], ledger)
        ):
            out.append(Write("renewal_line", "delete", key, contract_id, None, (), renewal_key))
    return out


def edited_by_rep(
    current: RenewalLine | None, ledger: LedgerView, desired: RenewalLine | None
) -> bool:
    """A line of ours whose CRM value differs both from our last write and from what we want
    now (a value already as wanted is a write a killed run did not record, not an edit)."""
    if current is None or not current.key:
        return False
    base = ledger.written("renewal_line", current.key)
    if base is None:
        return False
    return any(
        not same(getattr(current, n), base.get(n))
        and (desired is None or not same(getattr(current, n), getattr(desired, n)))
        for n in LINE_FIELDS
        if n in base
    )


def touched_suggestion(
    current: RenewalLine | None, ledger: LedgerView, desired: RenewalLine | None = None
) -> bool:
    """An upsell / cross-sell line a rep has edited since our last write: it is theirs now,
    neither updated nor withdrawn."""
    return (
        current is not None
        and current.kind != "renewal"
        and edited_by_rep(current, ledger, desired)
    )


def account_health_writes(records: list[AccountHealth], ledger: LedgerView) -> list[Write]:
    """Health onto accounts, by CRM id; only what changed since we last wrote it."""
    out = []
    for rec in records:
        have = ledger.written("account_health", rec.id)
        changed = tuple(
            n
            for n in ACCOUNT_HEALTH_FIELDS
            if have is None or not same(getattr(rec, n), have.get(n))
        )
        if changed:
            out.append(Write("account_health", "update", rec.id, "", rec, changed))
    return out


def task_writes(
    contract_id: str, tasks: tuple[Task, ...], ledger: LedgerView, renewal_id: str | None = None
) -> list[Write]:
    """Tasks are created once per dedupe key and then belong to the rep. `renewal_id`: the
    CRM id of the renewal the term's tasks hang off, when known (CPQ's)."""
    return [
        Write(
            "task",
            "create",
            t.dedupe_key,
            contract_id,
            t,
            TASK_FIELDS,
            t.renewal_key,
            renewal_id if t.renewal_key else None,
        )
        for t in tasks
        if ledger.written("task", t.dedupe_key) is None
    ]
