"""Rich rendering for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_renewals.connector.domain.models import to_json
from crm_renewals.connector.domain.planning.values import ContractPlan, RenewalPlan, Skip
from crm_renewals.connector.services.explanation import Explanation, Party
from crm_renewals.connector.services.sync_report import SyncReport, needs_attention
from crm_renewals.connector.state import DeadLetter, Run
from crm_renewals.connector.state.versions import short


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """Yields a callback(kind, n) that advances one line per record kind."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.completed}[/] records"),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def advance(kind: str, n: int) -> None:
            if kind not in tasks:
                tasks[kind] = progress.add_task(kind.replace("_", " "), total=None)
            progress.advance(tasks[kind], n)

        yield advance


def print_sync(out: Console, r: SyncReport, attention: list[DeadLetter] | None = None) -> None:
    title = "Dry run (nothing written)" if r.dry_run else f"Run {r.run_id} ({r.status})"
    t = Table(title=f"{title} as of {r.as_of}", show_header=False)
    for label, value in (
        ("planned", _scope(r.scope)),
        ("renewals created", r.created),
        ("renewals updated", r.updated),
        ("unchanged", r.unchanged),
        ("skipped", r.skipped),
        ("failed", r.failed),
        ("tasks created", r.tasks_created),
        ("open dead letters", r.dead_letters),
        ("API calls", r.api_calls),
        ("duration", f"{r.duration_s:.2f} s"),
    ):
        t.add_row(label, str(value))
    out.print(t)
    if r.writes:
        w = Table("write", "count", title="Writes" + (" planned" if r.dry_run else " sent"))
        for name, count in r.writes.items():
            w.add_row(name + _NOT_SENT.get(name.rsplit(".", 1)[-1], ""), str(count))
        out.print(w)
    if r.skip_reasons:
        s = Table("reason", "contracts", title="Skipped, by reason")
        for reason, count in r.skip_reasons.items():
            s.add_row(reason, str(count))
        out.print(s)
    print_attention(out, r, attention or [])
    print_map_check(out, r)


def _scope(scope: dict[str, int] | None) -> str:
    if scope is None:
        return "the whole book"
    why = ", ".join(f"{k} {v}" for k, v in scope.items() if k != "accounts" and v)
    return f"{scope['accounts']} accounts" + (f" ({why})" if why else "")


#: writes counted but not sent: refused for good earlier (held), or discarded by an admin
_NOT_SENT = {
    "held": " (not sent: see renewals deadletters list)",
    "discarded": " (not sent: discarded, see renewals deadletters list --all)",
}


def print_attention(out: Console, r: SyncReport, letters: list[DeadLetter]) -> None:
    """Contracts an admin must act on: those counted in `failed` (the same number), then
    those skipped for a reason to act on (no active owner, a deleted renewal, ...)."""
    plans = {p.contract_id: p for p in r.plans if needs_attention(p)}
    refused: dict[str, list[str]] = {}
    for d in letters:
        if d.stage == "write" and d.contract_id:
            refused.setdefault(d.contract_id, []).append(f"{d.error_code}: {d.message}")
    rows = []
    for cid in r.failed_ids:
        plan = plans.pop(cid, None)
        why = (
            f"{plan.renewal.reason}: {plan.renewal.detail}"
            if plan is not None
            else "; ".join(refused.get(cid, ["writes refused: see renewals deadletters list"]))
        )
        rows.append((cid, "failed", why))
    rows += [(c, "skipped", f"{p.renewal.reason}: {p.renewal.detail}") for c, p in plans.items()]
    if not rows:
        return
    skipped = len(rows) - len(r.failed_ids)
    a = Table(
        "contract",
        "counted as",
        "problem",
        title=f"Needs attention: {len(r.failed_ids)} failed, {skipped} skipped",
        title_style="bold red",
    )
    for row in rows:
        a.add_row(*row)
    out.print(a)


def print_map_check(out: Console, r: SyncReport) -> None:
    """What the mapping made of the records read: failures, the skip reasons that moved
    since the last completed sync, and the guard's verdict."""
    if r.map_failures:
        verb = "would fail" if r.dry_run else "failed"
        t = Table(
            "kind.field",
            "reason",
            "records",
            "sample ids",
            title=f"Records that {verb} to map ({sum(r.records_read.values())} read)",
        )
        for f in r.map_failures:
            t.add_row(
                f"{f['kind']}.{f['field']}", f["reason"], str(f["count"]), " ".join(f["sample_ids"])
            )
        out.print(t)
    if r.skip_reasons_change:
        c = Table("reason", "last sync", "now", "change", title="Skip reasons since the last sync")
        for reason, n in r.skip_reasons_change.items():
            c.add_row(reason, str(n["before"]), str(n["after"]), f"{n['after'] - n['before']:+d}")
        out.print(c)
    if r.guard and r.status != "stopped":
        head = "A real sync would stop before writing: " if r.dry_run else "Forced past: "
        out.print(f"[bold red]{head}[/]", end="")
        out.print(r.guard, markup=False, highlight=False, soft_wrap=True)


def print_plan_diff(out: Console, plans: list[ContractPlan]) -> None:
    shown = 0
    for plan in plans:
        writes, renewal = plan.writes, plan.renewal
        if not writes:
            continue
        shown += 1
        if isinstance(renewal, Skip):  # renewal not due yet; playbook tasks are
            out.print(
                f"[bold]contract {plan.contract_id}[/] (renewal {renewal.reason}: tasks only)"
            )
        else:
            out.print(f"[bold]contract {plan.contract_id}[/] ({renewal.opportunity.name})")
        current = renewal.current if isinstance(renewal, RenewalPlan) else None
        for w in writes:
            sign = {"create": "[green]+", "update": "[yellow]~", "delete": "[red]-"}[w.op]
            out.print(f"  {sign} {w.op} {w.kind} {w.key}[/]", highlight=False)
            for name, value in w.fields.items():
                before = (
                    getattr(current, name, None)
                    if w.kind == "renewal_opportunity" and current is not None
                    else None
                )
                arrow = f"{before} -> " if before is not None else ""
                out.print(f"      {name}: {arrow}{value}", markup=False, highlight=False)
    if not shown:
        out.print("No writes planned.")


def print_explanation(out: Console, e: Explanation, as_json: bool) -> None:
    plan = e.plan.renewal if e.plan is not None else None
    tasks = e.plan.tasks.tasks if e.plan is not None else ()
    writes = e.plan.writes if e.plan is not None else ()
    if as_json:
        data: dict[str, Any] = {
            "contract_id": e.contract_id,
            "known": plan is not None,
            "dead_letters": [_jsonable(d.as_dict()) for d in e.dead_letters],
            **_party_json("account", e.account),
            **_party_json("owner", e.owner),
            "journey": e.journey,
        }
        if isinstance(plan, Skip):
            data.update(decision="skip", reason=plan.reason, detail=plan.detail)
            if tasks:
                data["tasks"] = [to_json(t) for t in tasks]
        elif isinstance(plan, RenewalPlan):
            data.update(
                decision=plan.action,
                renewal=to_json(plan.opportunity),
                locked=sorted(plan.locked),
                notes=list(plan.notes),
                writes=[{"kind": w.kind, "op": w.op, "key": w.key} for w in writes],
                tasks=[to_json(t) for t in tasks],
            )
        out.print_json(json.dumps(data))
        return
    if plan is None:
        out.print(
            f"Contract {e.contract_id} is not in the synced book: run [bold]renewals sync"
            "[/] first, or check the id."
        )
        return
    if isinstance(plan, Skip):
        out.print(f"Contract {e.contract_id}: [bold]no renewal[/] ({plan.reason})")
        out.print(f"  account {_named(e.account)} | owner {_named(e.owner)}", markup=False)
        out.print(f"  {plan.detail}", markup=False)
        for t in tasks:
            out.print(f"  task {t.dedupe_key} due {t.due_date}: {t.subject}", markup=False)
    else:
        r = plan.opportunity
        verb = "will be created" if plan.action == "create" else "exists"
        out.print(f"Contract {e.contract_id}: renewal [bold]{r.key}[/] {verb}")
        out.print(f"  account {_named(e.account)}", markup=False)
        out.print(
            f"  {r.name} | stage {r.stage} | closes {r.close_date} | owner {_named(e.owner)} | "
            f"amount {r.amount}",
            markup=False,
        )
        for line in plan.lines:
            kind = "" if line.kind == "renewal" else f" [{line.kind}: {line.description}]"
            out.print(
                f"  line {line.product_code} x {line.quantity} @ {line.unit_price}{kind}",
                markup=False,
            )
        if r.health_score is not None:
            out.print(
                f"  health {r.health_score} ({r.health_grade}): {r.health_drivers}", markup=False
            )
        for note in plan.notes:
            out.print(f"  note: {note}", markup=False)
        if plan.locked:
            out.print(f"  rep-owned fields (not written): {', '.join(sorted(plan.locked))}")
        out.print(f"  pending writes: {len(writes)}; tasks planned: {len(tasks)}")
    if e.journey is not None:
        out.print(f"  {_journey_line(e.journey)}", markup=False)
    for d in e.dead_letters:
        out.print("  [red]dead letter[/] ", end="")
        note = f" (discarded {_discard_note(d)})" if d.discarded else ""
        out.print(f"{d.kind} {d.record_id}: {d.message}{note}", markup=False, highlight=False)


def _journey_line(j: dict) -> str:
    """`journey: segment 5 of 18 (qbr); next touchpoint: segment 6 (survey) due 2027-05-03`"""
    where = f"segment {j['segment']} of {j['segments']} ({j['theme']})"
    if j["segment"] is None:
        where = "no contract in force"
    nxt = j["next_touchpoint"]
    after = f"segment {nxt['segment']} ({nxt['theme']}) due {nxt['due']}" if nxt else "none"
    return f"journey: {where}; next touchpoint: {after}"


def _party_json(role: str, party: Party | None) -> dict[str, str | None]:
    return {f"{role}_id": party and party.id, f"{role}_name": party and party.name}


def _named(party: Party | None) -> str:
    """`id (name)`, as explain shows accounts and owners."""
    if party is None:
        return "-"
    return f"{party.id} ({party.name})" if party.name else f"{party.id} (not in the synced book)"


def print_runs(out: Console, rows: list[Run], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([run_json(r) for r in rows]))
        return
    t = Table(
        "run",
        "started",
        "mode",
        "status",
        "created",
        "updated",
        "unchanged",
        "skipped",
        "failed",
        "API calls",
        "seconds",
        "mapping",
        title="Runs",
    )
    for r in rows:
        c = r.counts or {}
        t.add_row(
            str(r.id),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.mode,
            r.status,
            *(str(c.get(k, "")) for k in ("created", "updated", "unchanged", "skipped", "failed")),
            str(r.api_calls or 0),
            f"{r.duration_s or 0:.2f}",
            short(r.mapping_hash) or "",
        )
    out.print(t)
    print_run_errors(out, rows)


def print_run_errors(out: Console, rows: list[Run]) -> None:
    """Why runs stopped or failed (a mapping guard's verdict, a CRM error), under the table."""
    for r in rows:
        if r.error and r.status in ("stopped", "failed"):
            said = "" if r.error.startswith(r.status) else f" {r.status}"  # "stopped before..."
            out.print(f"run {r.id}{said}: {r.error}", markup=False, highlight=False, soft_wrap=True)


def run_json(r: Run) -> dict[str, Any]:
    """A run's columns, its versions short (as `mappings history` names them)."""
    data = _jsonable(r.as_dict())
    data["mapping_version"] = short(data.pop("mapping_hash"))
    data["config_version"] = short(data.pop("config_hash"))
    return data


def print_dead_letters(out: Console, rows: list[DeadLetter], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([_jsonable(r.as_dict()) for r in rows]))
        return
    if not rows:
        out.print("No open dead letters.")
        return
    t = Table("id", "stage", "contract", "error", "tries", title="Dead letters")
    discards = any(r.discarded for r in rows)
    if discards:
        t.add_column("discarded")
    for r in rows:
        code = f"{r.error_code}: " if r.error_code else ""
        row = [str(r.id), r.stage, r.contract_id or "", code + r.message, str(r.attempts)]
        if discards:
            row.append(_discard_note(r))
        t.add_row(*row)
    out.print(t)


def _discard_note(r: DeadLetter) -> str:
    """`by admin@example.com: the reason` for a discarded letter."""
    if not r.discarded:
        return ""
    how = r.resolution or {}
    return f"by {how.get('by')}: {how.get('reason')}"


def print_seed(out: Console, s, path) -> None:
    out.print(
        f"Seeded {path}: {s.users} users, {s.accounts} accounts, {s.contacts} contacts, "
        f"{s.contracts} contracts, {s.lines} contract lines, "
        + ", ".join(f"{n} {stage.lower()} renewals" for stage, n in s.closed_renewals.items())
        + f"; {len(s.broken)} records broken on purpose."
    )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


def print_checks(console: Console, checks: list) -> None:
    print_check_lines(console, checks)
    bad = sum(not c.ok for c in checks)
    console.print(
        f"\n{len(checks) - bad} ok, {bad} to fix" if bad else f"\nAll {len(checks)} checks passed."
    )


def print_check_lines(console: Console, checks: list) -> None:
    """Each check a line (`ok` or `FIX`), what to do under a failing one."""
    for c in checks:
        mark = "[green]ok[/]  " if c.ok else "[bold red]FIX[/] "
        console.print(f"{mark} {c.name}", end="")
        console.print(f": {c.detail}" if c.detail else "", markup=False, highlight=False)
        if not c.ok and c.fix:
            console.print(f"      -> {c.fix}", markup=False, highlight=False, soft_wrap=True)
