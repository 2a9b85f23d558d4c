"""Apply: send planned writes in batches of the adapter's maximum size, record each accepted
write in the ledger, dead-letter each refused one, and carry on with the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connector.domain.book import Book
from connector.domain.mapping import to_crm
from connector.domain.renewals import Plan, RenewalPlan
from connector.domain.writes import (
    LINE_FIELDS,
    RENEWAL_OWNED,
    RENEWAL_SALES,
    Write,
    jsonable,
    same,
)
from connector.ports import OutboundRecord, WriteResult
from connector.services.context import Context

#: (kind, ops, port method) in the order that keeps parents ahead of children.
STAGES = (
    ("renewal_opportunity", ("create", "update"), "upsert"),
    ("renewal_line", ("create", "update"), "upsert"),
    ("renewal_line", ("delete",), "delete"),
    ("task", ("create",), "create_missing"),
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
    sent: int = 0

    def count(self, kind: str, op: str) -> None:
        name = f"{kind}.{op}"
        self.writes[name] = self.writes.get(name, 0) + 1


def reconcile_ledger(
    ctx: Context, plans: list[Plan], book: Book, ledger: Ledger, run_id: int
) -> None:
    """Bring the ledger up to what the CRM holds where a killed run left it behind: a run can die
    between the CRM accepting a write and the ledger recording it. A record under our key that
    the ledger lacks is adopted; a field whose CRM value is already what we want is taken as
    written; a line we deleted is dropped. Otherwise it would later look like a rep's edit."""
    rows = []
    for plan in plans:
        if not isinstance(plan, RenewalPlan) or plan.current is None:
            continue
        key = plan.renewal.key
        rows += _catch_up(
            "renewal_opportunity",
            key,
            plan.contract_id,
            plan.current,
            plan.renewal,
            RENEWAL_OWNED + RENEWAL_SALES,
            ledger,
        )
        wanted = {ln.key: ln for ln in plan.lines}
        for line in book.renewal_lines_of(key):
            if line.key:
                rows += _catch_up(
                    "renewal_line",
                    line.key,
                    plan.contract_id,
                    line,
                    wanted.get(line.key),
                    LINE_FIELDS,
                    ledger,
                )
        for gone in book.deleted_lines_of(key) - wanted.keys():
            if ledger.written("renewal_line", gone) is not None:
                rows.append(_row("renewal_line", gone, plan.contract_id, None, None))
    _record(ctx, ledger, rows, run_id)


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


def apply_writes(
    ctx: Context,
    plans: list[Plan],
    ledger: Ledger,
    run_id: int,
    progress: Callable[[str, int], None] | None = None,
) -> ApplyOutcome:
    outcome = ApplyOutcome()
    failed_parents: set[str] = set()
    writes = [w for p in plans if isinstance(p, RenewalPlan) for w in p.writes]
    for kind, ops, method in STAGES:
        todo = []
        for w in writes:
            if w.kind != kind or w.op not in ops:
                continue
            if w.parent_key in failed_parents:
                outcome.failed_contracts.add(w.contract_id)
                continue
            todo.append(w)
        for batch in _batches(todo, ctx.crm.max_batch):
            results = _send(ctx, kind, method, batch)
            rows, letters = [], []
            for w, res in zip(batch, results, strict=True):
                outcome.sent += 1
                if res.ok:
                    outcome.count(kind, w.op if w.op != "create" or res.created else "update")
                    base = ledger.written(kind, w.key) or {}
                    fields = (
                        None
                        if w.op == "delete"
                        else {**base, **{k: jsonable(v) for k, v in w.fields.items()}}
                    )
                    rows.append(_row(kind, w.key, w.contract_id, res.crm_id, fields))
                else:
                    outcome.failed_contracts.add(w.contract_id)
                    if kind == "renewal_opportunity":
                        failed_parents.add(w.key)
                    letters.append(_letter(w, res))
            _record(ctx, ledger, rows, run_id)
            ctx.store.add_dead_letters(letters, run_id)
            ctx.store.resolve_dead_letters(kind, [r["key"] for r in rows])
            if progress:
                progress(kind, len(batch))
    return outcome


def _send(ctx: Context, kind: str, method: str, batch: list[Write]) -> list[WriteResult]:
    call = getattr(ctx.crm, method)
    if method == "delete":
        payload: list = [w.key for w in batch]
    else:
        payload = [
            OutboundRecord(w.key, to_crm(ctx.mapping, kind, w.fields), w.parent_key) for w in batch
        ]
    return ctx.retrying()(call, kind, payload)


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


def _record(ctx: Context, ledger: Ledger, rows: list[dict[str, Any]], run_id: int) -> None:
    ctx.store.record_writes(rows, run_id)
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
    }


def _batches(items: list[Write], size: int) -> Iterator[list[Write]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
