"""Apply: send planned writes in batches of the adapter's maximum size, record each accepted
write in the ledger, dead-letter each refused one, and carry on with the rest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.mapping import to_crm
from crm_renewals.connector.domain.models import Task, validate
from crm_renewals.connector.domain.planning.planner import account_of
from crm_renewals.connector.domain.planning.values import ContractPlan, Skip, TaskPlan
from crm_renewals.connector.domain.playbook import on_account
from crm_renewals.connector.domain.writes import (
    LINE_FIELDS,
    RENEWAL_OWNED,
    RENEWAL_SALES,
    TASK_FIELDS,
    Write,
    jsonable,
    same,
)
from crm_renewals.connector.interrupts import deferred_interrupt
from crm_renewals.connector.ports import OutboundRecord, WriteResult
from crm_renewals.connector.retry import backoff
from crm_renewals.connector.services.context import Context

#: (kind, ops, port method) in the order that keeps parents ahead of children.
STAGES = (
    ("renewal_opportunity", ("create", "update"), "upsert"),
    ("renewal_line", ("create", "update"), "upsert"),
    ("renewal_line", ("delete",), "delete"),
    ("contract", ("update",), "upsert"),  # CPQ mode: the renewal forecast flag
    ("task", ("create",), "create_missing"),
    ("account_health", ("update",), "upsert"),
)


class Ledger:
    """In-memory view of the ledger table (LedgerView for planning)."""

    def __init__(self, rows: dict[tuple[str, str], dict[str, Any]]):
        self.rows = rows

    def written(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.rows.get((kind, key))


@dataclass
class ApplyOutcome:
    failed_contracts: set[str] = field(default_factory=set)
    writes: dict[str, int] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # CRM API calls by kind

    def count(self, kind: str, op: str) -> None:
        name = f"{kind}.{op}"
        self.writes[name] = self.writes.get(name, 0) + 1


@dataclass
class Collected:
    """What a run keeps of its plans. Plans themselves are not kept, but for the few asked
    for: a first sync of a large book plans hundreds of thousands of records, so writes
    stream into the Applier instead."""

    #: contracts whose outcome is settled at planning: skip reasons, "unchanged", "failed"
    settled: Counter[str] = field(default_factory=Counter)
    #: contracts settled as "failed": not planned, their data could not be mapped
    broken: list[str] = field(default_factory=list)
    #: contract id -> "create" | "update" for contracts with writes (these can still fail)
    writing: dict[str, str] = field(default_factory=dict)
    planned: Counter[str] = field(default_factory=Counter)
    #: the plans `collect` was asked to keep, in planning order
    kept: list[ContractPlan] = field(default_factory=list)


def collect(
    plans: Iterable[ContractPlan],
    book: Book,
    ledger: Ledger,
    applier: Applier | None,
    keep: Callable[[ContractPlan], bool],
) -> Collected:
    """Consume plans (in `planning_order`); their writes and ledger catch-up go to `applier`
    (None: dry run); the plans `keep` picks are kept (`Collected.kept`)."""
    out = Collected()
    account, tasks = "", set()  # the account tasks of the account whose contracts come now
    for plan in plans:
        if (current := account_of(book, plan.contract_id)) != account:
            account, tasks = current, set()
        plan = _without_repeats(plan, tasks)
        if keep(plan):
            out.kept.append(plan)
        renewal, writes = plan.renewal, plan.writes
        skipped = isinstance(renewal, Skip)
        if skipped:  # its tasks are written all the same (onboarding, QBR, prep)
            if plan.contract_id in book.broken:
                out.broken.append(plan.contract_id)
            out.settled["failed" if plan.contract_id in book.broken else renewal.reason] += 1
        elif writes:
            out.writing[plan.contract_id] = renewal.action
        else:
            out.settled["unchanged"] += 1
        out.planned.update(f"{w.kind}.{w.op}" for w in writes)
        if applier is not None:
            if not skipped:
                applier.catch_up(catch_up_rows(plan, book, ledger))
            for w in writes:
                applier.add(w)
    return out


def _without_repeats(plan: ContractPlan, seen: set[str]) -> ContractPlan:
    """The plan without the account tasks another contract of the account planned already
    (each of them plans them; plans come account by account: `planning_order`). The same
    plan when there are none: most plans."""
    kept, repeated = [], False
    for w in plan.tasks.writes:
        if w.kind == "task" and on_account(w.source):
            if w.key in seen:
                repeated = True
                continue
            seen.add(w.key)
        kept.append(w)
    if not repeated:
        return plan
    return ContractPlan(plan.contract_id, plan.renewal, TaskPlan(plan.tasks.tasks, tuple(kept)))


def catch_up_rows(plan: ContractPlan, book: Book, ledger: Ledger) -> list[dict[str, Any]]:
    """Ledger rows that bring the ledger up to what the CRM holds where a killed run left it
    behind (a run can die between the CRM accepting a write and the ledger recording it). A
    record under our key that the ledger lacks is adopted; a field whose CRM value is already
    what we want is taken as written; a line we deleted is dropped. Otherwise each would later
    look like a rep's edit."""
    renewal, cid = plan.renewal, plan.contract_id
    if isinstance(renewal, Skip) or renewal.current is None:
        return []
    key = renewal.opportunity.key
    rows = _catch_up(
        "renewal_opportunity",
        key,
        cid,
        renewal.current,
        renewal.opportunity,
        RENEWAL_OWNED + RENEWAL_SALES,
        ledger,
    )
    wanted = {ln.key: ln for ln in renewal.lines}
    for line in book.renewal_lines_of(key):
        if line.key:
            rows += _catch_up(
                "renewal_line", line.key, cid, line, wanted.get(line.key), LINE_FIELDS, ledger
            )
    for gone in book.deleted_lines_of(key) - wanted.keys():
        if ledger.written("renewal_line", gone) is not None:
            rows.append(_row("renewal_line", gone, cid, None, None))
    return rows


def _catch_up(
    kind: str, key: str, contract_id: str, current, desired, names: tuple[str, ...], ledger: Ledger
) -> list[dict[str, Any]]:
    base = ledger.written(kind, key)
    if base is None:
        fields = {n: jsonable(getattr(current, n)) for n in names}
        return [_row(kind, key, contract_id, None, fields)]
    fresh = {
        n: jsonable(getattr(current, n))
        for n in names
        if desired is not None
        and same(getattr(current, n), getattr(desired, n))
        and not same(getattr(current, n), base.get(n))
    }
    return [_row(kind, key, contract_id, None, {**base, **fresh})] if fresh else []


class Applier:
    """Sends writes as they are planned, in full batches of the adapter's maximum size.

    A child (line, task) waits until its parent renewal's batch has been answered: it is sent
    only once the parent exists in the CRM, and dropped (its contract failed) if the parent was
    refused. Only part-filled batches remain for `finish`, so the call count is the same as if
    all writes had been gathered first, while memory stays bounded by a few batches."""

    def __init__(
        self,
        ctx: Context,
        ledger: Ledger,
        run_id: int,
        progress: Callable[[str, int], None] | None = None,
        *,
        retry: bool = False,
    ):
        self.ctx, self.ledger, self.run_id, self.progress = ctx, ledger, run_id, progress
        self.outcome = ApplyOutcome()
        self.buffers: list[list[Write]] = [[] for _ in STAGES]
        self.waiting: dict[str, list[Write]] = {}
        self.unsent_parents: set[str] = set()
        self.failed_parents: set[str] = set()
        self.pending_catch_up: list[dict[str, Any]] = []
        #: writes the CRM refused for good, by (kind, key): the same write is held back (not
        #: sent again to be refused again) until `deadletters retry` (retry=True) sends it
        self.refused = ctx.store.dead_letters.refused_writes()
        self.retry = retry
        self.replanned: set[tuple[str, str]] = set()  # refused writes planned again this run

    def catch_up(self, rows: list[dict[str, Any]]) -> None:
        """Ledger rows to record before any write is sent (see catch_up_rows)."""
        self.pending_catch_up += rows

    def replay_refused_tasks(self) -> None:
        """Send again the refused tasks no plan brought back this run (an at-risk task of an
        earlier day, a step past its due date): a transient refusal by every run, any refusal
        on `deadletters retry`. A refused task is never lost."""
        for (kind, key), letter in sorted(self.refused.items()):
            payload = letter.payload
            if kind != "task" or (kind, key) in self.replanned or payload is None:
                continue
            if (self.retry or letter.retriable) and self.ledger.written(kind, key) is None:
                task = validate(Task, {**payload["fields"], "dedupe_key": key})
                self.add(
                    Write(
                        "task",
                        "create",
                        key,
                        letter.contract_id or "",
                        task,
                        TASK_FIELDS,
                        payload.get("parent_key"),
                        payload.get("parent_id"),
                    )
                )

    def add(self, w: Write) -> None:
        stage = _stage(w)
        if (w.kind, w.key) in self.refused:
            self.replanned.add((w.kind, w.key))
        if self._held(w):
            self.outcome.failed_contracts.add(w.contract_id)
            self.outcome.count(w.kind, "held")
            if stage == 0:
                self.failed_parents.add(w.key)
            return
        if stage == 0:
            self.unsent_parents.add(w.key)
        elif w.parent_key in self.failed_parents:
            self.outcome.failed_contracts.add(w.contract_id)
            return
        elif w.parent_key in self.unsent_parents:
            self.waiting.setdefault(w.parent_key, []).append(w)
            return
        self.buffers[stage].append(w)
        if len(self.buffers[stage]) >= self.ctx.crm.max_batch:
            self._flush(stage)

    def finish(self) -> ApplyOutcome:
        for stage in range(len(STAGES)):
            self._flush(stage)
        record_ledger(self.ctx, self.ledger, self.pending_catch_up, self.run_id)
        return self.outcome

    def _flush(self, stage: int) -> None:
        batch, self.buffers[stage] = self.buffers[stage], []
        if not batch:
            return
        record_ledger(self.ctx, self.ledger, self.pending_catch_up, self.run_id)
        self.pending_catch_up = []
        kind, _, method, calls = *STAGES[stage], self.ctx.crm.api_calls
        results = self._send(kind, method, batch)
        self.outcome.calls[kind] += self.ctx.crm.api_calls - calls
        rows, letters, done = [], [], []
        for w, res in zip(batch, results, strict=True):
            if res.ok:
                done.append(w.op if w.op != "create" or res.created else "update")
                rows.append(_ledger_row(self.ledger, w, res))
            else:
                self.outcome.failed_contracts.add(w.contract_id)
                letters.append(_letter(w, res))
                if stage == 0:
                    self.failed_parents.add(w.key)
        with deferred_interrupt():  # the run's counts are what its ledger holds, even on Ctrl-C
            with self.ctx.store.begin() as uow:  # the batch's ledger and letters: all or none
                record_ledger(self.ctx, self.ledger, rows, self.run_id, uow)
                uow.dead_letters.add(letters, self.run_id)
                uow.dead_letters.resolve(kind, [r["key"] for r in rows])
            for op in done:
                self.outcome.count(kind, op)
        if self.progress:
            self.progress(kind, len(batch))
        if stage == 0:
            for w in batch:
                self.unsent_parents.discard(w.key)
                for child in self.waiting.pop(w.key, []):
                    self.add(child)

    def _held(self, w: Write) -> bool:
        """The same write as one the CRM refused for good (not a transient refusal)."""
        letter = self.refused.get((w.kind, w.key))
        return (
            not self.retry
            and letter is not None
            and not letter.retriable
            and letter.payload == sent_payload(w)
        )

    def _send(self, kind: str, method: str, batch: list[Write]) -> list[WriteResult]:
        """Send a batch; records refused for a transient reason (a locked row, a per-record
        429 or 5xx) go again on their own, with jittered backoff, up to sync.retry_attempts."""
        results = _send(self.ctx, kind, method, batch)
        sync = self.ctx.config.sync
        for attempt in range(1, sync.retry_attempts):
            again = [i for i, r in enumerate(results) if not r.ok and r.retriable]
            if not again:
                break
            self.ctx.sleep(backoff(attempt, sync.retry_max_wait_seconds))
            answers = _send(self.ctx, kind, method, [batch[i] for i in again])
            for i, answer in zip(again, answers, strict=True):
                results[i] = answer
        return results


def sent_payload(w: Write) -> dict[str, Any]:
    """What a refused write sent, as stored with its dead letter."""
    fields = {k: jsonable(v) for k, v in w.fields.items()}
    return {"fields": fields, "parent_key": w.parent_key, "parent_id": w.parent_id}


def _stage(w: Write) -> int:
    for i, (kind, ops, _) in enumerate(STAGES):
        if w.kind == kind and w.op in ops:
            return i
    raise ValueError(f"no stage writes {w.kind}.{w.op}")


def _ledger_row(ledger: Ledger, w: Write, res: WriteResult) -> dict[str, Any]:
    if w.op == "delete":
        return _row(w.kind, w.key, w.contract_id, res.crm_id, None)
    base = ledger.written(w.kind, w.key) or {}
    fields = {**base, **{k: jsonable(v) for k, v in w.fields.items()}}
    return _row(w.kind, w.key, w.contract_id, res.crm_id, fields)


def _send(ctx: Context, kind: str, method: str, batch: list[Write]) -> list[WriteResult]:
    call = getattr(ctx.crm, method)
    if method == "delete":
        payload: list = [w.key for w in batch]
    else:
        payload = [
            OutboundRecord(
                w.key,
                to_crm(ctx.mapping, kind, w.fields),
                w.parent_key,
                w.parent_id,
                exists=w.op == "update",
            )
            for w in batch
        ]
    return call(kind, payload)


def _row(
    kind: str, key: str, contract_id: str, crm_id: str | None, fields: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "contract_id": contract_id,
        "crm_id": crm_id,
        "fields": fields,
    }


def record_ledger(ctx: Context, ledger: Ledger, rows: list, run_id: int, uow=None) -> None:
    """Store ledger rows (fields None removes one; in a unit of work `uow` if given) and keep
    the in-memory view in step."""
    (uow or ctx.store).ledger.record(rows, run_id)
    for r in rows:
        if r["fields"] is None:
            ledger.rows.pop((r["kind"], r["key"]), None)
        else:
            ledger.rows[(r["kind"], r["key"])] = r["fields"]


def _letter(w: Write, res: WriteResult) -> dict[str, Any]:
    return {
        "stage": "write",
        "kind": w.kind,
        "record_id": w.key,
        "contract_id": w.contract_id,
        "field": None,
        "value": None,
        "error_code": res.error_code,
        "message": res.message or res.error_code or "refused by the CRM",
        "payload": None if w.op == "delete" else sent_payload(w),
        "retriable": res.retriable,
    }
