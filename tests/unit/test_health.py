"""Health score: worked examples (hand-computed) and the scorecard's properties."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_renewals.connector.config import load_config
from crm_renewals.connector.domain.health import (
    Previous,
    account_values,
    grade,
    is_at_risk,
    measure_score,
    score_account,
    weighted_score,
)
from crm_renewals.connector.domain.models import Account, HealthMeasures
from crm_renewals.connector.domain.policy import Measure, Scorecard, Threshold
from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.errors import ConfigError
from tests.conftest import write_config


def m(weight, *points, unit="number", label=None) -> Measure:
    return Measure(
        weight=weight,
        thresholds=tuple(Threshold(at=a, score=s) for a, s in points),
        unit=unit,
        label=label,
    )


UTIL = m(30, (0.4, 20), (0.7, 60), (0.9, 100), unit="percent", label="seat utilisation")
NPS = m(20, (-20, 10), (0, 50), (40, 100), label="NPS")
LATE = m(20, (0, 100), (1, 40), (3, 0), label="late payments")
CARD = Scorecard(measures={"seat_utilisation": UTIL, "nps": NPS, "late_payments": LATE})


def test_measure_is_interpolated_between_threshold_points_and_flat_beyond():
    assert measure_score(UTIL, 0.55) == pytest.approx(40)  # 20 + (0.15 / 0.3) * 40
    assert measure_score(UTIL, 0.2) == 20 and measure_score(UTIL, 0.95) == 100
    assert measure_score(LATE, 2) == pytest.approx(20)  # falling: 40 + (1 / 2) * -40


def test_worked_example_weighted_score_grade_and_drivers():
    # (30 * 40 + 20 * 75 + 20 * 20) / 70 = 3100 / 70 = 44.29 -> 44, yellow
    h = score_account(CARD, "a1", {"seat_utilisation": 0.55, "nps": 20, "late_payments": 2})
    assert (h.score, h.grade, h.measures_used, h.low_confidence) == (44, "yellow", 3, False)
    # pulls: late 20/70*80 = 22.9, util 30/70*60 = 25.7, nps 20/70*25 = 7.1
    assert h.drivers == ("seat utilisation 55%", "late payments 2", "NPS 20")
    assert h.trend == "new"


def test_missing_measure_is_left_out_and_weights_renormalised():
    # no NPS: (30 * 40 + 20 * 20) / 50 = 32 -> red, 2 measures < min_measures 3
    h = score_account(CARD, "a1", {"seat_utilisation": 0.55, "late_payments": 2})
    assert (h.score, h.grade, h.measures_used, h.low_confidence) == (32, "red", 2, True)
    assert h.drivers_text().startswith("low confidence (2 measures); seat utilisation 55%")
    assert score_account(CARD, "a1", {}).score is None


def test_drivers_in_words_compare_with_the_previous_values_and_trend():
    previous = Previous(70, "green", {"seat_utilisation": 0.61, "late_payments": 0})
    # (30 * 20 + 20 * 100) / 50 = 52
    h = score_account(CARD, "a1", {"seat_utilisation": 0.34, "late_payments": 0}, previous)
    assert (h.score, h.grade, h.trend) == (52, "yellow", "down 18")
    assert h.drivers == ("seat utilisation 34%, down from 61%",)
    assert is_at_risk(CARD, h)  # dropped 18 >= at_risk_drop 15


def test_grade_boundaries_and_at_risk_rules():
    assert [grade(CARD, s) for s in (70, 69.9, 40, 39.9)] == ["green", "yellow", "yellow", "red"]
    red = {"seat_utilisation": 0.2, "late_payments": 3}  # (30 * 20 + 0) / 50 = 12
    assert is_at_risk(CARD, score_account(CARD, "a", red))  # first seen red
    assert is_at_risk(CARD, score_account(CARD, "a", red, Previous(45, "yellow")))
    assert not is_at_risk(CARD, score_account(CARD, "a", red, Previous(14, "red")))
    fair = {"seat_utilisation": 0.7, "late_payments": 0}  # (1800 + 2000) / 50 = 76
    assert not is_at_risk(CARD, score_account(CARD, "a", fair, Previous(90, "green")))
    assert is_at_risk(CARD, score_account(CARD, "a", fair, Previous(91, "green")))


def test_measures_come_from_account_fields_and_signals_which_win():
    card = Scorecard(
        measures={
            "nps": NPS,
            "seat_utilisation": UTIL,
            "days_since_last_meeting": m(10, (30, 100), (90, 50)),
            "days_since_last_activity": m(10, (7, 100), (30, 50)),
            "executive_sponsor": m(5, (0, 0), (1, 100)),
        }
    )
    measures = HealthMeasures(
        nps=Decimal(10), last_meeting_date=date(2026, 10, 24), executive_sponsor=True
    )
    account = Account(id="a1", name="Acme", measures=measures)
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    signals = {
        "nps": Signal("a1", "nps", 30, at),
        "active_users": Signal("a1", "active_users", 45, at),
        "days_since_last_activity": Signal("a1", "days_since_last_activity", 2, at),
    }
    values = account_values(card, account, signals, Decimal(50), date(2026, 11, 23))
    assert values == {
        "nps": 30,  # the signal wins over the field
        "days_since_last_meeting": 30,
        "executive_sponsor": 1.0,
        "days_since_last_activity": 5,  # 2 days when sent, 3 days ago
        "seat_utilisation": 0.9,  # 45 active users / 50 seats
    }


values_strategy = st.fixed_dictionaries(
    {},
    optional={
        "seat_utilisation": st.floats(0, 1.5),
        "nps": st.floats(-100, 100),
        "late_payments": st.floats(0, 10),
    },
)


@settings(max_examples=200, deadline=None)
@given(values_strategy)
def test_score_is_between_0_and_100(values):
    h = score_account(CARD, "a", values)
    assert h.score is None if not values else 0 <= h.score <= 100


@settings(max_examples=200, deadline=None)
@given(
    values_strategy, st.sampled_from(["seat_utilisation", "nps", "late_payments"]), st.floats(0, 50)
)
def test_score_is_monotone_in_each_measure(values, name, step):
    values = {**values, name: values.get(name, 0.5)}
    bigger = {**values, name: values[name] + step}
    before, after = weighted_score(CARD, values), weighted_score(CARD, bigger)
    if name == "late_payments":  # more late payments never help
        assert after <= before + 1e-9
    else:
        assert after >= before - 1e-9


@settings(max_examples=200, deadline=None)
@given(values_strategy, st.floats(0.1, 10))
def test_missing_measures_renormalise_the_weights(values, factor):
    if not values:
        return
    present = Scorecard(measures={k: CARD.measures[k] for k in values})
    assert weighted_score(CARD, values) == pytest.approx(weighted_score(present, values))
    scaled = Scorecard(
        measures={
            k: v.model_copy(update={"weight": v.weight * factor}) for k, v in CARD.measures.items()
        }
    )
    assert weighted_score(scaled, values) == pytest.approx(weighted_score(CARD, values))


def test_bad_scorecard_playbook_and_segment_settings_are_reported_with_their_paths(tmp_path):
    path = write_config(
        tmp_path,
        scorecard={
            "measures": {
                "nps": {"weight": 1, "thresholds": [{"at": 5, "score": 1}, {"at": 1, "score": 2}]}
            }
        },
        playbook={"holiday_country": "XX"},
        segments={"rules": [{"segment": "loyal", "when": {"tenure": {"min": 1}}}]},
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "scorecard.measures.nps.thresholds" in text and "strictly increasing" in text
    assert "playbook.holiday_country" in text and "'XX'" in text
    assert "segments.rules[0].when.tenure" in text
