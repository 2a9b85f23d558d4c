"""Health score: a weighted scorecard (0-100) over measures, each mapped to 0-100 by thresholds.

Measures come from mapped CRM fields on the account and from stored product-usage signals (a
signal wins over a CRM field of the same measure). A missing measure is left out and the other
weights renormalised; fewer than `min_measures` used marks the score low-confidence. Pure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.models import Account, AccountHealth, HealthMeasures
from crm_renewals.connector.domain.policy import Measure, Scorecard
from crm_renewals.connector.domain.signals import Signal

#: Signals that are not scorecard measures but feed one (active_users -> seat_utilisation) or
#: an upsell rule (capped_feature_usage -> next tier).
AUXILIARY_MEASURES = ("active_users", "capped_feature_usage")
#: Account health measure fields that hold a measure of the same name.
ACCOUNT_MEASURES = ("nps", "open_tickets", "high_priority_tickets", "late_payments")
_ONE = Decimal(1)


@fast_init
@dataclass(frozen=True, slots=True)
class Previous:
    """The last recorded health before today (from the state store)."""

    score: int | None
    grade: str | None
    values: dict[str, float] = field(default_factory=dict)


@fast_init
@dataclass(frozen=True, slots=True)
class Health:
    account_id: str
    score: int | None  # None: no measure known
    grade: str | None
    measures_used: int
    low_confidence: bool
    trend: str  # "new", "flat", "up 5", "down 12"
    drivers: tuple[str, ...]
    values: dict[str, float]
    previous: Previous | None = None

    @property
    def delta(self) -> int | None:
        if self.score is None or self.previous is None or self.previous.score is None:
            return None
        return self.score - self.previous.score

    def drivers_text(self) -> str:
        text = "; ".join(self.drivers) if self.drivers else "none"
        if self.low_confidence:
            text = f"low confidence ({self.measures_used} measures); {text}"
        return text

    def record(self) -> AccountHealth:
        return AccountHealth(
            id=self.account_id,
            health_score=self.score,
            health_grade=self.grade,
            health_drivers=self.drivers_text()[:255],
            health_trend=self.trend,
        )


def signal_measures(scorecard: Scorecard) -> tuple[str, ...]:
    """Measure names a signal may carry."""
    return tuple(scorecard.measures) + tuple(
        m for m in AUXILIARY_MEASURES if m not in scorecard.measures
    )


def measure_score(measure: Measure, value: float) -> float:
    """0-100 by linear interpolation between threshold points, flat beyond the ends."""
    return _interpolate(_curve(measure), value)


def _curve(measure: Measure) -> tuple:
    """The thresholds as plain numbers: the first point, each pair of neighbours, the last
    score (read for every measure of every account: `score_book` makes them once)."""
    points = [(t.at, t.score) for t in measure.thresholds]
    return (*points[0], tuple(zip(points, points[1:], strict=False)), points[-1][1])


def _interpolate(curve: tuple, value: float) -> float:
    first_at, first_score, pairs, last_score = curve
    if value <= first_at:
        return first_score
    for (lo_at, lo_score), (hi_at, hi_score) in pairs:
        if value <= hi_at:
            share = (value - lo_at) / (hi_at - lo_at)
            return lo_score + share * (hi_score - lo_score)
    return last_score


def grade(scorecard: Scorecard, score: float) -> str:
    if score >= scorecard.green:
        return "green"
    return "yellow" if score >= scorecard.yellow else "red"


def weighted_score(scorecard: Scorecard, values: Mapping[str, float]) -> float | None:
    """The renormalised weighted mean over the measures that have a value."""
    used = [(m, values[name]) for name, m in scorecard.measures.items() if name in values]
    total = sum(m.weight for m, _ in used)
    if not used:
        return None
    return sum(m.weight * measure_score(m, v) for m, v in used) / total


def score_account(
    scorecard: Scorecard,
    account_id: str,
    values: Mapping[str, float],
    previous: Previous | None = None,
    curves: Mapping[str, tuple] | None = None,
) -> Health:
    """`curves`: each measure's `_curve`, if made already (`score_book`)."""
    measures = scorecard.measures
    used = {k: v for k, v in values.items() if k in measures}
    if not used:  # weighted_score: None
        return Health(account_id, None, None, 0, True, "new", (), used, previous)
    curves = curves or {k: _curve(measures[k]) for k in used}
    # as weighted_score, each measure scored once (the drivers read the same scores)
    scores = {k: _interpolate(curves[k], v) for k, v in used.items()}
    ranked = [(m, name) for name, m in measures.items() if name in used]
    total = sum(m.weight for m, _ in ranked)
    raw = sum(m.weight * scores[name] for m, name in ranked) / total
    score = int(Decimal(str(raw)).quantize(_ONE, ROUND_HALF_UP))
    return Health(
        account_id,
        score,
        grade(scorecard, score),
        len(used),
        len(used) < scorecard.min_measures,
        _trend(score, previous),
        _drivers(scorecard, used, previous, scores),
        used,  # built here, read by no one else: no copy
        previous,
    )


def _trend(score: int, previous: Previous | None) -> str:
    if previous is None or previous.score is None:
        return "new"
    delta = score - previous.score
    return "flat" if delta == 0 else f"{'up' if delta > 0 else 'down'} {abs(delta)}"


def _drivers(
    scorecard: Scorecard,
    values: Mapping[str, float],
    previous: Previous | None,
    scores: Mapping[str, float],
) -> tuple[str, ...]:
    """The measures that pull the score down most (weight x shortfall from 100), in words;
    `scores`: each measure's measure_score."""
    total = sum(scorecard.measures[n].weight for n in values)
    pulls = []
    for name in values:
        m = scorecard.measures[name]
        shortfall = m.weight / total * (100 - scores[name])
        if shortfall > 0:
            pulls.append((-shortfall, name))
    words = []
    for _, name in sorted(pulls)[: scorecard.top_drivers]:
        m = scorecard.measures[name]
        text = f"{m.label or name.replace('_', ' ')} {_show(m, values[name])}"
        before = (previous.values if previous else {}).get(name)
        if before is not None and _show(m, before) != _show(m, values[name]):
            text += f", {'down' if before > values[name] else 'up'} from {_show(m, before)}"
        words.append(sys.intern(text))  # a few hundred texts across a book's accounts
    return tuple(words)


def _show(m: Measure, value: float) -> str:
    if m.unit == "percent":
        return f"{value * 100:.0f}%"
    if m.unit == "days":
        return f"{value:.0f} days"
    if m.unit == "flag":
        return "yes" if value else "no"
    return f"{value:g}"


def _field_values(
    measures: HealthMeasures, wanted: Mapping[str, Measure], as_of: date
) -> dict[str, float]:
    """Values of the wanted measures held in the account's CRM fields."""
    out: dict[str, float] = {}
    for name in ACCOUNT_MEASURES:
        value = getattr(measures, name)
        if value is not None and name in wanted:
            out[name] = float(value)
    if measures.last_meeting_date is not None and "days_since_last_meeting" in wanted:
        out["days_since_last_meeting"] = float((as_of - measures.last_meeting_date).days)
    if measures.executive_sponsor is not None and "executive_sponsor" in wanted:
        out["executive_sponsor"] = 1.0 if measures.executive_sponsor else 0.0
    return out


def account_values(
    scorecard: Scorecard,
    account: Account,
    signals: Mapping[str, Signal],
    seats: Decimal | None,
    as_of: date,
) -> dict[str, float]:
    """Measure values for one account: CRM fields first, then signals (newer, they win)."""
    wanted = scorecard.measures
    out = _field_values(account.measures, wanted, as_of) if account.measures else {}
    moment = datetime.combine(as_of, datetime.max.time(), UTC)
    for name, sig in signals.items():
        if name not in wanted:
            continue
        value = sig.value
        if name.startswith("days_since_"):  # a count of days ages with the signal
            value += max(0, (moment - sig.at).days)
        out[name] = value
    users = signals.get("active_users")
    if "seat_utilisation" in wanted and users is not None and seats:
        util = signals.get("seat_utilisation")
        if util is None or util.at < users.at:
            out["seat_utilisation"] = users.value / float(seats)
    return out


def score_book(
    scorecard: Scorecard,
    accounts: Mapping[str, Account],
    signals: Mapping[str, Mapping[str, Signal]],
    seats: Mapping[str, Decimal],
    previous: Mapping[str, Previous],
    as_of: date,
) -> dict[str, Health]:
    """Health of every account that has at least one measure."""
    out = {}
    curves = {name: _curve(m) for name, m in scorecard.measures.items()}
    for account_id, account in accounts.items():
        values = account_values(
            scorecard,
            account,
            signals.get(account_id, {}),
            seats.get(account_id),
            as_of,
        )
        if values:
            before = previous.get(account_id)
            out[account_id] = score_account(scorecard, account_id, values, before, curves)
    return out


def health_mix(grades: Iterable[str | None]) -> dict[str, int]:
    """Accounts by grade (accounts without a grade are left out)."""
    mix = {"green": 0, "yellow": 0, "red": 0}
    for grade in grades:
        if grade:
            mix[grade] += 1
    return mix


def is_at_risk(scorecard: Scorecard, health: Health | None) -> bool:
    """The grade turned red, or the score dropped by `at_risk_drop` or more since last time."""
    if health is None or health.score is None:
        return False
    prev = health.previous
    if health.grade == "red" and (prev is None or prev.grade != "red"):
        return True
    delta = health.delta
    return delta is not None and -delta >= scorecard.at_risk_drop


def history_row(h: Health, as_of: date) -> dict[str, Any]:
    return {
        "account": h.account_id,
        "as_of": as_of.isoformat(),
        "score": h.score,
        "grade": h.grade,
        "measures_used": h.measures_used,
        "low_confidence": h.low_confidence,
        "trend": h.trend,
        "drivers": list(h.drivers),
        "values": h.values,
    }
