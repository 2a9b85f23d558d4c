"""Crash safety: SIGKILL a real `renewals sync` process at many points, then check that clean
runs converge on exactly what uninterrupted syncs produce.

Every test starts from the same demo book (seeded once by `renewals sandbox seed` and copied),
with `sandbox.batch_size: 10` so a first sync makes a few dozen write calls, hence many kill
points. A reference does the same steps with clean syncs in its own data folder. Converged means:
the sandbox holds the same Opportunity, OpportunityLineItem and Task records as the reference
(by external key, every field, parent links compared as the parent's key), each key on exactly
one row (none deleted and created again), the book itself untouched, the ledger knows the same
keys, the same dead letters are open, and one more sync writes nothing.

Kills come two ways: a test-only launcher (tests/e2e/crashing_sync.py N: the process SIGKILLs
itself right after the CRM committed its Nth write call, before the ledger records it), and
SIGKILL from here at seeded random moments of a run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.mapping_file import load_mapping
from tests.conftest import ROOT, write_config

AS_OF = "2026-11-23"
BATCH_SIZE = 10
TIMEOUT_S = 120
KILLED = -signal.SIGKILL
#: The CLI with the sandbox's writes wrapped to SIGKILL the process after the Nth write call.
CRASHING = Path(__file__).with_name("crashing_sync.py")
#: Our objects in the sandbox, by canonical kind: (CRM object, external key field).
OURS = {
    "renewal_opportunity": ("Opportunity", "Renewal_Key__c"),
    "renewal_line": ("OpportunityLineItem", "Renewal_Line_Key__c"),
    "task": ("Task", "Dedupe_Key__c"),
}
#: Account fields the connector writes (kind account_health); the rest of an account is the book's.
HEALTH_FIELDS = ("Health_Score__c", "Health_Grade__c", "Health_Drivers__c", "Health_Trend__c")
#: Renewals the seed closed for ended terms are the book's: the connector never writes a
#: closed stage.
CLOSED_STAGES = ("Closed Won", "Closed Lost")
#: Fields of our records that hold an Opportunity id (compared as the renewal key it points at).
PARENT_REFS = {"OpportunityLineItem": "OpportunityId", "Task": "WhatId"}
#: What a sync with nothing left to do reports; must match the reference's.
SUMMARY = (
    "status",
    "created",
    "updated",
    "unchanged",
    "skipped",
    "failed",
    "writes",
    "skip_reasons",
    "dead_letters",
    "api_calls",
)


def renewals_cli() -> list[str]:
    """The `renewals` console script of this interpreter. connector/cli.py has no
    `if __name__ == "__main__"` guard, so `python -m connector.cli` would exit 0 doing nothing."""
    script = Path(sys.executable).parent / "renewals"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from crm_renewals.connector.cli import main; main()"]


# --------------------------------------------------------------------------- reading the state


@dataclass
class CrmState:
    #: object -> external key -> fields of the live record (Id dropped, parent ids as keys)
    live: dict[str, dict[str, dict]]
    #: object -> external key -> number of rows, deleted ones included
    rows: dict[str, Counter]
    #: object -> number of rows that are deleted / that carry no external key
    deleted: Counter
    keyless: Counter
    #: every other object (the book): object -> id -> (deleted, fields); sync never writes it
    book: dict[str, dict[str, tuple[int, dict]]]
    #: account id -> the health fields the connector wrote onto it
    health: dict[str, dict] = field(default_factory=dict)

    def counts(self) -> Counter:
        """Live records per canonical kind (kinds with none left out)."""
        live = {kind: len(self.live[obj]) for kind, (obj, _) in OURS.items()}
        return +Counter({**live, "account_health": len(self.health)})


def read_crm(path: Path) -> CrmState:
    assert path.exists(), path
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT object, id, ext_key, deleted, fields FROM records ORDER BY object, id"
        ).fetchall()
    finally:
        db.close()
    key_fields = dict(OURS.values())
    opp_keys = {rid: key for obj, rid, key, gone, _ in rows if obj == "Opportunity" and not gone}
    state = CrmState(
        {o: {} for o in key_fields}, {o: Counter() for o in key_fields}, Counter(), Counter(), {}
    )
    for obj, rid, ext_key, deleted, raw in rows:
        fields = json.loads(raw)
        if obj == "Account":
            health = {f: fields.pop(f) for f in HEALTH_FIELDS if f in fields}
            if health:
                state.health[rid] = health
        if obj not in key_fields or fields.get("StageName") in CLOSED_STAGES:
            state.book.setdefault(obj, {})[rid] = (deleted, fields)
            continue
        if ext_key is None:
            state.keyless[obj] += 1
            continue
        state.rows[obj][ext_key] += 1
        if deleted:
            state.deleted[obj] += 1
            continue
        assert fields.get(key_fields[obj]) == ext_key, f"{obj} {rid}: key field is not ext_key"
        fields.pop("Id", None)
        ref = PARENT_REFS.get(obj)
        if ref:
            fields[ref] = opp_keys.get(fields.get(ref), f"<no live Opportunity {fields.get(ref)}>")
        state.live[obj][ext_key] = fields
    return state


def query_state(path: Path, sql: str) -> list[tuple]:
    """Rows from the state database; [] while it does not exist or has no schema yet."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    except sqlite3.Error:
        return []
    try:
        return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()


# --------------------------------------------------------------------------- a data folder


@dataclass
class SyncOutcome:
    returncode: int
    report: dict | None
    stderr: str


class Workspace:
    """One app.yaml and data folder; runs the real CLI against it."""

    def __init__(self, root: Path):
        self.root = root
        self.config = write_config(root, sandbox={"batch_size": BATCH_SIZE})
        self.data = root / "data"
        self.sandbox_db = self.data / "sandbox.db"
        self.state_db = self.data / "state.db"

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "RENEWALS_CONFIG"}

    def command(self, *args: str, kill_after: int | None = None) -> list[str]:
        cli = (
            renewals_cli()
            if kill_after is None
            else [sys.executable, str(CRASHING), str(kill_after)]
        )
        return [*cli, "--config", str(self.config), *args]

    def seed(self) -> None:
        proc = subprocess.run(
            self.command("sandbox", "seed", "--reset", "--as-of", AS_OF),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert proc.returncode == 0, proc.stderr

    def copy_from(self, data: Path) -> None:
        """Start from another workspace's data folder (its processes have all exited)."""
        self.data.mkdir(parents=True, exist_ok=True)
        for name in ("sandbox.db", "state.db"):
            for suffix in ("", "-wal"):
                if (data / f"{name}{suffix}").exists():
                    shutil.copyfile(data / f"{name}{suffix}", self.data / f"{name}{suffix}")

    def sync(self, kill_after: int | None = None, *more: str) -> SyncOutcome:
        proc = subprocess.run(
            self.command("sync", "--as-of", AS_OF, "--json", *more, kill_after=kill_after),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        report = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
        return SyncOutcome(proc.returncode, report, proc.stderr)

    def killed_sync(self, kill_after: int) -> SyncOutcome:
        outcome = self.sync(kill_after)
        assert outcome.returncode == KILLED, (
            f"expected the sandbox to SIGKILL the run after write call {kill_after}, got exit "
            f"{outcome.returncode}: {outcome.report or outcome.stderr}"
        )
        return outcome

    def sync_killed_at(self, delay_s: float) -> int:
        """Start a sync, SIGKILL it `delay_s` after its run began (its row in the runs table;
        start-up before that is mostly imports). Returns -9 if killed, else its exit code."""
        before = self.last_run_id()
        log_path = self.root / "stderr.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                self.command("sync", "--as-of", AS_OF, "--json"),
                cwd=self.root,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while proc.poll() is None and self.last_run_id() == before:
                    assert time.monotonic() < deadline, "the sync did not start a run"
                    time.sleep(0.001)
                time.sleep(delay_s)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                code = proc.wait(timeout=TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert code in (KILLED, 0, 1), log_path.read_text()
        return code

    def last_run_id(self) -> int:
        rows = query_state(self.state_db, "SELECT max(id) FROM runs")
        return (rows[0][0] if rows else None) or 0

    def crm(self) -> CrmState:
        return read_crm(self.sandbox_db)

    def write_calls(self) -> list[tuple[int, str, str, int]]:
        """The sandbox's log of committed write calls: (seq, method, kind, records)."""
        crm = SandboxCrm(self.sandbox_db, load_mapping(ROOT / "mappings" / "sandbox.yaml"))
        try:
            return crm.api_log()
        finally:
            crm.close()

    def edit_book(self, change: Callable[[SandboxCrm], None]) -> None:
        """Change the book in the CRM as its users would: change(SandboxCrm)."""
        crm = SandboxCrm(self.sandbox_db, load_mapping(ROOT / "mappings" / "sandbox.yaml"))
        try:
            change(crm)
        finally:
            crm.close()

    def ledger(self) -> set[tuple[str, str]]:
        return set(query_state(self.state_db, "SELECT kind, key FROM ledger"))

    def ledger_counts(self) -> Counter:
        return +Counter(kind for kind, _ in self.ledger())

    def open_dead_letters(self) -> Counter:
        return Counter(
            query_state(
                self.state_db,
                "SELECT stage, kind, record_id, contract_id, error_code FROM dead_letters "
                "WHERE resolved_at IS NULL",
            )
        )

    def cursors(self) -> list[tuple]:
        return query_state(self.state_db, "SELECT kind FROM cursors")


# --------------------------------------------------------------------------- references


@dataclass
class Reference:
    """What clean syncs leave: `run` is the sync under test, `again` a full one after it (an
    incremental run's counts are of what it planned: the full run's are the whole book's)."""

    data: Path
    run: SyncOutcome
    again: SyncOutcome
    crm: CrmState
    ledger: set[tuple[str, str]]
    dead_letters: Counter
    #: (stage, kind, records) of each write call `run` made, in order (the sandbox's api log)
    batches: list[tuple[str, str, int]]
    #: the CRM after a later contract change and one more clean sync (change scenario only)
    later: CrmState | None = None

    def kill_point(self, name: str) -> int:
        """A write call number of `run`, by what it writes: a stage (`renewal_line.delete`:
        its first call) or first_write / second_write / last_write / last_opportunity_batch /
        mid_line_batch."""
        stages = [stage for stage, _, _ in self.batches]
        if name in stages:
            return stages.index(name) + 1
        lines = [i + 1 for i, (_, kind, _) in enumerate(self.batches) if kind == "renewal_line"]
        opps = [i + 1 for i, (_, k, _) in enumerate(self.batches) if k == "renewal_opportunity"]
        return {
            "first_write": 1,
            "second_write": 2,
            "last_opportunity_batch": opps[-1],
            "mid_line_batch": lines[len(lines) // 2],
            "last_write": len(stages),
        }[name]

    def written_by_first(self, calls: int) -> Counter:
        """Records per kind that the first `calls` write calls of `run` carry."""
        out: Counter = Counter()
        for _, kind, n in self.batches[:calls]:
            out[kind] += n
        return out


def clean_reference(ws: Workspace) -> Reference:
    before = ws.write_calls()
    run = ws.sync()
    calls = [
        (f"{kind}.{method}", kind, n) for _, method, kind, n in ws.write_calls()[len(before) :]
    ]
    crm, ledger, letters = ws.crm(), ws.ledger(), ws.open_dead_letters()
    again = ws.sync(None, "--full")
    assert again.report["writes"] == {} and again.report["created"] == 0, again.report
    assert sum(n for _, _, n in calls) == sum(run.report["writes"].values())
    return Reference(ws.data, run, again, crm, ledger, letters, calls)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """The demo book, seeded once by the real CLI; tests copy this data folder."""
    ws = Workspace(tmp_path_factory.mktemp("seed"))
    ws.seed()
    return ws.data


@pytest.fixture(scope="module")
def reference(tmp_path_factory, seeded) -> Reference:
    """One clean first sync of the demo book."""
    ws = Workspace(tmp_path_factory.mktemp("reference"))
    ws.copy_from(seeded)
    ref = clean_reference(ws)
    # the demo book has broken records on purpose: a clean run is a partial success
    assert ref.run.returncode == 1, ref.run.stderr
    assert ref.run.report["failed"] > 0 and ref.run.report["created"] > 0
    assert all(n > 1 for n in Counter(kind for _, kind, _ in ref.batches).values()), ref.batches
    return ref


@pytest.fixture
def workspace(tmp_path, seeded) -> Workspace:
    ws = Workspace(tmp_path)
    ws.copy_from(seeded)
    return ws


# --------------------------------------------------------------------------- convergence


def _sample(items, n: int = 5) -> str:
    items = sorted(items)
    more = f" ... ({len(items)} in all)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def crm_differences(got: CrmState, want: CrmState) -> list[str]:
    problems = []
    for obj, key_field in OURS.values():
        again = [k for k, n in got.rows[obj].items() if n > 1]
        if again:
            problems.append(f"{obj}: several rows share {key_field}: {_sample(again)}")
        if got.keyless[obj]:
            problems.append(f"{obj}: {got.keyless[obj]} row(s) without {key_field}")
        if got.deleted[obj] != want.deleted[obj]:
            problems.append(f"{obj}: {got.deleted[obj]} deleted row(s), {want.deleted[obj]} wanted")
        have, ref = got.live[obj], want.live[obj]
        if ref.keys() - have.keys():
            problems.append(f"{obj}: missing {_sample(ref.keys() - have.keys())}")
        if have.keys() - ref.keys():
            problems.append(f"{obj}: unexpected {_sample(have.keys() - ref.keys())}")
        for key in sorted(have.keys() & ref.keys()):
            if have[key] != ref[key]:
                diff = {
                    f: (have[key].get(f), ref[key].get(f))
                    for f in sorted(have[key].keys() | ref[key].keys())
                    if have[key].get(f) != ref[key].get(f)
                }
                problems.append(f"{obj} {key}: (got, wanted) {diff}")
    if got.health != want.health:
        problems.append("account health differs")
    if got.book != want.book:
        changed = [
            o for o in got.book.keys() | want.book.keys() if got.book.get(o) != want.book.get(o)
        ]
        problems.append(f"the synced book itself changed: {sorted(changed)}")
    return problems


def assert_same_crm(got: CrmState, want: CrmState, what: str) -> None:
    problems = crm_differences(got, want)
    assert not problems, f"CRM differs from {what}:\n" + "\n".join(problems)


def assert_converges(ws: Workspace, reference: Reference) -> None:
    """A clean sync recovers; then everything matches the reference and a sync is a no-op."""
    final = ws.sync()
    assert final.returncode == reference.run.returncode, final.stderr
    assert_same_crm(ws.crm(), reference.crm, "clean syncs")
    ledger = ws.ledger()
    assert ledger == reference.ledger, (
        f"ledger lacks {_sample(reference.ledger - ledger)}; "
        f"has extra {_sample(ledger - reference.ledger)}"
    )
    assert ws.open_dead_letters() == reference.dead_letters

    again = ws.sync()  # incremental: nothing left to do
    assert (again.report["writes"], again.report["created"]) == ({}, 0), again.report
    again = ws.sync(None, "--full")  # and the whole book says so, as after clean syncs
    assert again.returncode == reference.again.returncode, again.stderr
    assert again.report["writes"] == {}
    assert again.report["created"] == 0
    assert {k: again.report[k] for k in SUMMARY} == {k: reference.again.report[k] for k in SUMMARY}
    assert_same_crm(ws.crm(), reference.crm, "clean syncs")


# --------------------------------------------------------------------------- first sync


@pytest.mark.parametrize(
    "point",
    [
        "first_write",
        "last_opportunity_batch",
        "renewal_line.upsert",  # the first line batch
        "mid_line_batch",
        "task.create_missing",  # the first task batch
        "last_write",
    ],
)
def test_sync_killed_after_crm_write_converges_without_duplicates(workspace, reference, point):
    calls = reference.kill_point(point)
    workspace.killed_sync(calls)

    # the CRM committed exactly `calls` write calls, the ledger all but the last one, and the
    # cursors did not move (they move last)
    assert workspace.crm().counts() == reference.written_by_first(calls)
    assert workspace.ledger_counts() == reference.written_by_first(calls - 1)
    assert workspace.cursors() == []

    assert_converges(workspace, reference)


@pytest.mark.parametrize(
    "kills",
    [
        pytest.param((1, 1, 1), id="first_write_three_times"),
        pytest.param((2, 7, 3, 5), id="mixed_points"),
        pytest.param(("last_write", 1), id="last_write_then_first"),
    ],
)
def test_sync_killed_several_runs_in_a_row_converges(workspace, reference, kills):
    for kill in kills:
        workspace.killed_sync(reference.kill_point(kill) if isinstance(kill, str) else kill)
    assert_converges(workspace, reference)


def test_sync_killed_every_few_writes_makes_progress_until_it_finishes(workspace, reference):
    """A crash loop still converges: every killed run keeps what it got through."""
    every = 4
    progress = []
    for _ in range(len(reference.batches)):
        outcome = workspace.sync(kill_after=every)
        progress.append(sum(workspace.crm().counts().values()) + len(workspace.ledger()))
        if outcome.returncode != KILLED:
            assert outcome.returncode == reference.run.returncode, outcome.stderr
            break
        assert len(progress) == 1 or progress[-1] > progress[-2], f"no progress: {progress}"
    else:
        pytest.fail(f"still killed after {len(progress)} runs: {progress}")
    assert len(progress) > 2, progress
    assert_converges(workspace, reference)


def test_sync_killed_at_random_moments_converges(workspace, reference):
    """SIGKILL from outside at seeded random moments of several runs in a row: during reads,
    planning, CRM writes or state-store commits. Delays are fractions of the reference sync's
    own duration, counted from the run's start, so they span the run on any machine."""
    rnd = random.Random(2026)
    duration = max(reference.run.report["duration_s"], 0.01)
    codes = [workspace.sync_killed_at(rnd.uniform(0.02, 1.5) * duration) for _ in range(8)]
    assert KILLED in codes, codes
    assert_converges(workspace, reference)


# --------------------------------------------------------------------------- contract changes


def _renewed_contracts(crm: SandboxCrm) -> tuple[list[str], dict[str, list[dict]]]:
    """Contracts with a renewal and at least three recurring lines, and those lines (deleted
    ones too, so that the choice stays the same after amend_contracts)."""
    lines = defaultdict(list)
    for line in crm.all("ContractLine", include_deleted=True):
        if line["IsRecurring"]:
            lines[line["ContractId"]].append(line)
    renewed = sorted(
        {
            o["Renewal_Contract__c"]
            for o in crm.all("Opportunity")
            if o["StageName"] not in CLOSED_STAGES
        }
    )
    return [c for c in renewed if len(lines[c]) >= 3], lines


def amend_contracts(crm: SandboxCrm) -> None:
    """A product dropped from one renewed contract, a quantity raised on a second, a product
    added to a third: the next sync updates, creates and deletes renewal lines."""
    (a, b, c, *_), lines = _renewed_contracts(crm)
    crm.remove("ContractLine", lines[a][0]["Id"])
    crm.edit("ContractLine", lines[b][0]["Id"], {"Quantity": lines[b][0]["Quantity"] + 5})
    used = {line["Product2Id"] for line in lines[c]}
    product = next(p["Id"] for p in crm.all("Product2") if p["IsRecurring"] and p["Id"] not in used)
    crm.insert(
        "ContractLine",
        {
            "ContractId": c,
            "Product2Id": product,
            "Quantity": 3,
            "UnitPrice": 250.0,
            "IsRecurring": True,
        },
    )


def amend_again(crm: SandboxCrm) -> None:
    """Later, quantities change again on the three contracts amend_contracts changed."""
    (a, b, c, *_), lines = _renewed_contracts(crm)
    for contract in (a, b, c):
        line = lines[contract][-1]  # amend_contracts removed a's first line, added c's last
        crm.edit("ContractLine", line["Id"], {"Quantity": line["Quantity"] + 2})


@pytest.fixture(scope="module")
def change_reference(tmp_path_factory, reference) -> Reference:
    """Clean syncs after amend_contracts, then after amend_again."""
    ws = Workspace(tmp_path_factory.mktemp("change-reference"))
    ws.copy_from(reference.data)
    ws.edit_book(amend_contracts)
    ref = clean_reference(ws)
    writes = ref.run.report["writes"]
    assert {"renewal_line.create", "renewal_line.update", "renewal_line.delete"} <= writes.keys()
    # the CRM rolls the renewals' amounts up from their lines: no renewal write of ours
    assert "renewal_opportunity.update" not in writes, writes
    ws.edit_book(amend_again)
    later = ws.sync()
    assert later.report["writes"]["renewal_line.update"] == 3, later.report
    ref.later = ws.crm()
    return ref


@pytest.mark.parametrize(
    "point",
    ["renewal_line.upsert", "renewal_line.delete"],
)
def test_sync_killed_while_applying_contract_changes_keeps_following_the_contract(
    tmp_path, change_reference, reference, point
):
    """After the first sync, contracts change; the sync applying that (updates, a create and
    a delete of renewal lines) is killed after one of its write calls. Clean runs must then
    converge as above, and keep following the contracts when they change again."""
    ws = Workspace(tmp_path)
    ws.copy_from(reference.data)
    ws.edit_book(amend_contracts)
    ws.killed_sync(change_reference.kill_point(point))

    assert_converges(ws, change_reference)
    # and the connector still follows the contracts afterwards
    ws.edit_book(amend_again)
    assert ws.sync().returncode == change_reference.run.returncode
    assert_same_crm(ws.crm(), change_reference.later, "clean syncs after a later change")
