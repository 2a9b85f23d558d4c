"""Twin fake orgs for the Salesforce benchmark: the same book synced through the Composite path
and through the Collections path must leave the same records, and a Composite path whose calls
fail (one subrequest, one whole call 503) must converge to them too."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.sync import sync
from tests.conftest import write_config
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import SALESFORCE_ENV
from tests.fakes.salesforce_org import FakeOrg

ROOT = Path(__file__).resolve().parent.parent
BUSY = [{"errorCode": "SERVER_UNAVAILABLE", "message": "busy"}]


def seed(org: FakeOrg, contracts: int) -> None:
    SalesforceBook(org).many(contracts, date(2027, 2, 1))


def with_org(
    contracts: int,
    write_api: str,
    work: Callable[[Any, FakeOrg], Any],
    prepare: Callable[[FakeOrg], None] | None = None,
    *,
    bulk_writes: bool = True,
) -> tuple[Any, FakeOrg]:
    """`work(ctx, org)` on a freshly seeded fake org synced with `salesforce.write_api`, and
    Bulk API 2.0 ingest jobs for big write groups unless `bulk_writes` is false."""
    os.environ.update(SALESFORCE_ENV)
    with (
        tempfile.TemporaryDirectory(prefix="renewals-sf-") as tmp,
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
    ):
        org = FakeOrg(rsps)
        seed(org, contracts)
        if prepare:
            prepare(org)
        path = write_config(
            Path(tmp),
            crm="salesforce",
            salesforce={
                "auth": "password",
                "write_api": write_api,
                **({} if bulk_writes else {"bulk_write_threshold": None}),
            },
            mapping=str(ROOT / "mappings" / "salesforce.yaml"),
        )
        ctx = bootstrap.build(load_config(path))
        ctx.sleep = lambda _s: None  # retries are counted, not waited for
        try:
            return work(ctx, org), org
        finally:
            ctx.close()


def faulted(contracts: int) -> tuple[Any, Any, FakeOrg]:
    """The Composite path with the first Composite call answered 503 and one subrequest of
    the next failing as a whole, and the first Bulk API 2.0 ingest job Failed after a third of
    its rows: (first report, second report, org)."""

    def prepare(org: FakeOrg) -> None:
        org.composite.fail_call(503, BUSY)
        org.composite.fail_subrequest(1, 500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "x"}])
        org.ingest.fail_next = (contracts * 4 // 3, "InvalidBatch : Failed to process job")

    def work(ctx, org):
        return sync(ctx, as_of=date(2026, 11, 23)), sync(ctx, as_of=date(2026, 11, 23))

    (first, second), org = with_org(contracts, "composite", work, prepare)
    return first, second, org
