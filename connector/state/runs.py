"""Runs: one row per sync (or webhook batch, CPQ retry), with its outcome and cost."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from crm_renewals.connector.state.database import Db, now
from crm_renewals.connector.state.schema import runs


@dataclass(frozen=True, slots=True)
class Run:
    """A recorded run (the runs table's columns, in order)."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    mode: str
    as_of: str | None
    counts: dict[str, Any] | None
    api_calls: int | None
    duration_s: float | None
    error: str | None
    #: sha256 of the mapping file and app.yaml it used (None: recorded before schema 4)
    mapping_hash: str | None = None
    config_hash: str | None = None
    #: while running: {"stage": ..., "done": {kind: n}, ...} (None: before schema 5)
    progress: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class RunRepository:
    """The runs table."""

    def __init__(self, db: Db):
        self.db = db

    def start(
        self, mode: str, as_of: str, mapping_hash: str | None = None, config_hash: str | None = None
    ) -> int:
        """A new run, with the versions of the mapping and app.yaml it uses; runs still marked
        running were killed (runs do not overlap)."""
        with self.db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status="interrupted", error="the process stopped before the run ended")
            )
            return conn.execute(
                insert(runs).values(
                    started_at=now(),
                    status="running",
                    mode=mode,
                    as_of=as_of,
                    mapping_hash=mapping_hash,
                    config_hash=config_hash,
                )
            ).inserted_primary_key[0]

    def finish(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        api_calls: int,
        duration_s: float,
        error: str | None = None,
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=now(),
                    status=status,
                    counts=counts,
                    api_calls=api_calls,
                    duration_s=round(duration_s, 3),
                    error=error,
                )
            )

    def report_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        """Where a running run is (its stage and counts so far): the console shows it."""
        with self.db.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(progress=progress))

    def get(self, run_id: int) -> Run | None:
        with self.db.read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return Run(*row) if row else None

    def before(self, run_id: int) -> int | None:
        """The id of the run started last before `run_id` (None: it is the first)."""
        with self.db.read() as conn:
            return conn.execute(select(func.max(runs.c.id)).where(runs.c.id < run_id)).scalar()

    def last(self, modes: tuple[str, ...], statuses: tuple[str, ...]) -> Run | None:
        """The latest run of one of these modes that ended in one of these statuses."""
        query = (
            select(runs)
            .where(runs.c.mode.in_(modes), runs.c.status.in_(statuses))
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return Run(*row) if row else None

    def completed(self, ids: Collection[int]) -> set[int]:
        """Which of these runs completed (ok or partial: every change they read was planned)."""
        if not ids:
            return set()
        query = select(runs.c.id).where(
            runs.c.id.in_(list(ids)), runs.c.status.in_(("ok", "partial"))
        )
        with self.db.read() as conn:
            return set(conn.execute(query).scalars())

    def last_whole(self, within: int = 500) -> Run | None:
        """The latest completed sync (of the last `within` runs) that planned the whole book
        (its counts carry no incremental `scope`)."""
        query = (
            select(runs)
            .where(runs.c.mode.in_(("full", "incremental")), runs.c.status.in_(("ok", "partial")))
            .order_by(runs.c.id.desc())
            .limit(within)
        )
        with self.db.read() as conn:
            for row in conn.execute(query):
                run = Run(*row)
                if not (run.counts or {}).get("scope"):
                    return run
        return None

    def list(
        self,
        limit: int = 20,
        offset: int = 0,
        mode: str | None = None,
        status: str | None = None,
    ) -> list[Run]:
        """The latest runs (of `mode` and `status`, if given), newest first, `offset` skipped."""
        query = select(runs).where(*_filters(mode, status))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(runs.c.id.desc()).limit(limit).offset(offset))
            return [Run(*r) for r in rows]

    def count(self, mode: str | None = None, status: str | None = None) -> int:
        """How many runs (of `mode` and `status`, if given) are recorded."""
        with self.db.read() as conn:
            query = select(func.count()).select_from(runs).where(*_filters(mode, status))
            return conn.execute(query).scalar_one()

    def first_after(self, run_id: int) -> Run | None:
        """The first run started after run `run_id`."""
        query = select(runs).where(runs.c.id > run_id).order_by(runs.c.id).limit(1)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return Run(*row) if row else None

    def api_calls_since(self, moment: datetime) -> int:
        """CRM API calls recorded by the runs started at or after `moment` (a running run's
        count once it ends)."""
        query = select(func.sum(runs.c.api_calls)).where(runs.c.started_at >= moment)
        with self.db.read() as conn:
            return conn.execute(query).scalar() or 0

    def totals(self) -> list[tuple[str, str, int, int]]:
        """(mode, status, runs, CRM API calls) for every mode and status recorded."""
        query = select(
            runs.c.mode, runs.c.status, func.count(), func.sum(runs.c.api_calls)
        ).group_by(runs.c.mode, runs.c.status)
        with self.db.read() as conn:
            return [(mode, status, n, calls or 0) for mode, status, n, calls in conn.execute(query)]


def _filters(mode: str | None, status: str | None) -> list:
    return [
        *([runs.c.mode == mode] if mode else []),
        *([runs.c.status == status] if status else []),
    ]
