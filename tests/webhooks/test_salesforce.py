"""POST /webhooks/salesforce: outbound messages, acked only once stored; hostile XML refused."""

from __future__ import annotations

import time

from tests.webhooks.conftest import SF_ACK, SF_MESSAGE, SF_ORG, nothing_stored, read_deliveries


def post(client, body: bytes):
    return client.post("/webhooks/salesforce", data=body, content_type="text/xml; charset=utf-8")


def test_outbound_message_fixture_is_stored_then_acked_byte_for_byte(client, inbox):
    resp = post(client, SF_MESSAGE)
    assert resp.status_code == 200
    assert resp.data == SF_ACK
    assert resp.content_type.startswith("text/xml")
    assert inbox.waiting() == 1  # durable before the Ack
    read_deliveries(inbox)
    rows = inbox.all()
    assert [(r.event_id, r.object, r.record_id) for r in rows] == [
        ("04l000000000AbCAAU", "Contract", "800000000000AaAAAU"),
        ("04l000000000AbDAAU", "Contract", "800000000000AbAAAU"),
    ]
    assert rows[0].payload["fields"]["EndDate"] == "2027-03-31"


def test_redelivered_message_is_acked_and_stored_once(client, inbox):
    assert post(client, SF_MESSAGE).status_code == 200
    assert post(client, SF_MESSAGE).data == SF_ACK
    assert read_deliveries(inbox).new == {"salesforce": 2}
    assert post(client, SF_MESSAGE).data == SF_ACK
    assert read_deliveries(inbox).new == {}
    assert len(inbox.all()) == 2


def test_wrong_org_id_is_refused_with_a_soap_fault(client, inbox):
    other = SF_MESSAGE.replace(SF_ORG.encode(), b"00D000000000099EAA")
    resp = post(client, other)
    assert resp.status_code == 401
    assert b"<soapenv:Fault>" in resp.data and b"organization not accepted" in resp.data
    assert nothing_stored(inbox)


def test_org_id_compares_on_its_15_character_form(client, app, inbox):
    app.extensions["renewals"].org_id = SF_ORG[:15]
    assert post(client, SF_MESSAGE).status_code == 200


def test_no_configured_org_refuses_every_message(client, app, inbox):
    app.extensions["renewals"].org_id = None
    assert post(client, SF_MESSAGE).status_code == 401
    assert nothing_stored(inbox)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&xxe;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&lol9;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""


def test_external_entity_is_refused_without_resolving_it(client, inbox):
    resp = post(client, XXE)
    assert resp.status_code == 400
    assert b"DTD" in resp.data and b"root:" not in resp.data
    assert nothing_stored(inbox)


def test_billion_laughs_is_refused_without_expansion(client, inbox):
    started = time.perf_counter()
    resp = post(client, LAUGHS)
    assert resp.status_code == 400 and b"<soapenv:Fault>" in resp.data
    assert time.perf_counter() - started < 0.5  # 10^9 "lol"s were never built
    assert nothing_stored(inbox)


def test_malformed_or_foreign_xml_is_refused(client, inbox):
    assert post(client, b"<soapenv:Envelope").status_code == 400
    assert post(client, b"<a/>").status_code == 400
    no_notes = (
        SF_MESSAGE.split(b"<Notification>")[0]
        + b"</notifications></soapenv:Body></soapenv:Envelope>"
    )
    assert post(client, no_notes).status_code == 400
    assert nothing_stored(inbox)


def test_body_over_the_limit_gets_413_as_a_soap_fault(client, inbox):
    resp = post(client, SF_MESSAGE + b" " * (64 * 1024))
    assert resp.status_code == 413 and b"<soapenv:Fault>" in resp.data
    assert nothing_stored(inbox)
