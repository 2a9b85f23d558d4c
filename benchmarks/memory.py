"""Peak memory: build a synthetic Book of N contracts and plan all of them, keeping what `sync`
keeps (services.apply.collect: the writes, the ledger catch-up, one outcome per contract), in
a fresh subprocess so nothing else inflates the figure.

The figure is the process's peak resident set size, resource.getrusage(RUSAGE_SELF).ru_maxrss,
read in the child after each phase: it includes the interpreter and the imported libraries.
Linux carries ru_maxrss over fork + exec, so a child started straight from this process would
begin with this process's own peak (after the planning benchmark, ~360 MB); the child is started
through /bin/sh, which forks it from its own small image. /proc/self/status VmHWM (not carried
over) is printed as a cross-check where available.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Verdict, heading, row, verdict

TARGET_MB = 300
TIMEOUT_S = 600
ROOT = Path(__file__).resolve().parent.parent  # where `-m benchmarks.memory` resolves


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def vm_hwm_mb() -> float | None:
    """Peak RSS of this process image from /proc (Linux), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        return None
    return None


def child(contracts: int, seed: int) -> dict:
    """The measured work; runs in the subprocess and returns its figures."""
    from benchmarks.synthetic import AS_OF, EmptyLedger, build_book
    from crm_renewals.connector.domain.planning.planner import Planner
    from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy
    from crm_renewals.connector.services.apply import collect
    from crm_renewals.connector.services.sync_report import needs_attention

    out = {"imports_mb": peak_rss_mb()}
    t0 = time.perf_counter()
    book = build_book(contracts, seed=seed)
    out["build_s"] = time.perf_counter() - t0
    out["book_mb"] = peak_rss_mb()
    out["records"] = {
        "accounts": len(book.accounts),
        "contacts": len(book.contacts),
        "contracts": len(book.contracts),
        "lines": len(book.contract_lines),
    }
    t0 = time.perf_counter()
    ledger = EmptyLedger()
    plans = Planner(RenewalPolicy(), Playbook(), AS_OF).plan_book(book, ledger)
    kept = collect(plans, book, ledger, None, needs_attention)
    out["plan_s"] = time.perf_counter() - t0
    out["peak_mb"] = peak_rss_mb()
    out["plans"] = {
        "renewals": len(kept.writing) + kept.settled["unchanged"],
        "writes": sum(kept.planned.values()),
    }
    out["vm_hwm_mb"] = vm_hwm_mb()
    return out


def run(contracts: int = 100_000, seed: int | None = None) -> list[Verdict]:
    heading(f"peak memory: build + plan {contracts:,} contracts (fresh subprocess)")
    res = run_child("benchmarks.memory", contracts, seed)
    if res is None:
        return [verdict(Verdict("memory", "peak RSS", "child failed", f"< {TARGET_MB} MB", False))]
    rec = res["records"]
    plans = res["plans"]
    row("measure", "peak RSS, getrusage(RUSAGE_SELF).ru_maxrss in the child (MiB)")
    row(
        "book",
        f"{rec['accounts']:,} accounts, {rec['contacts']:,} contacts, "
        f"{rec['contracts']:,} contracts, {rec['lines']:,} lines",
    )
    row(
        "planned (streamed to the CRM)",
        f"{plans['writes']:,} writes, {plans['renewals']:,} renewals",
    )
    row("peak after imports", f"{res['imports_mb']:.0f} MB")
    row(
        "peak after building the book",
        f"{res['book_mb']:.0f} MB  (+{res['book_mb'] - res['imports_mb']:.0f}; "
        f"{res['build_s']:.1f} s)",
    )
    row(
        "peak after planning",
        f"{res['peak_mb']:.0f} MB  (+{res['peak_mb'] - res['book_mb']:.0f}; {res['plan_s']:.1f} s)",
    )
    if res["vm_hwm_mb"] is not None:
        row("cross-check: /proc VmHWM", f"{res['vm_hwm_mb']:.0f} MB")
    return [
        verdict(
            Verdict(
                "memory",
                f"peak RSS, {contracts:,} contracts",
                f"{res['peak_mb']:.0f} MB",
                f"< {TARGET_MB} MB",
                res["peak_mb"] < TARGET_MB,
            )
        )
    ]


def run_child(module: str, contracts: int, seed: int | None) -> dict | None:
    """Run `python -m module` in a fresh process (through /bin/sh: a fresh ru_maxrss, see the
    module docstring); its last stdout line is its JSON figures. None if it failed."""
    cmd = [sys.executable, "-m", module, "--contracts", str(contracts)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if Path("/bin/sh").exists():
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=ROOT
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(child: Callable[[int, int], dict], description: str) -> None:
    """The child's command line: --contracts, --seed; prints child()'s figures as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    from benchmarks.synthetic import SEED

    print(json.dumps(child(args.contracts, SEED if args.seed is None else args.seed)))


if __name__ == "__main__":
    child_main(child, "memory benchmark child (prints one JSON line)")
