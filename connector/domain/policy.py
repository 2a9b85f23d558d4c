"""Renewal policy and playbook settings: plain frozen models the planner reads (from app.yaml)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.domain.models import ContractStatus, Priority


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RenewalPolicy(Section):
    lead_time_days: int = Field(120, ge=1, le=730)
    latest_creation_days: int = Field(90, ge=0, le=730)
    notice_days: int = Field(60, ge=0, le=730)
    initial_stage: str = "Prospecting"
    closed_won_stages: tuple[str, ...] = ("Closed Won",)
    closed_lost_stages: tuple[str, ...] = ("Closed Lost",)
    opportunity_type: str = "Renewal"
    name_template: str = "{account_name} - Renewal {end_date:%Y-%m}"
    uplift_percent: Decimal = Field(Decimal(0), ge=-100, le=1000)
    fallback_owner: str | None = None
    active_statuses: tuple[ContractStatus, ...] = ("active",)
    owner_source: Literal["account", "contract"] = "account"
    #: connector: the connector creates the renewal; cpq: Salesforce CPQ creates it (the
    #: connector asks for it with the contract's renewal forecast, then enriches it)
    renewal_mode: Literal["connector", "cpq"] = "connector"


class PlaybookStep(Section):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    anchor: Literal["start", "end"]
    offset_days: int
    subject: str
    description: str = ""
    priority: Priority = "normal"
    create_before_days: int = Field(30, ge=0, le=730)
    late_if_missed: bool = True


DEFAULT_STEPS = (
    PlaybookStep(
        id="renewal_opportunity",
        anchor="end",
        offset_days=-120,
        subject="Renewal {contract_number}: review the renewal opportunity",
        description="Renewal of {account_name} ({amount} {currency}) closes {end_date}.",
        create_before_days=0,
    ),
    PlaybookStep(
        id="customer_notice",
        anchor="end",
        offset_days=-60,
        subject="Renewal {contract_number}: notify the renewal contacts",
        description="Send the renewal notice for {account_name}: {amount} {currency} "
        "(uplift {uplift_percent}%), term ends {end_date}.",
        priority="high",
    ),
)


class Playbook(Section):
    weekend_days: tuple[int, ...] = (5, 6)
    holiday_country: str | None = None
    steps: tuple[PlaybookStep, ...] = DEFAULT_STEPS
