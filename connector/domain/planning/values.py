"""What planning decides, as frozen values: a contract's plan is its renewal (a RenewalPlan,
or a Skip with the reason) and its tasks (a TaskPlan, planned whichever way the renewal went)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from crm_renewals.connector.domain.fastinit import fast_init
from crm_renewals.connector.domain.models import RenewalLine, RenewalOpportunity, Task
from crm_renewals.connector.domain.writes import Write

SkipReason = Literal[
    "not_due",
    "contract_ended",
    "contract_not_active",
    "already_renewed",
    "closed_renewal_exists",
    "missing_data",
    "no_active_owner",
    "renewal_deleted",
    "contract_deleted",
    "awaiting_cpq",
    "cpq_overdue",
]


@fast_init
@dataclass(frozen=True, slots=True)
class Skip:
    """No renewal for this contract now, and why (`explain` shows both)."""

    reason: SkipReason
    detail: str


@fast_init
@dataclass(frozen=True, slots=True)
class RenewalPlan:
    """Create or update the renewal opportunity and its lines (CPQ: ask CPQ for it)."""

    action: Literal["create", "update"]
    opportunity: RenewalOpportunity
    lines: tuple[RenewalLine, ...]
    locked: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    #: the renewal's own writes (opportunity, lines; CPQ: the renewal forecast)
    writes: tuple[Write, ...] = ()
    current: RenewalOpportunity | None = field(default=None, compare=False)


@fast_init
@dataclass(frozen=True, slots=True)
class TaskPlan:
    """The playbook's tasks for a contract and the writes of those not created yet."""

    tasks: tuple[Task, ...] = ()
    writes: tuple[Write, ...] = ()


#: Most contracts, most days: one shared value, nothing allocated per contract.
NO_TASKS = TaskPlan()


@fast_init
@dataclass(frozen=True, slots=True)
class ContractPlan:
    contract_id: str
    renewal: RenewalPlan | Skip
    tasks: TaskPlan = NO_TASKS

    @property
    def writes(self) -> tuple[Write, ...]:
        """Every write of the plan: the renewal's (parents first), then the tasks'."""
        renewal, tasks = self.renewal, self.tasks.writes
        if isinstance(renewal, Skip):
            return tasks
        return renewal.writes + tasks if tasks else renewal.writes
