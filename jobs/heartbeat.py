"""The scheduler's heartbeat: a file in data_dir touched by every scheduler's sweep for lapsed
claims (at start and every schedule.lease_seconds), once the state database answered it.
`renewals scheduler --check` reads its age: a container's health check for the scheduler."""

from __future__ import annotations

import time
from pathlib import Path

from crm_renewals.connector.config import AppConfig

HEARTBEAT = "scheduler.heartbeat"
#: beats missed before the scheduler counts as not beating (`--check`'s default)
MISSED_BEATS = 3


def heartbeat_path(config: AppConfig) -> Path:
    return config.data_path / HEARTBEAT


def beat(config: AppConfig) -> None:
    path = heartbeat_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def check(config: AppConfig, max_age: float | None = None) -> tuple[bool, str]:
    """Whether a scheduler beat within `max_age` seconds (default: three leases), and a line
    saying so."""
    limit = max_age if max_age is not None else MISSED_BEATS * config.schedule.lease_seconds
    path = heartbeat_path(config)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"no scheduler has beaten yet ({path} does not exist)"
    if age > limit:
        return False, f"no scheduler beat for {age:.0f} s (at most {limit:.0f} s; {path})"
    return True, f"scheduler beat {age:.0f} s ago (at most {limit:.0f} s)"
