"""Renewal policy and playbook settings: plain frozen models the planner reads (from app.yaml)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from crm_renewals.connector.domain.models import ContractStatus, Priority


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RenewalPolicy(Section):
    lead_time_days: int = Field(120, ge=1, le=730)
    latest_creation_days: int = Field(90, ge=0, le=730)
    #: CPQ mode: a renewal forecast CPQ has not honoured after this many days (or past the
    #: latest-creation point) needs attention
    cpq_overdue_days: int = Field(1, ge=0, le=365)
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
    #: once, or once each quarter of the term (QBRs): the anchor moves on 3 months at a time
    repeat: Literal["once", "quarterly"] = "once"
    #: contract: one task per contract term (kickoff, renewal prep, notice), on the renewal once
    #: it exists; account: one task per account and quarter however many contracts it has
    #: (QBR, adoption check), on the account
    scope: Literal["contract", "account"] = "contract"
    #: what the step is about (default: its id); a journey touchpoint of the same theme in
    #: the same segment is not planned (`playbook.journey.skip_when_step_covers`)
    theme: str | None = None


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


class EventStep(Section):
    """A task raised by an event (grade turned red, no renewal contact), not by a date."""

    enabled: bool = True
    subject: str
    description: str = ""
    priority: Priority = "high"


class Touchpoint(Section):
    """A journey segment's task: what it is about and how it reads."""

    theme: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    subject: str
    description: str = ""
    priority: Priority = "normal"
    create_before_days: int = Field(7, ge=0, le=365)


class Journey(Section):
    """The customer journey: `segments` segments of `segment_days` from the account's first
    contract start, one touchpoint task in each (see connector.domain.journey)."""

    enabled: bool = False
    segments: int = Field(18, ge=1, le=120)
    segment_days: int = Field(30, ge=7, le=366)
    #: a gap between contract terms longer than this restarts the journey at segment 1
    restart_after_lapse_days: int = Field(90, ge=0, le=3650)
    #: after the last segment the journey starts over at segment 1 (else it ends)
    repeat: bool = True
    #: no journey task where a playbook step of the same theme falls in the same segment
    skip_when_step_covers: bool = True
    #: `renewals report`'s journey coverage: an account whose completed share of the
    #: touchpoints due is at least this kept up with its journey (1: every one completed)
    kept_up_share: Decimal = Field(Decimal(1), gt=0, le=1)
    #: by segment number or range ("4", "8-11"); the narrowest entry holding a segment wins
    touchpoints: dict[str, Touchpoint] = {}
    default: Touchpoint = Touchpoint(
        theme="check_in",
        subject="Check in with {account_name} (segment {segment} of {segments})",
        description="A touchpoint of the customer journey with {account_name}.",
    )

    @field_validator("touchpoints")
    @classmethod
    def _ranges(cls, value: dict[str, Touchpoint]) -> dict[str, Touchpoint]:
        spans = [(k, *segment_span(k)) for k in value]
        for i, (k, lo, hi) in enumerate(spans):
            for k2, lo2, hi2 in spans[i + 1 :]:
                if hi - lo == hi2 - lo2 and lo <= hi2 and lo2 <= hi:
                    raise ValueError(f"segments {k!r} and {k2!r} overlap with the same width")
        return value

    _by_segment: tuple[Touchpoint, ...] = PrivateAttr(())
    _lead_days: int = PrivateAttr(0)

    @model_validator(mode="after")
    def _within(self) -> Journey:
        for key in self.touchpoints:
            if segment_span(key)[1] > self.segments:
                raise ValueError(f"touchpoint {key!r} is past the last segment ({self.segments})")
        self._by_segment = tuple(self._narrowest(n) for n in range(1, self.segments + 1))
        leads = [self.default.create_before_days]
        self._lead_days = max(leads + [t.create_before_days for t in self.touchpoints.values()])
        return self

    def touchpoint(self, segment: int) -> Touchpoint:
        """The touchpoint of segment n (1-based): the narrowest entry holding it, else default."""
        # read from pydantic's store of private attributes: through the attribute, every
        # read went by BaseModel.__getattr__ (asked for every account planned)
        return self.__pydantic_private__["_by_segment"][segment - 1]

    def lead_days(self) -> int:
        """The most days ahead of its segment's start that a touchpoint's task is created."""
        return self.__pydantic_private__["_lead_days"]

    def _narrowest(self, segment: int) -> Touchpoint:
        best, width = self.default, None
        for key, tp in self.touchpoints.items():
            lo, hi = segment_span(key)
            if lo <= segment <= hi and (width is None or hi - lo < width):
                best, width = tp, hi - lo
        return best


def segment_span(key: str) -> tuple[int, int]:
    """ "4" -> (4, 4), "8-11" -> (8, 11); a ValueError names a key that is neither."""
    lo, _, hi = key.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise ValueError(f"{key!r} is not a segment number or range such as 4 or 8-11") from None
    if not 1 <= first <= last:
        raise ValueError(f"{key!r}: segments count from 1 and a range runs upwards")
    return first, last


class Playbook(Section):
    weekend_days: tuple[int, ...] = (5, 6)
    holiday_country: str | None = None
    steps: tuple[PlaybookStep, ...] = DEFAULT_STEPS
    at_risk: EventStep = EventStep(
        subject="At risk: {account_name} is {grade} ({health_score})",
        description="Health {health_score} ({grade}, {trend}). Drivers: {drivers}.",
    )
    name_contact: EventStep = EventStep(
        subject="Name a renewal contact for {account_name}",
        description="Contract {contract_number} ends {end_date} and no contact of "
        "{account_name} is marked as a renewal contact.",
        priority="normal",
    )
    journey: Journey = Journey()

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None:
            import holidays

            try:  # loads only that country's calendar (listing them all loads every one)
                holidays.country_holidays(value)
            except NotImplementedError:
                raise ValueError(
                    f"{value!r} is not a country the holidays package knows (ISO 3166 code)"
                ) from None
        return value


# ---------------------------------------------------------------- health scorecard


class Threshold(Section):
    at: float
    score: float = Field(ge=0, le=100)


class Measure(Section):
    weight: float = Field(gt=0)
    thresholds: tuple[Threshold, ...] = Field(min_length=1)
    #: how the measure reads in drivers ("seat utilisation 34%"); default: its name
    label: str | None = None
    unit: Literal["percent", "number", "days", "flag"] = "number"

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, value: tuple[Threshold, ...]) -> tuple[Threshold, ...]:
        ats = [t.at for t in value]
        if any(b <= a for a, b in zip(ats, ats[1:], strict=False)):
            raise ValueError(f"threshold points must have strictly increasing `at`: {ats}")
        return value


class Scorecard(Section):
    green: float = Field(70, ge=0, le=100)
    yellow: float = Field(40, ge=0, le=100)
    min_measures: int = Field(3, ge=1)
    at_risk_drop: float = Field(15, ge=0, le=100)
    top_drivers: int = Field(3, ge=0, le=10)
    measures: dict[str, Measure] = {}


# ---------------------------------------------------------------- upsell and cross-sell


class SeatExpansion(Section):
    above_utilisation: float = Field(0.9, gt=0, le=2)
    target_utilisation: float = Field(0.8, gt=0, le=1)
    #: product codes sold per seat (the lines whose quantity is the licensed seats)
    seat_products: tuple[str, ...] = ()


class TierUpgrade(Section):
    usage_share: float = Field(0.9, gt=0, le=1)
    next_tier: dict[str, str] = {}


class CrossSell(Section):
    peer_share: float = Field(0.6, gt=0, le=1)
    min_peers: int = Field(5, ge=1)


class Upsell(Section):
    enabled: bool = True
    seat_expansion: SeatExpansion = SeatExpansion()
    tier_upgrade: TierUpgrade = TierUpgrade()
    cross_sell: CrossSell = CrossSell()


# ---------------------------------------------------------------- lifecycle segments

SegmentFact = Literal[
    "active",
    "terms",
    "renewals_won",
    "renewals_lost",
    "gap_days",
    "health_score",
    "days_since_last_activity",
]


class Condition(Section):
    """A fact's test: all given bounds must hold; a fact that is unknown never matches."""

    min: float | None = None
    max: float | None = None
    equals: float | bool | None = None


class SegmentRule(Section):
    segment: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: dict[SegmentFact, Condition] = {}


DEFAULT_SEGMENT_RULES = (
    SegmentRule(segment="inactive", when={"active": Condition(equals=False)}),
    SegmentRule(segment="under_performer", when={"health_score": Condition(max=45)}),
    SegmentRule(segment="seasonal", when={"gap_days": Condition(min=30)}),
    SegmentRule(segment="loyalist", when={"terms": Condition(min=3)}),
    SegmentRule(segment="loyalist", when={"renewals_won": Condition(min=1)}),
    SegmentRule(segment="two_time_buyer", when={"terms": Condition(equals=2)}),
    SegmentRule(segment="one_time_buyer", when={}),
)


class Segments(Section):
    period_days: int = Field(30, ge=7, le=366)
    #: periods are counted from this date (period n starts epoch + n * period_days)
    epoch: date = date(2024, 1, 1)
    history_periods: int = Field(18, ge=18, le=120)
    rules: tuple[SegmentRule, ...] = DEFAULT_SEGMENT_RULES
