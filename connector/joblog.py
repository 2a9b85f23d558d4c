"""Scheduled job runs in the state store: one row per (job, scheduled slot). The row is the
claim: two schedulers started on one database by mistake both try to insert it, and only the
one that succeeds runs the slot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from connector.state import StateStore, _aware, job_runs, now


def _utc(moment: datetime) -> datetime:
    # stored without its zone by SQLite: one zone (UTC) keeps equal slots equal
    return moment.astimezone(UTC).replace(microsecond=0)


def claim(store: StateStore, job: str, slot: datetime, runner: str) -> bool:
    """Record that `runner` runs `job` for `slot`; False if another runner already did."""
    try:
        with store.engine.begin() as conn:
            conn.execute(
                insert(job_runs).values(
                    job=job,
                    scheduled_at=_utc(slot),
                    runner=runner,
                    started_at=now(),
                    status="running",
                )
            )
    except IntegrityError:
        return False
    return True


def finish(
    store: StateStore,
    job: str,
    slot: datetime,
    status: str,
    detail: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(job_runs)
            .where(job_runs.c.job == job, job_runs.c.scheduled_at == _utc(slot))
            .values(finished_at=now(), status=status, detail=detail, error=error)
        )


def list_job_runs(store: StateStore, job: str | None = None, limit: int = 50) -> list[dict]:
    query = select(job_runs).order_by(job_runs.c.scheduled_at.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for r in rows:
        for k in ("scheduled_at", "started_at", "finished_at"):
            r[k] = _aware(r[k])
    return rows
