"""Scheduled job runs in the state store: one row per (job, scheduled slot). The row is the
claim: two schedulers started on one database by mistake both try to insert it, and only the
one that succeeds runs the slot. A claim is a lease: the runner renews it while the job runs,
and once it lapses (the runner died) another scheduler may take the slot over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from connector.state import StateStore, _aware, job_runs, now


def _utc(moment: datetime) -> datetime:
    # stored without its zone by SQLite: one zone (UTC) keeps equal slots equal
    return moment.astimezone(UTC).replace(microsecond=0)


def _slot(job: str, slot: datetime):
    return and_(job_runs.c.job == job, job_runs.c.scheduled_at == _utc(slot))


def _lapsed(at: datetime):
    return and_(
        job_runs.c.status == "running",
        or_(job_runs.c.lease_until.is_(None), job_runs.c.lease_until < at),
    )


def claim(
    store: StateStore,
    job: str,
    slot: datetime,
    runner: str,
    lease_seconds: float = 60,
    *,
    at: datetime | None = None,
) -> bool:
    """Record that `runner` runs `job` for `slot`, for `lease_seconds` unless renewed; False
    if another runner holds it or finished it. A lapsed claim is taken over (one taker wins:
    the update is conditional)."""
    at = _utc(at or now())
    values = {
        "runner": runner,
        "started_at": at,
        "status": "running",
        "lease_until": at + timedelta(seconds=lease_seconds),
    }
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(job_runs).values(job=job, scheduled_at=_utc(slot), **values))
        return True
    except IntegrityError:
        pass
    with store.engine.begin() as conn:
        taken = conn.execute(
            update(job_runs)
            .where(_slot(job, slot), _lapsed(at))
            .values(**values, finished_at=None, detail=None, error=None)
        )
        return taken.rowcount == 1


def renew(
    store: StateStore,
    job: str,
    slot: datetime,
    runner: str,
    lease_seconds: float = 60,
    *,
    at: datetime | None = None,
) -> bool:
    """The heartbeat: extend `runner`'s claim; False if the claim is no longer its own."""
    at = _utc(at or now())
    with store.engine.begin() as conn:
        result = conn.execute(
            update(job_runs)
            .where(_slot(job, slot), job_runs.c.runner == runner, job_runs.c.status == "running")
            .values(lease_until=at + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1


def lapsed_claims(store: StateStore, at: datetime | None = None) -> list[tuple[str, datetime]]:
    """(job, slot) of the claims still running whose lease has lapsed: their runner died."""
    at = _utc(at or now())
    query = select(job_runs.c.job, job_runs.c.scheduled_at).where(_lapsed(at))
    with store.engine.connect() as conn:
        return [(job, _aware(slot)) for job, slot in conn.execute(query)]


def finish(
    store: StateStore,
    job: str,
    slot: datetime,
    status: str,
    detail: dict[str, Any] | None = None,
    error: str | None = None,
    runner: str | None = None,
) -> None:
    """The slot's outcome; with `runner`, only while the claim is still that runner's."""
    mine = [] if runner is None else [job_runs.c.runner == runner]
    with store.engine.begin() as conn:
        conn.execute(
            update(job_runs)
            .where(_slot(job, slot), *mine)
            .values(finished_at=now(), status=status, detail=detail, error=error, lease_until=None)
        )


def list_job_runs(store: StateStore, job: str | None = None, limit: int = 50) -> list[dict]:
    query = select(job_runs).order_by(job_runs.c.scheduled_at.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for r in rows:
        for k in ("scheduled_at", "started_at", "finished_at", "lease_until"):
            r[k] = _aware(r[k])
    return rows
