"""The 18-month customer journey on the sandbox demo book, through the CLI: stepping `--as-of`
30 days at a time, every account with a contract in force has exactly one journey task for
its current segment, none twice, none while it has lapsed."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import yaml

from tests.conftest import ROOT, cli_for, write_config

START = date(2026, 11, 23)


def crm_rows(db: Path, obj: str) -> list[dict]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT fields FROM records WHERE object = ? AND deleted = 0", (obj,)
        ).fetchall()
    return [json.loads(f) for (f,) in rows]


def in_force(contracts: list[dict], account: str, day: date) -> bool:
    return any(
        c["AccountId"] == account
        and c.get("StartDate")
        and c["Status"] not in ("Draft", "In Approval Process", "Cancelled")
        and date.fromisoformat(c["StartDate"][:10]) <= day <= date.fromisoformat(c["EndDate"][:10])
        for c in contracts
    )


def journey_keys(db: Path) -> list[str]:
    return [t["Dedupe_Key__c"] for t in crm_rows(db, "Task") if ":journey:" in t["Dedupe_Key__c"]]


def test_eighteen_months_one_journey_task_per_account_and_segment(tmp_path):
    # the covering rule is off here so every segment counts (tests/unit covers it)
    journey = yaml.safe_load((ROOT / "app.yaml").read_text())["playbook"]["journey"]
    config = write_config(
        tmp_path, playbook={"journey": {**journey, "skip_when_step_covers": False}}
    )
    cli = cli_for(config)
    seeded = cli(
        "sandbox", "seed", "--as-of", START.isoformat(), "--accounts", "12", "--contracts", "24"
    )
    assert seeded.exit_code == 0, seeded.output
    db = tmp_path / "data" / "sandbox.db"
    contracts = crm_rows(db, "Contract")
    accounts = {c["AccountId"] for c in contracts}
    per_account: Counter[str] = Counter()
    seen: set[str] = set()
    for step in range(18):
        day = START + timedelta(days=30 * step)
        cli("sync", "--as-of", day.isoformat())
        keys = journey_keys(db)
        assert len(keys) == len(set(keys)), "a journey task written twice"
        for key in set(keys) - seen:  # written by this run: a contract in force then
            account, _, _, start = key.split(":")
            assert in_force(contracts, account, max(day, date.fromisoformat(start))), key
        seen = set(keys)
        for account in accounts:
            current = [
                k
                for k in keys
                if k.startswith(f"{account}:")
                and date.fromisoformat(k.split(":")[3])
                <= day
                < date.fromisoformat(k.split(":")[3]) + timedelta(days=30)
            ]
            # lapsed: no new task (above), the one written while in force may stand
            expected = 1 if in_force(contracts, account, day) else len(current)
            assert len(current) == expected <= 1, (day, account, current)
            per_account[account] += len(current)
    # an account in force all 18 months got a task in each of 18 segments
    always = [
        a
        for a in accounts
        if all(in_force(contracts, a, START + timedelta(30 * i)) for i in range(18))
    ]
    assert always and all(per_account[a] == 18 for a in always)
    # segments follow each other: 1, 2, ... 18, 1 (the journey repeats), never two at once
    for a in always:
        numbers = sorted(
            (k.split(":")[3], int(k.split(":")[2])) for k in seen if k.startswith(f"{a}:")
        )
        steps = {(b - a_) % 18 for (_, a_), (_, b) in zip(numbers, numbers[1:], strict=False)}
        assert steps == {1}, numbers
    # a second run on the last day writes nothing
    again = json.loads(cli("sync", "--as-of", day.isoformat(), "--json").output)
    assert again["writes"] == {}


def test_dry_run_shows_journey_tasks_and_explain_names_the_segment(tmp_path):
    cli = cli_for(write_config(tmp_path))
    assert (
        cli(
            "sandbox", "seed", "--as-of", START.isoformat(), "--accounts", "12", "--contracts", "24"
        ).exit_code
        == 0
    )
    dry = cli("sync", "--dry-run", "--as-of", START.isoformat())
    assert ":journey:" in dry.output and "+ create task" in dry.output
    assert cli("sync", "--as-of", START.isoformat()).exit_code in (0, 1)
    shown = 0
    for row in crm_rows(tmp_path / "data" / "sandbox.db", "Contract"):
        args = ("explain", row["Id"], "--as-of", START.isoformat())
        j = json.loads(cli(*args, "--json").output)["journey"]
        text = cli(*args).output
        assert j["segments"] == 18
        nxt = j["next_touchpoint"]
        if j["segment"] is None:
            assert "journey: no contract in force" in text
            continue
        assert f"journey: segment {j['segment']} of 18 ({j['theme']})" in text
        assert set(nxt) == {"segment", "theme", "due"} and date.fromisoformat(nxt["due"]) > START
        assert (
            f"next touchpoint: segment {nxt['segment']} ({nxt['theme']}) due {nxt['due']}" in text
        )
        shown += 1
    assert shown
