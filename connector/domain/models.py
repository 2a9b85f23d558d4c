"""Canonical records in our vocabulary. CRM field names never appear here: mappings translate."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

ContractStatus = Literal["draft", "active", "expired", "terminated", "cancelled"]
LineKind = Literal["renewal", "upsell", "cross_sell"]
Priority = Literal["low", "normal", "high"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Owner(Record):
    id: str
    name: str
    email: str | None = None
    active: bool = True
    manager_id: str | None = None


class Account(Record):
    id: str
    name: str
    owner_id: str | None = None
    segment: str | None = None


class Contact(Record):
    id: str
    account_id: str
    name: str
    email: str | None = None
    renewal_contact: bool = False
    role: str | None = None


class Contract(Record):
    id: str
    account_id: str
    number: str | None = None
    status: ContractStatus
    start_date: date | None = None
    end_date: date
    owner_id: str | None = None
    uplift_percent: Decimal | None = None
    currency: str | None = None
    modified_at: datetime | None = None


class ContractLine(Record):
    id: str
    contract_id: str
    product_code: str
    product_name: str | None = None
    quantity: Decimal
    unit_price: Decimal
    recurring: bool = True


class RenewalOpportunity(Record):
    key: str
    contract_id: str
    account_id: str
    name: str
    type: str = "Renewal"
    stage: str
    close_date: date
    owner_id: str
    amount: Decimal


class RenewalLine(Record):
    key: str | None = None
    renewal_key: str | None = None
    product_code: str
    quantity: Decimal
    unit_price: Decimal
    kind: LineKind = "renewal"
    description: str | None = None


class Task(Record):
    dedupe_key: str
    owner_id: str
    subject: str
    description: str = ""
    due_date: date
    priority: Priority = "normal"
    status: str = "open"
    renewal_key: str | None = None
    account_id: str | None = None
    contact_id: str | None = None


MODELS: dict[str, type[Record]] = {
    "owner": Owner,
    "account": Account,
    "contact": Contact,
    "contract": Contract,
    "contract_line": ContractLine,
    "renewal_opportunity": RenewalOpportunity,
    "renewal_line": RenewalLine,
    "task": Task,
}

#: Kinds read from the CRM on every sync, in dependency order.
READ_KINDS = (
    "owner",
    "account",
    "contact",
    "contract",
    "contract_line",
    "renewal_opportunity",
    "renewal_line",
)
#: Kinds the connector writes.
WRITE_KINDS = ("renewal_opportunity", "renewal_line", "task")
