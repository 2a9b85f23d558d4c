"""A HubSpot sync killed between a record's upsert (answered) and its association (not sent):
the next run restores every association, with no duplicates."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
from crm_renewals.connector.adapters.hubspot import writes as hubspot_writes
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.hubspot.conftest import fast, hubspot_config


class Killed(BaseException):
    """The process dying (kill -9): nothing after it runs, nothing is caught."""


def context(tmp_path, fake):
    ctx = bootstrap.build(load_config(hubspot_config(tmp_path, fake)))
    ctx.sleep = lambda _s: None
    fast(ctx.crm)
    return ctx


def assert_every_record_on_its_parent(fake) -> None:
    deals = [d for d in fake.live("deals") if d.get("renewal_key")]
    lines = [ln for ln in fake.live("line_items") if ln.get("renewal_line_key")]
    for found in ([d["renewal_key"] for d in deals], [ln["renewal_line_key"] for ln in lines]):
        assert all(n == 1 for n in Counter(found).values()), "duplicates"
    by_key = {d["renewal_key"]: d["hs_object_id"] for d in deals}
    for deal in deals:
        assert fake.associated("deals", deal["hs_object_id"], "companies"), deal["renewal_key"]
    for line in lines:
        parent = by_key[line["renewal_deal_key"]]
        assert set(fake.associated("line_items", line["hs_object_id"], "deals")) == {parent}


@pytest.mark.parametrize("kill_at", [1, 2], ids=["deals_to_companies", "lines_to_deals"])
def test_a_sync_killed_before_an_association_is_restored_by_the_next_run(
    tmp_path, fake, hub, monkeypatch, kill_at
):
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    for i in range(3):
        company = hub.company(f"Co {i}")
        hub.contract(
            company, AS_OF + timedelta(days=90 + i), lines=(("SEAT", 5, 100.0), ("X", 1, 9.0))
        )
    real, calls = hubspot_writes.associate, Counter()

    def dies(crm, source, target, rows):
        calls["n"] += 1
        if calls["n"] == kill_at:  # the upsert was answered; its association is never sent
            raise Killed
        return real(crm, source, target, rows)

    monkeypatch.setattr(hubspot_writes, "associate", dies)
    killed = context(tmp_path, fake)
    with pytest.raises(Killed):
        sync(killed, as_of=AS_OF)
    monkeypatch.setattr(hubspot_writes, "associate", real)
    deals = [d for d in fake.live("deals") if d.get("renewal_key")]
    lines = [x for x in fake.live("line_items") if x.get("renewal_line_key")]
    unlinked = [d for d in deals if not fake.associated("deals", d["hs_object_id"], "companies")]
    unlinked += [x for x in lines if not fake.associated("line_items", x["hs_object_id"], "deals")]
    assert unlinked, "the kill left every record linked: it missed the boundary"

    ctx = context(tmp_path, fake)
    try:
        report = sync(ctx, as_of=AS_OF)
        assert report.failed == 0
        assert_every_record_on_its_parent(fake)
        assert len([d for d in fake.live("deals") if d.get("renewal_key")]) == 3
        assert len([x for x in fake.live("line_items") if x.get("renewal_line_key")]) == 6
        assert sync(ctx, as_of=AS_OF).writes == {}
    finally:
        ctx.close()
