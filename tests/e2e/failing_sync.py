"""Test-only launcher: `python tests/e2e/failing_sync.py <renewals args>` runs the real CLI
(connector.cli:main) with the sandbox's write calls refused as an org refuses a session that
expired (401 INVALID_SESSION_ID: a fatal error), so the run ends `failed`. The shipped adapter
carries no such switch."""

from __future__ import annotations

import sys

from crm_renewals.connector.adapters.sandbox.writes import SandboxWrites
from crm_renewals.connector.cli import main
from crm_renewals.connector.errors import FatalCrmError


def refuse(*_args, **_kwargs):
    raise FatalCrmError(
        "Session expired or invalid", system="sandbox", status=401, code="INVALID_SESSION_ID"
    )


if __name__ == "__main__":
    for name in ("upsert", "create_missing", "delete"):
        setattr(SandboxWrites, name, refuse)
    main(args=sys.argv[1:], prog_name="renewals")
