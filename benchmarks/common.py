"""Printing helpers shared by the benchmarks, and the verdicts they return."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    benchmark: str
    measure: str
    figure: str
    target: str
    passed: bool

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"{mark}  {self.benchmark:<9} {self.measure}: {self.figure} (target {self.target})"


def heading(title: str) -> None:
    print()
    print(f"== {title} " + "=" * max(3, 76 - len(title)))


def row(label: str, value: object, width: int = 34) -> None:
    print(f"  {label:<{width}} {value}")


def verdict(v: Verdict) -> Verdict:
    print(f"  -> {v.line()}")
    return v


def environment() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}, {cpus} CPU(s) available"
    )


@contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to a single CPU while timing (Linux); says which, or why not."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity on this platform)"
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to CPU {cpu}"
    finally:
        os.sched_setaffinity(0, before)


def flush() -> None:
    sys.stdout.flush()
