"""The renewal-to-renewal playbook: tasks keyed to contract dates, business days with public
holidays, one task per (contract term, step, period), event tasks for risk and contacts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_renewals.connector.domain.health import Previous, score_account
from crm_renewals.connector.domain.journey import (
    current,
    due_segments,
    journey_tasks,
    summary,
    upcoming,
)
from crm_renewals.connector.domain.models import Account, Contact, Contract, Owner
from crm_renewals.connector.domain.playbook import TaskContext, plan_tasks
from crm_renewals.connector.domain.playbook_dates import business_day
from crm_renewals.connector.domain.policy import (
    EventStep,
    Journey,
    Playbook,
    PlaybookStep,
    Scorecard,
    Touchpoint,
)
from tests.unit.test_health import CARD

QBR = PlaybookStep(
    id="qbr",
    anchor="start",
    offset_days=0,
    repeat="quarterly",
    create_before_days=14,
    late_if_missed=False,
    subject="QBR {period}: {account_name}",
    description="Health {health_score} ({grade}); drivers: {drivers}. Upsell: {upsell}.",
)
KICKOFF = PlaybookStep(
    id="onboarding_kickoff",
    anchor="start",
    offset_days=0,
    create_before_days=7,
    late_if_missed=False,
    subject="Kickoff {account_name}",
)
NOTICE = PlaybookStep(
    id="customer_notice",
    anchor="end",
    offset_days=-60,
    create_before_days=30,
    subject="Notify",
    description="{amount} {currency} (uplift {uplift_percent}%)",
)
PLAYBOOK = Playbook(holiday_country="US", steps=(KICKOFF, QBR, NOTICE))
OWNER = Owner(id="u1", name="Sam")
ACCOUNT = Account(id="a1", name="Acme", owner_id="u1")
ANN = Contact(id="c1", account_id="a1", name="Ann", email="ann@x.test", renewal_contact=True)


def context(contract: Contract, contacts=(ANN,), health=None, at_risk=False) -> TaskContext:
    return TaskContext(
        f"{contract.id}:{contract.end_date}",
        None,
        contract,
        ACCOUNT,
        OWNER,
        list(contacts),
        Decimal("1050.00"),
        Decimal(5),
        health,
        (),
        at_risk,
    )


def contract(start=date(2026, 1, 15), end=date(2027, 1, 14), cid="k1") -> Contract:
    return Contract(
        id=cid, account_id="a1", status="active", start_date=start, end_date=end, currency="USD"
    )


def keys(tasks) -> list[str]:
    return [t.dedupe_key for t in tasks]


def test_due_dates_move_off_weekends_and_public_holidays():
    # 2026-12-25 is a Friday and Christmas Day in the US
    assert business_day(date(2026, 12, 25), (5, 6), backwards=True) == date(2026, 12, 25)
    assert business_day(date(2026, 12, 25), (5, 6), True, "US") == date(2026, 12, 24)
    assert business_day(date(2026, 12, 25), (5, 6), False, "US") == date(2026, 12, 28)
    # end 2027-02-23: notice due 60 days before = 2026-12-25 -> Thursday 2026-12-24
    (notice,) = plan_tasks(
        PLAYBOOK, date(2026, 12, 1), context(contract(date(2026, 2, 24), date(2027, 2, 23)))
    )
    assert notice.due_date == date(2026, 12, 24)
    assert notice.description.startswith("1,050.00 USD (uplift 5%)")


def test_a_qbr_each_quarter_of_the_term_keyed_by_its_quarter():
    c = contract()  # 2026-01-15 .. 2027-01-14: QBRs 2026-04-15, 07-15, 10-15
    seen = {}
    day = c.start_date - timedelta(days=10)
    while day <= c.end_date:
        for t in plan_tasks(PLAYBOOK, day, context(c)):
            seen.setdefault(t.dedupe_key, t)
        day += timedelta(days=1)
    assert sorted(seen) == [
        "k1:2027-01-14:customer_notice",
        "k1:2027-01-14:onboarding_kickoff",
        "k1:2027-01-14:qbr:2026-Q2",
        "k1:2027-01-14:qbr:2026-Q3",
        "k1:2027-01-14:qbr:2026-Q4",
    ]
    assert seen["k1:2027-01-14:qbr:2026-Q3"].due_date == date(2026, 7, 15)
    assert seen["k1:2027-01-14:qbr:2026-Q2"].subject == "QBR 2026-Q2: Acme"
    assert seen["k1:2027-01-14:onboarding_kickoff"].due_date == date(2026, 1, 15)


def test_steps_not_late_if_missed_are_not_created_after_their_due_date():
    assert keys(plan_tasks(PLAYBOOK, date(2026, 4, 16), context(contract()))) == []


def test_qbr_brief_carries_health_and_drivers():
    health = score_account(CARD, "a1", {"seat_utilisation": 0.34, "late_payments": 0})
    (qbr,) = plan_tasks(PLAYBOOK, date(2026, 4, 10), context(contract(), health=health))
    assert qbr.description.startswith(
        "Health 52 (yellow); drivers: low confidence (2 measures); seat utilisation 34%."
    )


def test_contracts_planned_in_turn_read_their_own_accounts_owner_and_health():
    """An account's placeholder values are made once for its contracts, planned one after
    another (playbook.schedule); a context with another owner or health reads those."""
    contacts = (ANN,)  # one tuple, as the book hands every contract of an account
    low = score_account(CARD, "a1", {"seat_utilisation": 0.34, "late_payments": 0})
    high = score_account(CARD, "a1", {"seat_utilisation": 0.95, "late_payments": 0})
    day, first = date(2026, 4, 10), replace(context(contract(), health=low), contacts=contacts)
    (qbr,) = plan_tasks(PLAYBOOK, day, first)
    (again,) = plan_tasks(PLAYBOOK, day, replace(first, contract=contract(cid="k2")))
    assert again.description == qbr.description.replace("k1", "k2")
    (better,) = plan_tasks(PLAYBOOK, day, replace(first, health=high))
    assert better.description.startswith("Health 100 (green)")
    nobody = plan_tasks(PLAYBOOK, day, replace(first, health=high, contacts=()))
    assert [t.dedupe_key for t in nobody] == [qbr.dedupe_key, "a1:name_contact:2026-Q2"]
    # accounts with no contacts and no health share both values (the empty tuple, None)
    other = Account(id="a2", name="Globex", owner_id="u1")
    bare = replace(first, health=None, contacts=())
    for tc in (bare, replace(bare, account=other)):
        *_, ask = plan_tasks(PLAYBOOK, day, tc)
        assert ask.subject == f"Name a renewal contact for {tc.account.name}"
    named = QBR.model_copy(update={"subject": "QBR with {owner_name}"})
    playbook = PLAYBOOK.model_copy(update={"steps": (named,)})
    (sam,) = plan_tasks(playbook, day, first)
    (kim,) = plan_tasks(playbook, day, replace(first, owner=Owner(id="u2", name="Kim")))
    assert (sam.subject, kim.subject, kim.owner_id) == ("QBR with Sam", "QBR with Kim", "u2")


def test_at_risk_and_name_a_contact_tasks():
    health = score_account(
        CARD, "a1", {"seat_utilisation": 0.2, "late_payments": 3}, Previous(60, "yellow")
    )
    tasks = plan_tasks(
        PLAYBOOK, date(2026, 5, 1), context(contract(), contacts=(), health=health, at_risk=True)
    )
    by_key = {t.dedupe_key: t for t in tasks}
    risk = by_key["a1:at_risk:2026-05-01"]
    assert risk.priority == "high" and risk.due_date == date(2026, 5, 1)
    assert risk.subject == "At risk: Acme is red (12)"
    assert "name one" in by_key["a1:name_contact:2026-Q2"].description


def test_account_steps_and_events_are_one_task_per_account_on_the_account():
    """Three contracts of one account, all at risk, QBRs in the same quarter: one QBR, one
    at-risk and one name-a-contact task, keyed by the account and hung off it (no renewal)."""
    qbr = QBR.model_copy(update={"scope": "account"})
    playbook = PLAYBOOK.model_copy(update={"steps": (KICKOFF, qbr, NOTICE)})
    per_contract = []
    for i, start in enumerate((date(2026, 1, 10), date(2026, 1, 14), date(2026, 1, 16))):
        c = contract(start, start + timedelta(days=364), f"k{i}")
        # the renewals exist already: a term's tasks would hang off them, the account's not
        tc = replace(context(c, contacts=(), at_risk=True), parent_key=f"{c.id}:renewal")
        per_contract.append(plan_tasks(playbook, date(2026, 4, 6), tc))
    union = {t.dedupe_key: t for tasks in per_contract for t in tasks}
    assert sorted(union) == ["a1:at_risk:2026-04-06", "a1:name_contact:2026-Q2", "a1:qbr:2026-Q2"]
    assert all(t.renewal_key is None and t.account_id == "a1" for t in union.values())
    assert all(len(tasks) == 3 for tasks in per_contract)  # each plans them: sent once a run


def test_event_steps_can_be_switched_off():
    off = PLAYBOOK.model_copy(
        update={"name_contact": EventStep(enabled=False, subject="x"), "steps": ()}
    )
    assert plan_tasks(off, date(2026, 5, 1), context(contract(), contacts=())) == ()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 900), st.sampled_from([365, 730, 1095])), min_size=1, max_size=6
    ),
    st.lists(st.integers(0, 1200), min_size=1, max_size=12),
    st.booleans(),
)
def test_no_task_key_twice_over_contracts_and_days(terms, days, risky):
    base = date(2025, 1, 1)
    card = Scorecard(measures=CARD.measures)
    health = score_account(card, "a1", {"late_payments": 3}, Previous(80, "green"))
    planned: dict[str, str] = {}
    for i, (offset, length) in enumerate(terms):
        c = contract(base + timedelta(days=offset), base + timedelta(days=offset + length), f"k{i}")
        for d in days:
            tasks = plan_tasks(
                PLAYBOOK, base + timedelta(days=d), context(c, health=health, at_risk=risky)
            )
            assert len(keys(tasks)) == len(set(keys(tasks)))
            for t in tasks:
                # a key always names the same task (contract, step, period)
                assert planned.setdefault(t.dedupe_key, t.subject) == t.subject


# ---------------------------------------------------------------- the customer journey

JOURNEY = Journey(
    enabled=True,
    restart_after_lapse_days=60,
    touchpoints={
        "1": Touchpoint(theme="onboarding", subject="Welcome {account_name}"),
        "8-11": Touchpoint(theme="renewal_preparation", subject="Prep {segment}/{segments}"),
        "9": Touchpoint(theme="expansion", subject="Expand {account_name}", priority="high"),
        "5": Touchpoint(theme="qbr", subject="Review {segment}"),
    },
)
JOURNEY_BOOK = Playbook(steps=(), journey=JOURNEY)


def journey_contract(cid: str, start: date, end: date, status="active") -> Contract:
    return Contract(id=cid, account_id="a1", status=status, start_date=start, end_date=end)


def test_touchpoints_by_segment_and_range_the_narrowest_wins():
    themes = [JOURNEY.touchpoint(n).theme for n in range(1, 19)]
    assert themes[0] == "onboarding" and themes[4] == "qbr"
    prep = "renewal_preparation"
    assert themes[7:11] == [prep, "expansion", prep, prep]  # "9" inside "8-11"
    assert themes[1] == "check_in"  # the default touchpoint


def test_journey_settings_refuse_bad_ranges():
    with pytest.raises(ValidationError, match="segment number or range"):
        Journey(touchpoints={"four": Touchpoint(theme="x", subject="s")})
    with pytest.raises(ValidationError, match="past the last segment"):
        Journey(touchpoints={"17-19": Touchpoint(theme="x", subject="s")})
    with pytest.raises(ValidationError, match="overlap"):
        Journey(
            touchpoints={
                "2-3": Touchpoint(theme="x", subject="s"),
                "3-4": Touchpoint(theme="y", subject="s"),
            }
        )


def test_one_journey_task_per_segment_on_the_account_created_ahead():
    c = journey_contract("k1", date(2026, 1, 5), date(2027, 1, 4))
    # 7 days before segment 1 starts: created, due on its start, on the account
    (seg,) = due_segments(JOURNEY_BOOK, date(2025, 12, 29), "a1", [c])
    tasks = journey_tasks(JOURNEY_BOOK, date(2025, 12, 29), context(c), [seg])
    (t,) = tasks
    assert t.dedupe_key == "a1:journey:1:2026-01-05"
    assert (t.subject, t.due_date, t.renewal_key, t.account_id) == (
        "Welcome Acme",
        date(2026, 1, 5),
        None,
        "a1",
    )
    assert "Renewal contacts: Ann <ann@x.test>." in t.description
    assert due_segments(JOURNEY_BOOK, date(2025, 12, 28), "a1", [c]) == []  # not yet
    # segment 9 (days 240-269): the narrowest touchpoint
    (nine,) = due_segments(JOURNEY_BOOK, date(2026, 9, 5), "a1", [c])
    assert (nine.number, nine.start, nine.touchpoint.theme) == (9, date(2026, 9, 2), "expansion")
    # three days before segment 10 starts: the current one and the next
    both = due_segments(JOURNEY_BOOK, date(2026, 9, 29), "a1", [c])
    assert [s.number for s in both] == [9, 10]


def test_the_journey_counts_from_the_first_contract_and_restarts_after_a_lapse():
    first = journey_contract("k1", date(2025, 1, 1), date(2025, 12, 31), "expired")
    second = journey_contract("k2", date(2026, 1, 1), date(2026, 12, 31))  # renewed: one run
    (seg,) = due_segments(JOURNEY_BOOK, date(2026, 1, 10), "a1", [first, second])
    assert (seg.number, seg.start) == (13, date(2025, 1, 1) + timedelta(days=360))
    lapsed = journey_contract("k3", date(2027, 6, 1), date(2028, 5, 31))  # 151 days later
    assert due_segments(JOURNEY_BOOK, date(2027, 3, 1), "a1", [first, second, lapsed]) == []
    (again,) = due_segments(JOURNEY_BOOK, date(2027, 6, 10), "a1", [first, second, lapsed])
    assert (again.number, again.start) == (1, date(2027, 6, 1))
    assert current(JOURNEY, "a1", [first, second, lapsed], date(2027, 3, 1)) is None
    nxt = upcoming(JOURNEY, "a1", [first, second, lapsed], date(2027, 3, 1))
    assert (nxt.number, nxt.start) == (1, date(2027, 6, 1))


def test_a_step_of_the_same_theme_in_the_segment_covers_it():
    c = journey_contract("k1", date(2026, 1, 5), date(2027, 1, 4))
    qbr = QBR.model_copy(update={"create_before_days": 0})
    # segment 5 runs 2026-05-05 .. 2026-06-03; no QBR falls in it (April 5, July 5)
    day = date(2026, 5, 10)
    covered = Playbook(steps=(qbr,), journey=JOURNEY)
    assert [s.number for s in due_segments(covered, day, "a1", [c])] == [5]
    moved = qbr.model_copy(update={"offset_days": 31})  # a QBR now falls on 2026-05-05
    assert due_segments(Playbook(steps=(moved,), journey=JOURNEY), day, "a1", [c]) == []
    off = JOURNEY.model_copy(update={"skip_when_step_covers": False})
    assert len(due_segments(Playbook(steps=(moved,), journey=off), day, "a1", [c])) == 1


def test_the_journey_is_off_unless_enabled():
    c = journey_contract("k1", date(2026, 1, 5), date(2027, 1, 4))
    assert due_segments(Playbook(steps=()), date(2026, 3, 1), "a1", [c]) == []


def test_the_summary_names_the_segment_and_the_next_touchpoint_a_step_leaves_to_the_journey():
    c = journey_contract("k1", date(2026, 1, 5), date(2027, 1, 4))
    qbr = QBR.model_copy(update={"create_before_days": 0, "offset_days": 31})  # on 2026-05-05
    day = date(2026, 4, 20)  # segment 4 (2026-04-05 .. 2026-05-04)
    assert summary(JOURNEY_BOOK, "a1", [c], day) == {
        "segment": 4,
        "segments": 18,
        "theme": "check_in",
        "next_touchpoint": {"segment": 5, "theme": "qbr", "due": "2026-05-05"},
    }
    covered = summary(Playbook(steps=(qbr,), journey=JOURNEY), "a1", [c], day)
    assert covered["next_touchpoint"] == {"segment": 6, "theme": "check_in", "due": "2026-06-04"}
    assert summary(JOURNEY_BOOK, "a1", [c], date(2027, 2, 1))["segment"] is None
    assert summary(Playbook(), "a1", [c], day) is None
