"""Canonical records in our vocabulary. CRM field names never appear here: mappings translate.

Records are frozen, slotted dataclasses: a book holds hundreds of thousands of them, and a
pydantic model costs about ten times the memory of a slotted instance. Pydantic still
validates them wherever data comes from outside (`validate`), unknown fields forbidden;
building one directly in code (planning) skips validation, which typed code does not need."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal, get_args, get_type_hints

from pydantic import ConfigDict, TypeAdapter, with_config

from crm_renewals.connector.domain.fastinit import fast_init

ContractStatus = Literal["draft", "active", "expired", "terminated", "cancelled"]
LineKind = Literal["renewal", "upsell", "cross_sell"]
Priority = Literal["low", "normal", "high"]


def record(cls):
    """A canonical record: frozen, slotted, keyword-only, validated strictly by pydantic."""
    return with_config(ConfigDict(extra="forbid"))(
        fast_init(dataclass(frozen=True, slots=True, kw_only=True)(cls))
    )


@record
class Owner:
    id: str
    name: str
    email: str | None = None
    active: bool = True
    manager_id: str | None = None


@record
class HealthMeasures:
    """Health measures held in CRM fields on the account (a missing one is left out of the
    score)."""

    nps: Decimal | None = None
    open_tickets: int | None = None
    high_priority_tickets: int | None = None
    late_payments: int | None = None
    last_meeting_date: date | None = None
    executive_sponsor: bool | None = None


@record
class Account:
    id: str
    name: str
    owner_id: str | None = None
    segment: str | None = None
    #: None when the CRM holds no measure for the account (most accounts): one empty slot in
    #: every account instead of six
    measures: HealthMeasures | None = None


@record
class Contact:
    id: str
    account_id: str
    name: str
    email: str | None = None
    renewal_contact: bool = False
    role: str | None = None


@record
class CpqRenewal:
    """Salesforce CPQ's side of a contract (renewals.renewal_mode: cpq): the renewal forecast
    asked, and CPQ's renewal opportunity with its owner and amount once CPQ made it."""

    renewal_forecast: bool = False
    cpq_renewal_id: str | None = None
    cpq_renewal_owner_id: str | None = None
    cpq_renewal_amount: Decimal | None = None


@record
class Contract:
    id: str
    account_id: str
    number: str | None = None
    status: ContractStatus
    start_date: date | None = None
    end_date: date
    owner_id: str | None = None
    uplift_percent: Decimal | None = None
    currency: str | None = None
    #: None outside CPQ orgs (most books): one empty slot in every contract instead of four
    cpq: CpqRenewal | None = None

    @property
    def renewal_forecast(self) -> bool:
        return self.cpq is not None and self.cpq.renewal_forecast

    @property
    def cpq_renewal_id(self) -> str | None:
        return self.cpq.cpq_renewal_id if self.cpq else None


@record
class ContractLine:
    id: str
    contract_id: str
    product_code: str
    product_name: str | None = None
    quantity: Decimal
    unit_price: Decimal
    recurring: bool = True


@record
class RenewalOpportunity:
    key: str
    contract_id: str
    account_id: str
    name: str
    type: str = "Renewal"
    stage: str
    close_date: date
    owner_id: str
    amount: Decimal
    health_score: int | None = None
    health_grade: str | None = None
    health_drivers: str | None = None
    #: why a lost renewal was lost (read only, for reporting)
    loss_reason: str | None = None


@record
class RenewalLine:
    key: str | None = None
    renewal_key: str | None = None
    product_code: str
    quantity: Decimal
    unit_price: Decimal
    kind: LineKind = "renewal"
    description: str | None = None


@record
class Task:
    dedupe_key: str
    owner_id: str
    subject: str
    description: str = ""
    due_date: date
    priority: Priority = "normal"
    #: "open" or "completed": written open, read back as the CRM holds it (a rep completes it)
    status: str = "open"
    renewal_key: str | None = None
    account_id: str | None = None
    contact_id: str | None = None
    #: when a rep completed it, where the CRM says (read only, for journey coverage)
    completed_at: datetime | None = None


@record
class AccountHealth:
    """Health written onto the account (updated by CRM id: the account is not ours)."""

    id: str
    health_score: int | None = None
    health_grade: str | None = None
    health_drivers: str | None = None
    health_trend: str | None = None


Record = (
    Owner
    | Account
    | Contact
    | Contract
    | ContractLine
    | RenewalOpportunity
    | RenewalLine
    | Task
    | AccountHealth
)

MODELS: dict[str, type] = {
    "owner": Owner,
    "account": Account,
    "contact": Contact,
    "contract": Contract,
    "contract_line": ContractLine,
    "renewal_opportunity": RenewalOpportunity,
    "renewal_line": RenewalLine,
    "task": Task,
    "account_health": AccountHealth,
}

#: Fields that group optional fields of another record (record type -> field -> group type).
#: Outside data, mappings and JSON hold the grouped fields flat, as the record's own fields;
#: a group with no value set is None.
GROUPS: dict[type, dict[str, type]] = {
    Account: {"measures": HealthMeasures},
    Contract: {"cpq": CpqRenewal},
}

#: Kinds read from the CRM on every sync, in dependency order. Tasks come last: only those the
#: connector wrote, read back for their status (planning never rewrites a task it wrote).
READ_KINDS = (
    "owner",
    "account",
    "contact",
    "contract",
    "contract_line",
    "renewal_opportunity",
    "renewal_line",
    "task",
)
#: Kinds the connector writes.
WRITE_KINDS = ("renewal_opportunity", "renewal_line", "task", "account_health")


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


#: Text up to this length is interned: ids, codes, picklist values and names repeat across
#: records (an account id in each of its contacts and contracts), and a book of 100k contracts
#: holds each of them once instead of once per record.
INTERN_UP_TO = 80


#: At most this many distinct amounts and dates are shared (see `share`): enough for a book's
#: prices, quantities and term dates, bounded in a long-lived process.
SHARE_UP_TO = 1 << 14
_SHARED: dict[Any, Any] = {}


def share(value: Any) -> Any:
    """One shared instance of an immutable value that repeats across records: short text
    (interned), amounts and dates (a quantity of 1, a list price, a term's end date recur in
    thousands of lines and contracts; a Decimal costs 104 bytes). Other values as given."""
    kind = type(value)
    if kind is str:
        return sys.intern(value) if len(value) <= INTERN_UP_TO else value
    if kind is Decimal:
        key: Any = (kind, str(value))  # 1.0 == 1.00, but they read differently: not shared
    elif kind is date:
        key = value
    else:
        return value
    found = _SHARED.get(key)
    if found is not None:
        return found
    if len(_SHARED) < SHARE_UP_TO:
        _SHARED[key] = value
    return value


def validate(cls: type, data: dict[str, Any]) -> Any:
    """Build a record of `cls` from outside data (coercing text, numbers, ISO dates; grouped
    fields flat), its repeated values shared (`share`); raises pydantic.ValidationError."""
    shared = {
        k: sys.intern(v) if type(v) is str and len(v) <= INTERN_UP_TO else v
        for k, v in data.items()
    }
    for name, group in GROUPS.get(cls, {}).items():
        grouped = {n: shared.pop(n) for n in _field_names(group) if n in shared}
        if any(v is not None for v in grouped.values()):
            shared[name] = grouped
    rec = _adapter(cls).validate_python(shared)
    for name in _shared_fields(cls):
        value = getattr(rec, name)
        if value is not None and (one := share(value)) is not value:
            object.__setattr__(rec, name, one)  # frozen: set once, as it is being built
    return rec


@cache
def _shared_fields(cls: type) -> tuple[str, ...]:
    """The record's amount and date fields (not datetimes: a moment rarely repeats)."""
    hints = get_type_hints(cls)
    return tuple(
        f.name
        for f in fields(cls)
        if {Decimal, date} & set(get_args(hints[f.name]) or ()) or hints[f.name] in (Decimal, date)
    )


def to_json(rec: Any) -> dict[str, Any]:
    """A record as JSON-safe values (Decimal and dates as text), grouped fields flat."""
    data = _adapter(type(rec)).dump_python(rec, mode="json")
    for name, group in GROUPS.get(type(rec), {}).items():
        data.update(data.pop(name) or dict.fromkeys(_field_names(group)))
    return data


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
