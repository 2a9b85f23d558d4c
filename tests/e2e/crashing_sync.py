"""Test-only launcher for the crash suite: `python tests/e2e/crashing_sync.py N <renewals args>`
runs the real CLI (connector.cli:main) with the sandbox's write path wrapped, so the process
SIGKILLs itself (like `kill -9`) right after the CRM committed its Nth write call, before the
ledger records it. The shipped adapter carries no kill switch."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from crm_renewals.connector.adapters.sandbox.writes import SandboxWrites
from crm_renewals.connector.cli import main


def die_after_writes(count: int) -> None:
    """Wrap every write call of the sandbox: after the `count`th one returns (committed), die."""
    left = [count]

    def counted(method: Callable) -> Callable:
        def write(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            left[0] -= 1
            if left[0] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return write

    for name in ("upsert", "create_missing", "delete"):
        setattr(SandboxWrites, name, counted(getattr(SandboxWrites, name)))


if __name__ == "__main__":
    die_after_writes(int(sys.argv[1]))
    main(args=sys.argv[2:], prog_name="renewals")
