"""Salesforce CPQ mode: ask CPQ again for renewals it has not created (`renewals cpq retry`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from crm_renewals.connector.domain.mapping import to_crm
from crm_renewals.connector.domain.writes import jsonable
from crm_renewals.connector.errors import ConfigError, Problem
from crm_renewals.connector.ports import OutboundRecord
from crm_renewals.connector.services.apply import Ledger, record_ledger
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.gather import load_book
from crm_renewals.connector.services.versions import start_run


@dataclass
class CpqRetry:
    """What `renewals cpq retry` did: contracts re-flagged, and those CPQ refused to re-flag."""

    run_id: int
    reflagged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "reflagged": self.reflagged, "failed": self.failed}


def waiting_forecasts(ctx: Context) -> list[str]:
    """Contracts whose renewal forecast is on (as last read, or as the connector set it) and
    whose CPQ renewal is not there, in the synced data."""
    book = load_book(ctx.store)
    asked = ctx.store.ledger.keys("contract")
    return sorted(
        c.id
        for c in book.contracts.values()
        if (c.renewal_forecast or c.id in asked) and not c.cpq_renewal_id
    )


def retry_forecasts(ctx: Context, contract_ids: Sequence[str] | None, as_of: date) -> CpqRetry:
    """Turn each contract's renewal forecast off and on again, which runs CPQ's renewal job
    again (after its cause, such as an inactive renewal owner, is fixed). None: every contract
    that waits for CPQ."""
    if ctx.config.renewals.renewal_mode != "cpq":
        raise ConfigError(
            [Problem("renewals.renewal_mode", "cpq retry needs renewals.renewal_mode: cpq")]
        )
    waiting = waiting_forecasts(ctx)
    ids = waiting if contract_ids is None else list(dict.fromkeys(contract_ids))
    unknown = [c for c in ids if c not in waiting]
    if unknown:
        raise ConfigError(
            [
                Problem(
                    "contract",
                    f"{', '.join(unknown)}: no renewal forecast waiting for CPQ in the synced "
                    "data (run renewals sync first; renewals explain tells why)",
                )
            ]
        )
    run_id = start_run(ctx, "cpq_retry", as_of)
    out, started, calls = CpqRetry(run_id), time.monotonic(), ctx.crm.api_calls
    status = "failed"
    try:
        for i in range(0, len(ids), ctx.crm.max_batch):
            _reflag(ctx, ids[i : i + ctx.crm.max_batch], as_of, out)
        status = "partial" if out.failed else "ok"
    finally:
        counts = {"reflagged": len(out.reflagged), "failed": len(out.failed)}
        duration = time.monotonic() - started
        ctx.store.runs.finish(run_id, status, counts, ctx.crm.api_calls - calls, duration)
    return out


def _reflag(ctx: Context, ids: list[str], as_of: date, out: CpqRetry) -> None:
    sent = {}
    for on in (False, True):
        records = [
            OutboundRecord(
                c, to_crm(ctx.mapping, "contract", {"renewal_forecast": on}), exists=True
            )
            for c in ids
            if c not in out.failed
        ]
        for res in ctx.crm.upsert("contract", records):
            if res.ok:
                sent[res.key] = on
            else:
                out.failed[res.key] = f"{res.error_code}: {res.message}"
    done = [c for c, on in sent.items() if on and c not in out.failed]
    fields = {"renewal_forecast": True, "asked_on": jsonable(as_of)}
    rows = [
        {"kind": "contract", "key": c, "contract_id": c, "crm_id": c, "fields": fields}
        for c in done
    ]
    record_ledger(ctx, Ledger({}), rows, out.run_id)
    out.reflagged += done
