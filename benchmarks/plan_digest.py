"""A digest of everything planning decides for a synthetic book: each contract's renewal (or
Skip and its reason), notes, locks, lines, tasks and every write with the values it sends,
plus what `collect` keeps. Two code versions that print the same digest plan identically.

`python -m benchmarks.plan_digest --contracts 100000` prints the digests of full planning
(app.yaml: health, upsell, playbook, journey) and of renewals-only planning (defaults).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from benchmarks.memory import ROOT


def canonical(value: Any) -> str:
    """A stable text of a plan value: dataclasses field by field, containers in order."""
    if is_dataclass(value) and not isinstance(value, type):
        inner = ",".join(f"{f.name}={canonical(getattr(value, f.name))}" for f in fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return f"{type(value).__name__}{canonical(tuple(value))}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{canonical(k)}:{canonical(v)}" for k, v in value.items()) + "}"
    return f"{type(value).__name__}:{value!r}"


def digest(plans: Iterable, kept_writes: Iterable) -> str:
    """sha256 over the plans (with every write's sent fields) and the writes `collect` kept."""
    h = hashlib.sha256()
    for plan in plans:
        h.update(canonical(plan).encode())
        for w in plan.writes:
            h.update(canonical((w.kind, w.op, w.key, w.parent_key, w.fields)).encode())
    for name, count in kept_writes:
        h.update(f"{name}={count}".encode())
    return h.hexdigest()


def full_digest(contracts: int, seed: int) -> str:
    """Full planning as benchmarks.full_planning runs it (app.yaml, synthetic signals)."""
    from benchmarks.full_planning import synthetic_signals
    from benchmarks.synthetic import AS_OF, EmptyLedger, build_book
    from crm_renewals.connector.config import load_config
    from crm_renewals.connector.services.apply import collect
    from crm_renewals.connector.services.insight import planner_for

    cfg = load_config(ROOT / "app.yaml")
    book = build_book(contracts, seed=seed)
    signals = synthetic_signals(sorted(book.accounts), AS_OF, seed)
    planner = planner_for(cfg, book, signals, {}, AS_OF)
    ledger = EmptyLedger()
    kept = collect(planner.plan_book(book, ledger), book, ledger, None, lambda _: True)
    health = canonical(sorted(planner.health.items()))
    body = digest(kept.kept, sorted(kept.planned.items()))
    return hashlib.sha256(f"{health}|{body}".encode()).hexdigest()


def renewals_digest(contracts: int, seed: int) -> str:
    """Renewals-only planning as benchmarks.memory runs it (default policy and playbook)."""
    from benchmarks.synthetic import AS_OF, EmptyLedger, build_book
    from crm_renewals.connector.domain.planning.planner import Planner
    from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy
    from crm_renewals.connector.services.apply import collect

    book = build_book(contracts, seed=seed)
    ledger = EmptyLedger()
    plans = Planner(RenewalPolicy(), Playbook(), AS_OF).plan_book(book, ledger)
    kept = collect(plans, book, ledger, None, lambda _: True)
    return digest(kept.kept, sorted(kept.planned.items()))


def main() -> None:
    from benchmarks.synthetic import SEED

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print("full", full_digest(args.contracts, args.seed))
    print("renewals", renewals_digest(args.contracts, args.seed))


if __name__ == "__main__":
    main()
