"""Scheduled job runs: one row per (job, scheduled slot). The row is the claim: two
schedulers started on one database by mistake both try to insert it, and only the one that
succeeds runs the slot. A claim is a lease: the runner renews it while the job runs, and once
it lapses (the runner died) another scheduler may take the slot over."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import job_runs


@dataclass(frozen=True, slots=True)
class JobRun:
    """A job's run for one slot (the job_runs table's columns, in order)."""

    job: str
    scheduled_at: datetime
    runner: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | ok | partial | failed | busy
    detail: dict[str, Any] | None
    error: str | None
    lease_until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


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


def _running_by(runner: str):
    return and_(job_runs.c.status == "running", job_runs.c.runner == runner)


class JobRunRepository:
    """The job_runs table."""

    def __init__(self, db: Db):
        self.db = db

    def claim(
        self,
        job: str,
        slot: datetime,
        runner: str,
        lease_seconds: float = 60,
        *,
        at: datetime | None = None,
    ) -> bool:
        """Record that `runner` runs `job` for `slot`, for `lease_seconds` unless renewed;
        False if another runner holds it or finished it. A lapsed claim is taken over (one
        taker wins: the update is conditional); so is one still running under `runner`'s own
        name (a Celery task handed out again after its worker died: the same task id)."""
        at = _utc(at or now())
        values = {
            "runner": runner,
            "started_at": at,
            "status": "running",
            "lease_until": at + timedelta(seconds=lease_seconds),
        }
        try:
            with self.db.write() as conn:
                conn.execute(insert(job_runs).values(job=job, scheduled_at=_utc(slot), **values))
            return True
        except IntegrityError:
            pass
        with self.db.write() as conn:
            taken = conn.execute(
                update(job_runs)
                .where(_slot(job, slot), or_(_lapsed(at), _running_by(runner)))
                .values(**values, finished_at=None, detail=None, error=None)
            )
            return taken.rowcount == 1

    def renew(
        self,
        job: str,
        slot: datetime,
        runner: str,
        lease_seconds: float = 60,
        *,
        at: datetime | None = None,
    ) -> bool:
        """The heartbeat: extend `runner`'s claim; False if the claim is no longer its own."""
        at = _utc(at or now())
        mine = (_slot(job, slot), job_runs.c.runner == runner, job_runs.c.status == "running")
        with self.db.write() as conn:
            result = conn.execute(
                update(job_runs)
                .where(*mine)
                .values(lease_until=at + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    def lapsed(self, at: datetime | None = None) -> list[tuple[str, datetime]]:
        """(job, slot) of the claims still running whose lease has lapsed: their runner died."""
        at = _utc(at or now())
        query = select(job_runs.c.job, job_runs.c.scheduled_at).where(_lapsed(at))
        with self.db.read() as conn:
            return [(job, aware(slot)) for job, slot in conn.execute(query)]

    def finish(
        self,
        job: str,
        slot: datetime,
        status: str,
        detail: dict[str, Any] | None = None,
        error: str | None = None,
        runner: str | None = None,
    ) -> None:
        """The slot's outcome; with `runner`, only while the claim is still that runner's."""
        mine = [] if runner is None else [job_runs.c.runner == runner]
        with self.db.write() as conn:
            conn.execute(
                update(job_runs)
                .where(_slot(job, slot), *mine)
                .values(
                    finished_at=now(), status=status, detail=detail, error=error, lease_until=None
                )
            )

    def list(self, job: str | None = None, limit: int = 50) -> list[JobRun]:
        """The latest slots (of `job`, if given), newest first; times in UTC."""
        query = select(job_runs).order_by(job_runs.c.scheduled_at.desc()).limit(limit)
        if job is not None:
            query = query.where(job_runs.c.job == job)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            JobRun(
                r.job,
                aware(r.scheduled_at),
                r.runner,
                aware(r.started_at),
                aware(r.finished_at),
                r.status,
                r.detail,
                r.error,
                aware(r.lease_until),
            )
            for r in rows
        ]
