"""Salesforce outbound messages: parsed with defusedxml (no DTD at all, so no external entity
and no entity expansion), answered with the SOAP Ack or a SOAP fault."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from crm_renewals.connector.inbox import EVENT_ID_CHARS, OBJECT_CHARS, RECORD_ID_CHARS, storable
from crm_renewals.webhooks.verify import Refused

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
OUTBOUND = "{http://soap.sforce.com/2005/09/outbound}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

#: The acknowledgement, byte for byte as Salesforce's WSDL describes it (fixture ack).
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    b" <soapenv:Body>\n"
    b'  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    b"   <Ack>true</Ack>\n"
    b"  </notificationsResponse>\n"
    b" </soapenv:Body>\n"
    b"</soapenv:Envelope>\n"
)
CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class Notification:
    id: str  # the notification id: the dedupe key
    object: str  # e.g. Contract
    record_id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str | None
    notifications: list[Notification]


def fault(reason: str, code: str = "soapenv:Client") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
        " <soapenv:Body>\n"
        "  <soapenv:Fault>\n"
        f"   <faultcode>{code}</faultcode>\n"
        f"   <faultstring>{escape(reason)}</faultstring>\n"
        "  </soapenv:Fault>\n"
        " </soapenv:Body>\n"
        "</soapenv:Envelope>"
    ).encode()


def parse(body: bytes) -> OutboundMessage:
    """The notifications of one outbound message; Refused(400) for anything else."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise Refused(400, "XML with a DTD or entities is not accepted", "payload") from None
    except ParseError:
        raise Refused(400, "malformed XML", "payload") from None
    notes = root.find(f"{SOAP}Body/{OUTBOUND}notifications")
    if root.tag != f"{SOAP}Envelope" or notes is None:
        raise Refused(400, "not a Salesforce outbound message", "payload")
    org = (notes.findtext(f"{OUTBOUND}OrganizationId") or "").strip()
    out = []
    for n in notes.findall(f"{OUTBOUND}Notification"):
        note_id = (n.findtext(f"{OUTBOUND}Id") or "").strip()
        sobject = n.find(f"{OUTBOUND}sObject")
        if not note_id or sobject is None:
            raise Refused(400, "notification without Id or sObject", "payload")
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in sobject}
        obj = sobject.get(XSI_TYPE, "").rsplit(":", 1)[-1]
        if not obj or not fields.get("Id"):
            raise Refused(400, "sObject without type or Id", "payload")
        for name, text, chars in (
            ("Id", note_id, EVENT_ID_CHARS),
            ("sObject type", obj, OBJECT_CHARS),
            ("sObject Id", fields["Id"], RECORD_ID_CHARS),
        ):
            if (problem := storable(text, chars)) is not None:
                raise Refused(400, f"notification {len(out)}: {name} {problem}", "payload")
        out.append(Notification(note_id, obj, fields["Id"], fields))
    if not out:
        raise Refused(400, "no notifications", "payload")
    if len(out) > 100:
        raise Refused(400, "more than 100 notifications", "payload")
    return OutboundMessage(org, notes.findtext(f"{OUTBOUND}ActionId"), out)


def same_org(given: str, expected: str) -> bool:
    """Org ids compare on their 15-character case-sensitive form (18 = 15 + checksum)."""
    return len(given) in (15, 18) and given[:15] == expected[:15]
