"""Property-based: arbitrary bytes and JSON, signed or not, at the three webhook endpoints
never get a 5xx or a traceback, and nothing acknowledged is left stuck: after one inbox worker
pass every acked delivery is processed, ignored or dead-lettered (signals: stored)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import DEAD, DONE, IGNORED, StateStore
from crm_renewals.connector.state.schema import signals
from crm_renewals.webhooks import create_app
from crm_renewals.webhooks.worker import InboxWorker
from tests.conftest import write_config
from tests.webhooks.conftest import (
    SF_ORG,
    SIGNALS_SECRET,
    VECTOR,
    Clock,
    hubspot_headers,
    signals_headers,
)

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Lu"])),
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
wild = st.one_of(scalars, any_json)


def mutated(valid: dict, wilds: dict) -> st.SearchStrategy[dict]:
    """A valid object with a field or two replaced, removed or added (wild values)."""
    change = st.lists(st.sampled_from(sorted(wilds)), min_size=1, max_size=2, unique=True)

    @st.composite
    def build(draw):
        out = dict(valid)
        for name in draw(change):
            if draw(st.integers(0, 5)) == 0:
                out.pop(name, None)
            else:
                out[name] = draw(wilds[name])
        return out

    return build()


odd_text = st.text(st.characters(categories=["Cs", "Cc", "Ll"]), max_size=5)  # lone surrogates
ids = st.one_of(st.integers(), st.text(max_size=250), odd_text, odd_text, wild)
hubspot_event = mutated(
    {"eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 42},
    {
        "eventId": ids,
        "subscriptionType": st.one_of(
            st.sampled_from(["deal", "company", "Contract", "ticket"]).map(lambda o: f"{o}.x"),
            st.text(max_size=100),
            wild,
        ),
        "objectId": ids,
        "propertyValue": wild,
        "occurredAt": wild,
    },
)
signal = mutated(
    {
        "account": "001SB0000000001",
        "measure": "seat_utilisation",
        "value": 0.5,
        "timestamp": "2026-11-20T10:00:00Z",
    },
    {
        "account": st.one_of(st.text(max_size=100), odd_text, wild),
        "measure": st.one_of(st.sampled_from(["seat_utilisation", "nps"]), wild),
        "value": st.one_of(st.floats(-1e16, 1e16), st.integers(), st.text(max_size=500), wild),
        "timestamp": st.one_of(
            st.integers(-(10**20), 10**20),
            st.floats(allow_nan=True),
            st.integers(-(10**20), 10**20).map(str),
            st.datetimes().map(lambda d: d.isoformat() + "+01:00"),
            wild,
        ),
        "source": wild,
        "extra": wild,
    },
)


def json_bytes(value) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


events = st.lists(hubspot_event, min_size=1, max_size=3).map(json_bytes)
hubspot_bodies = st.one_of(
    st.binary(max_size=300), any_json.map(json_bytes), events, events, events
)
#: mostly signed: a signature refusal comes before everything else
signed = st.sampled_from([True, True, True, False])
signals_bodies = st.one_of(
    st.binary(max_size=300),
    any_json.map(json_bytes),
    signal.map(json_bytes),
    signal.map(json_bytes),
    st.lists(signal, max_size=3).map(lambda s: json_bytes({"signals": s})),
)
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
xml_text = st.one_of(st.text(max_size=30), st.text(max_size=250), st.just("800000000000AaAAAU"))


@st.composite
def outbound_messages(draw) -> bytes:
    """Salesforce outbound messages of arbitrary text (escaped), from our org or another."""
    org = draw(st.sampled_from([SF_ORG, "00D000000000999EAA"]) | xml_text)
    notes = []
    for _ in range(draw(st.integers(0, 3))):
        note_id, obj, rec = draw(xml_text), draw(xml_text), draw(xml_text)
        field = draw(xml_text)
        notes.append(
            f"<Notification><Id>{escape(note_id)}</Id>"
            f"<sObject xsi:type={quoteattr('sf:' + obj)} xmlns:sf={quoteattr(SOBJECT)}>"
            f"<sf:Id>{escape(rec)}</sf:Id><sf:Name>{escape(field)}</sf:Name></sObject>"
            "</Notification>"
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{escape(org)}</OrganizationId><ActionId>04k</ActionId>"
        + "".join(notes)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    )
    return xml.encode("utf-8", "surrogatepass")


salesforce_bodies = st.one_of(st.binary(max_size=300), outbound_messages())


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """One app, store and worker context for all examples (a failed event is dead at once)."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = write_config(
        folder,
        webhooks={"public_base_url": "https://connector.example.com", "salesforce_org_id": SF_ORG}
        | {"retry_attempts": 1, "max_body_bytes": 64 * 1024},
    )
    config = load_config(path)
    store = bootstrap.open_store(config)
    env = {
        "HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"],
        "SIGNALS_WEBHOOK_SECRET": SIGNALS_SECRET,
    }
    app = create_app(config, store=store, env=env, clock=Clock())
    ctx = bootstrap.build(config)
    ctx.sleep = lambda _s: None
    yield Fuzzed(app.test_client(), store, ctx, InboxWorker(config))
    ctx.close()
    store.close()


class Fuzzed(NamedTuple):
    client: Any
    store: StateStore
    ctx: Any
    worker: InboxWorker

    def __repr__(self) -> str:  # hypothesis prints the fixture with each failing example
        return "Fuzzed(...)"


def answered_without_a_crash(resp) -> None:
    assert resp.status_code < 500, resp.data[:500]
    assert b"Traceback" not in resp.data
    if resp.status_code != 200:
        assert resp.is_json or resp.mimetype == "text/xml", resp.data[:200]


def nothing_stuck(store: StateStore, ctx, worker: InboxWorker) -> None:
    """One worker pass settles every acked delivery: no delivery left, no event pending."""
    worker.drain(ctx)
    inbox = Inbox(store)
    assert inbox.waiting() == 0
    assert {r.status for r in inbox.all()} <= {DONE, IGNORED, DEAD}


@FUZZ
@given(body=hubspot_bodies, sign=signed)
def test_hubspot_endpoint_never_fails_and_leaves_nothing_stuck(fuzzed, body, sign):
    client, store, ctx, worker = fuzzed
    headers = hubspot_headers(body) if sign else {"Content-Type": "application/json"}
    resp = client.post("/webhooks/hubspot", data=body, headers=headers)
    answered_without_a_crash(resp)
    if resp.status_code == 200:
        nothing_stuck(store, ctx, worker)


@FUZZ
@given(body=salesforce_bodies)
def test_salesforce_endpoint_never_fails_and_leaves_nothing_stuck(fuzzed, body):
    client, store, ctx, worker = fuzzed
    resp = client.post("/webhooks/salesforce", data=body, headers={"Content-Type": "text/xml"})
    answered_without_a_crash(resp)
    if resp.status_code == 200:
        nothing_stuck(store, ctx, worker)


@FUZZ
@given(body=signals_bodies, sign=signed)
def test_signals_endpoint_never_fails_and_stores_what_it_acks(fuzzed, body, sign):
    client, store, _, _ = fuzzed
    headers = signals_headers(body) if sign else {"Content-Type": "application/json"}
    before = stored_signals(store)
    resp = client.post("/webhooks/signals", data=body, headers=headers)
    answered_without_a_crash(resp)
    if resp.status_code == 200:
        assert stored_signals(store) == before + resp.json["new"]
        assert resp.json["accepted"] >= 1
    else:
        assert stored_signals(store) == before


def stored_signals(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(signals)).scalar_one()
