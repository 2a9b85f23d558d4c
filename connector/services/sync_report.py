"""What a run did (`SyncReport`: the CLI prints it, `--json` and the job history carry its
`to_json`, whose keys monitoring reads), and which plans a caller asks a run to hand back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from crm_renewals.connector.domain.planning.values import ContractPlan, Skip

#: Picks the plans a run hands back in `SyncReport.plans` (the others are not kept: a large
#: book plans hundreds of thousands of contracts).
Show = Callable[[ContractPlan], bool]

#: Skip reasons an admin must act on (shown under "Needs attention").
ATTENTION = (
    "missing_data",
    "no_active_owner",
    "renewal_deleted",
    "contract_deleted",
    "cpq_overdue",
)


def needs_attention(plan: ContractPlan) -> bool:
    """A contract with no renewal for a reason an admin must act on."""
    return isinstance(plan.renewal, Skip) and plan.renewal.reason in ATTENTION


@dataclass
class SyncReport:
    run_id: int | None
    as_of: date
    dry_run: bool
    full: bool
    status: str = "ok"
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    api_calls: int = 0
    #: the run's API calls by kind of request (Salesforce: composite, collections, query,
    #: bulk, describe, ...); empty for a CRM whose adapter does not tell them apart
    api_calls_by_kind: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    duration_s: float = 0.0
    #: the plans the run's `show` picked, in planning order
    plans: list[ContractPlan] = field(default_factory=list, repr=False)
    error: str | None = None
    #: accounts by health grade (green, yellow, red) as scored in this run
    health: dict[str, int] = field(default_factory=dict)
    #: records read by kind, and those that failed to map ({kind, field, reason, count,
    #: sample_ids}, most first)
    records_read: dict[str, int] = field(default_factory=dict)
    map_failures: list[dict[str, Any]] = field(default_factory=list)
    #: skip reasons whose count changed since the last completed sync: {reason: {before,
    #: after}}; None when there is none to compare with
    skip_reasons_change: dict[str, dict[str, int]] | None = None
    #: the mapping guard's verdict (why a run should write nothing), None when it passes;
    #: a run that went on all the same was forced (or is a dry run)
    guard: str | None = None
    #: what an incremental run planned: {accounts, changed, due, signals} (accounts each
    #: reason brought in); None: the whole book (a full, dry or first run, or a large change)
    scope: dict[str, int] | None = None
    #: contracts counted in `failed` (could not be planned, or writes refused), by id
    failed_ids: list[str] = field(default_factory=list, repr=False)

    @property
    def tasks_created(self) -> int:
        return self.writes.get("task.create", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "full": self.full,
            "scope": self.scope,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "failed": self.failed,
            "api_calls": self.api_calls,
            "api_calls_by_kind": self.api_calls_by_kind,
            "writes": self.writes,
            "tasks_created": self.tasks_created,
            "skip_reasons": self.skip_reasons,
            "dead_letters": self.dead_letters,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "health": self.health,
            "records_read": self.records_read,
            "map_failures": self.map_failures,
            "skip_reasons_change": self.skip_reasons_change,
            "guard": self.guard,
        }
