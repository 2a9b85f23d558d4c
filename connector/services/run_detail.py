"""One recorded run in words (`renewals runs --id N`, the console's run page): what it did to
contracts, its writes by kind, its skips by reason, what it read and failed to map, the
guard's verdict, the dead letters it recorded and the file versions it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_renewals.connector.state import DeadLetter, Run, StateStore
from crm_renewals.connector.state.versions import short

#: the runs' modes and statuses (`renewals runs --mode/--status`, the console's filters)
MODES = ("full", "incremental", "webhook", "cpq_retry")
STATUSES = ("running", "ok", "partial", "failed", "stopped", "interrupted")
#: contracts by outcome, as `renewals sync` prints them
OUTCOMES = (
    ("created", "renewals created"),
    ("updated", "renewals updated"),
    ("unchanged", "unchanged"),
    ("skipped", "skipped"),
    ("failed", "failed"),
    ("tasks_created", "tasks created"),
)
KINDS = {
    "renewal_opportunity": "renewal opportunities",
    "renewal_line": "renewal lines",
    "contract": "contracts (CPQ renewal forecast)",
    "task": "tasks",
    "account_health": "account health scores",
}
OPS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "held": "held back: refused for good earlier, not sent again until retried",
}
SKIPS = {
    "not_due": "not due yet: the term ends after the lead window",
    "contract_ended": "the contract has ended",
    "contract_not_active": "the contract is not active",
    "already_renewed": "already renewed",
    "closed_renewal_exists": "its renewal is closed already",
    "missing_data": "data missing: fix it in the CRM",
    "no_active_owner": "no active owner to give the renewal to",
    "renewal_deleted": "its renewal was deleted in the CRM",
    "contract_deleted": "the contract was deleted or merged away in the CRM",
    "awaiting_cpq": "waiting for CPQ to make the renewal",
    "cpq_overdue": "CPQ has not made the renewal in time",
}
#: dead letters a run page lists (the rest are counted)
LETTERS_SHOWN = 100


@dataclass(frozen=True)
class Line:
    """A count with its name and the name in words."""

    name: str
    words: str
    count: int


@dataclass(frozen=True)
class RunDetail:
    run: Run
    outcomes: list[Line]
    writes: list[Line]
    skips: list[Line]
    records_read: list[Line]
    map_failures: list[dict[str, Any]]
    guard: str | None
    dead_letters: list[DeadLetter]
    dead_letters_total: int
    mapping_version: str | None
    config_version: str | None
    #: counts recorded under names this release does not know, shown as they are
    other: dict[str, Any] = field(default_factory=dict)
    #: the run's API calls by kind of request (composite, collections, query, ...)
    calls_by_kind: list[Line] = field(default_factory=list)


def write_words(name: str) -> str:
    """A write's name in words: renewal_opportunity.create -> renewal opportunities created."""
    kind, _, op = name.partition(".")
    return f"{KINDS.get(kind, kind.replace('_', ' '))} {OPS.get(op, op)}".strip()


def run_detail(store: StateStore, run_id: int) -> RunDetail | None:
    """Run `run_id` in words (None: no such run)."""
    run = store.runs.get(run_id)
    if run is None:
        return None
    counts = dict(run.counts or {})
    outcomes = [Line(k, words, counts.pop(k)) for k, words in OUTCOMES if k in counts]
    writes = [Line(n, write_words(n), c) for n, c in (counts.pop("writes", None) or {}).items()]
    skips = [
        Line(r, SKIPS.get(r, r.replace("_", " ")), c)
        for r, c in (counts.pop("skip_reasons", None) or {}).items()
    ]
    read = [
        Line(k, k.replace("_", " "), c) for k, c in (counts.pop("records_read", None) or {}).items()
    ]
    calls = [
        Line(k, f"{k} requests", c)
        for k, c in (counts.pop("api_calls_by_kind", None) or {}).items()
    ]
    letters, total = store.dead_letters.of_run(run_id, LETTERS_SHOWN)
    return RunDetail(
        run,
        outcomes,
        writes,
        skips,
        read,
        counts.pop("map_failures", None) or [],
        counts.pop("guard", None),
        letters,
        total,
        short(run.mapping_hash),
        short(run.config_hash),
        {k: v for k, v in counts.items() if v not in (None, {}, [])},
        calls,
    )
