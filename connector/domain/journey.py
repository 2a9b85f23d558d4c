"""The customer journey: each account's lifecycle in segments of `segment_days` counted from the
start of its first contract (again from segment 1 after a lapse longer than
`restart_after_lapse_days`), one touchpoint task in each segment, on the account.

A segment's task is keyed `<account id>:journey:<segment>:<segment start>` (never by contract:
each of the account's contracts plans it, and a run sends it once), created
`create_before_days` ahead of the segment's start while a contract of the account is in force
then (none across a lapse). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.models import Contract, Task
from crm_renewals.connector.domain.playbook import Schedule, TaskContext, _task, _values
from crm_renewals.connector.domain.playbook_dates import business_day, occurrences
from crm_renewals.connector.domain.policy import Journey, Playbook, Touchpoint

#: Contract statuses that never were a purchase (as lifecycle segments count them).
NOT_BOUGHT = ("draft", "cancelled")


@fast_init
@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of an account's journey: its number (1-based) and touchpoint."""

    account_id: str
    number: int
    start: date
    touchpoint: Touchpoint

    @property
    def key(self) -> str:
        return f"{self.account_id}:journey:{self.number}:{self.start.isoformat()}"


def terms(contracts: tuple[Contract, ...] | list[Contract]) -> list[tuple[date, date]]:
    """The account's bought contract terms, (start, end), by start."""
    return sorted(
        (c.start_date, c.end_date)
        for c in contracts
        if c.start_date is not None and c.status not in NOT_BOUGHT
    )


def runs(spans: list[tuple[date, date]], lapse_days: int) -> list[tuple[date, date]]:
    """Terms joined into runs: a gap longer than `lapse_days` between two starts a new run."""
    out: list[list[date]] = []
    for start, end in spans:
        if out and (start - out[-1][1]).days - 1 <= lapse_days:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def in_force(spans: list[tuple[date, date]], day: date) -> bool:
    return any(start <= day <= end for start, end in spans)


def segment_at(j: Journey, account_id: str, run_start: date, k: int) -> Segment | None:
    """The run's k-th segment (0-based), or None past the end of a journey that does not repeat."""
    if k >= j.segments and not j.repeat:
        return None
    number = k % j.segments + 1
    start = run_start + timedelta(days=k * j.segment_days)
    return Segment(account_id, number, start, j.touchpoint(number))


def current(j: Journey, account_id: str, contracts, day: date) -> Segment | None:
    """The segment the account is in on `day` (None: no contract in force, or journey over)."""
    spans = terms(contracts)
    if not in_force(spans, day):
        return None
    for start, end in runs(spans, j.restart_after_lapse_days):
        if start <= day <= end:
            return segment_at(j, account_id, start, (day - start).days // j.segment_days)
    return None


def upcoming(j: Journey, account_id: str, contracts, day: date) -> Segment | None:
    """The next segment starting after `day` while a contract is in force then."""
    spans = terms(contracts)
    for start, end in runs(spans, j.restart_after_lapse_days):
        if end < day:
            continue
        k = 0 if day < start else (day - start).days // j.segment_days + 1
        seg = segment_at(j, account_id, start, k)
        if seg is not None and seg.start <= end and in_force(spans, seg.start):
            return seg
    return None


def due_segments(playbook: Playbook, as_of: date, account_id: str, contracts) -> list[Segment]:
    """The segments whose task may be created today: the current one and any starting within
    its touchpoint's `create_before_days`, while a contract is in force, not covered by a
    playbook step of the same theme."""
    j = playbook.journey
    if not j.enabled:
        return []
    spans = terms(contracts)
    horizon = as_of + timedelta(days=j.lead_days())
    out = []
    for start, end in runs(spans, j.restart_after_lapse_days):
        if end < as_of or start > horizon:
            continue
        k = max(0, (as_of - start).days // j.segment_days)
        while (seg := segment_at(j, account_id, start, k)) and seg.start <= min(horizon, end):
            k += 1
            tp = seg.touchpoint
            if as_of < seg.start - timedelta(days=tp.create_before_days):
                continue
            if not in_force(spans, max(as_of, seg.start)):
                continue
            if j.skip_when_step_covers and _covered(playbook, seg, contracts):
                continue
            out.append(seg)
    return out


def journey_tasks(
    playbook: Playbook,
    as_of: date,
    tc: TaskContext,
    segments: list[Segment],
    s: Schedule | None = None,
) -> tuple[Task, ...]:
    """The tasks of these segments: on the account, for its owner, naming the renewal contacts.
    `s`: the playbook's schedule on `as_of` (Planner.schedule)."""
    if not segments:
        return ()
    s = s or Schedule(playbook, as_of)
    contacts = s.for_account(tc)[0]
    values = _values(s, tc)
    values.update(period="", segments=playbook.journey.segments)
    tasks = []
    for seg in segments:
        due = s.business_day(seg.start, False)
        if due < as_of:
            due = s.soon
        values["segment"] = seg.number
        tasks.append(_task(seg.key, seg.touchpoint, due, values, tc, contacts, True))
    return tuple(tasks)


def _covered(playbook: Playbook, seg: Segment, contracts) -> bool:
    """Whether a playbook step of the segment's theme falls due in it for one of the account's
    contracts (reps are not asked twice)."""
    end = seg.start + timedelta(days=playbook.journey.segment_days)
    theme = seg.touchpoint.theme
    for step in playbook.steps:
        if (step.theme or step.id) != theme:
            continue
        for contract in contracts:
            if contract.status in NOT_BOUGHT:
                continue
            if any(seg.start <= day < end for day, _ in occurrences(step, contract)):
                return True
    return False


def summary(playbook: Playbook, account_id: str, contracts, day: date) -> dict | None:
    """Where the account is in its journey on `day`: the current segment (None while no
    contract is in force) and the next touchpoint (the next segment a playbook step does not
    cover), due on its segment's first business day."""
    j = playbook.journey
    if not j.enabled:
        return None
    now, nxt = (
        current(j, account_id, contracts, day),
        upcoming(j, account_id, contracts, day),
    )
    for _ in range(j.segments):  # a segment a playbook step covers gets no journey task
        if nxt is None or not (j.skip_when_step_covers and _covered(playbook, nxt, contracts)):
            break
        nxt = upcoming(j, account_id, contracts, nxt.start)
    touchpoint = None
    if nxt is not None:
        due = business_day(nxt.start, playbook.weekend_days, False, playbook.holiday_country)
        touchpoint = {
            "segment": nxt.number,
            "theme": nxt.touchpoint.theme,
            "due": due.isoformat(),
        }
    return {
        "segment": now.number if now else None,
        "segments": j.segments,
        "theme": now.touchpoint.theme if now else None,
        "next_touchpoint": touchpoint,
    }
