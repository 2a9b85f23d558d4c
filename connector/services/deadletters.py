"""Dead letters as an admin handles them (`renewals deadletters` and the console): find them by
kind, error code and field; check the ones named exist and are open; discard them with a
reason; and keep a discarded refused write from being sent again (`Discards`, which every run
applies to its plans)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from crm_renewals.connector.domain.planning.values import ContractPlan, RenewalPlan
from crm_renewals.connector.domain.writes import Write
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services.apply import sent_payload
from crm_renewals.connector.state import DeadLetter, StateStore

#: a discard's reason: long enough to say something, short enough for the audit log
REASON_MIN, REASON_MAX = 3, 500
PER_PAGE = 50
FILTERS = ("kind", "error_code", "field")


class DeadLetterError(ConnectorError):
    """Dead letters named that do not exist or are not open, or a discard without a reason."""


@dataclass(frozen=True)
class LetterPage:
    letters: list[DeadLetter]
    total: int
    page: int
    pages: int
    #: the kinds, error codes and fields letters name (to filter by)
    facets: dict[str, list[str]]
    #: contract id -> (number, account name) of the contracts the letters name
    contracts: dict[str, tuple[str | None, str | None]]


def find_letters(
    store: StateStore,
    *,
    include_resolved: bool = False,
    filters: dict[str, str] | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> LetterPage:
    """One page of letters, newest first: open ones (or all), of the kind, error code and
    field in `filters` (keys of FILTERS; empty: any)."""
    wanted = {k: v for k, v in (filters or {}).items() if v}
    unknown = set(wanted) - set(FILTERS)
    if unknown:
        raise DeadLetterError(f"cannot filter dead letters by {', '.join(sorted(unknown))}")
    letters, total = store.dead_letters.search(
        include_resolved, wanted, per_page, (page - 1) * per_page
    )
    pages = max(1, -(-total // per_page))
    facets = store.dead_letters.facets(include_resolved)
    return LetterPage(letters, total, page, pages, facets, contract_labels(store, letters))


def letter(store: StateStore, letter_id: int) -> DeadLetter | None:
    found = store.dead_letters.get_many([letter_id])
    return found[0] if found else None


def contract_labels(
    store: StateStore, letters: Iterable[DeadLetter]
) -> dict[str, tuple[str | None, str | None]]:
    """Contract id -> (number, account name) of the contracts these letters name."""
    ids = {d.contract_id for d in letters if d.contract_id}
    return store.browse.contract_labels(ids) if ids else {}


def open_letters(store: StateStore, ids: Collection[int]) -> list[DeadLetter]:
    """The open letters `ids` name (DeadLetterError naming those that are unknown or closed)."""
    if not ids:
        raise DeadLetterError("no dead letter named: give their ids")
    found = {d.id: d for d in store.dead_letters.get_many(ids)}
    unknown = sorted(i for i in set(ids) if i not in found)
    closed = sorted(i for i, d in found.items() if d.resolved_at is not None)
    problems = []
    if unknown:
        problems.append(f"no dead letter {_ids(unknown)}")
    if closed:
        problems.append(f"dead letter {_ids(closed)} is resolved already")
    if problems:
        raise DeadLetterError("; ".join(problems) + " (renewals deadletters list --all)")
    return [found[i] for i in sorted(found)]


def discard(
    store: StateStore,
    ids: Collection[int],
    reason: str,
    actor: str,
    connection: str | None = None,
) -> list[DeadLetter]:
    """Close these open letters without retrying them, recording who and why (on each letter
    and in the audit log). A refused write discarded is not sent again by later runs; a
    failure to read discarded is not opened again while the record fails the same way."""
    reason = " ".join((reason or "").split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise DeadLetterError(
            f"say why the dead letters are discarded: a reason of {REASON_MIN} to "
            f"{REASON_MAX} characters (this one has {len(reason)})"
        )
    letters = open_letters(store, ids)
    store.dead_letters.discard(
        [d.id for d in letters], {"action": "discarded", "by": actor, "reason": reason}
    )
    store.audit.record(
        actor,
        "deadletters.discard",
        _ids([d.id for d in letters]),
        {"reason": reason, "letters": [_named(d) for d in letters]}
        | ({"connection": connection} if connection else {}),
    )
    return store.dead_letters.get_many([d.id for d in letters])


class Discards:
    """The refused writes an admin discarded (what each sent, by kind and key): a plan's
    write that would send one of them again, unchanged, is dropped, with the writes under it
    (the lines and tasks of a discarded renewal). A changed write is a new one: it is sent."""

    def __init__(self, sent: dict[tuple[str, str], list[dict[str, Any] | None]]):
        self.sent = sent
        #: writes dropped, by "kind.discarded" (a run's writes count them)
        self.dropped: Counter[str] = Counter()

    @classmethod
    def of(cls, store: StateStore) -> Discards:
        return cls(store.dead_letters.discarded_writes())

    def filter(self, plans: Iterable[ContractPlan]) -> Iterator[ContractPlan]:
        """The plans, each without its discarded writes."""
        if not self.sent:
            yield from plans
            return
        for plan in plans:
            yield self.apply(plan)

    def apply(self, plan: ContractPlan) -> ContractPlan:
        """The plan without its discarded writes (the same plan when it has none)."""
        gone: set[str] = set()
        for w in plan.writes:  # parents come first
            sent = None if w.op == "delete" else sent_payload(w)
            if w.parent_key in gone or sent in self.sent.get((w.kind, w.key), ()):
                gone.add(w.key)
                self.dropped[f"{w.kind}.discarded"] += 1
        if not gone:
            return plan
        renewal, tasks = plan.renewal, plan.tasks
        if isinstance(renewal, RenewalPlan):
            renewal = replace(renewal, writes=_kept(renewal.writes, gone))
        tasks = replace(tasks, writes=_kept(tasks.writes, gone))
        return replace(plan, renewal=renewal, tasks=tasks)


def _kept(writes: tuple[Write, ...], gone: set[str]) -> tuple[Write, ...]:
    return tuple(w for w in writes if w.key not in gone)


def _named(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "record_id": d.record_id,
        "contract_id": d.contract_id,
        "error_code": d.error_code,
    }


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)
