"""What a delivery holds. A request checks its delivery's shape with these before storing it
as it arrived; the inbox worker reads the same delivery again into inbox events."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from crm_renewals.connector.inbox import (
    EVENT_ID_CHARS,
    OBJECT_CHARS,
    RECORD_ID_CHARS,
    InboxEvent,
    storable,
)
from crm_renewals.webhooks import soap
from crm_renewals.webhooks.verify import Refused

HUBSPOT_MAX_EVENTS = 100
#: an integer id within this fits any id column (fewer than 20 digits and its sign)
_SHORT = 10**18
#: JSON nested deeper than this is refused before it is parsed (our events are 3 deep).
MAX_DEPTH = 32
#: a JSON string, to its closing quote or the end of the body: possessive, so it is linear
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"?', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_INNERMOST = re.compile(rb"[\[{][\]}]")
#: what a body must hold for a parsed string to have a NUL or a lone surrogate: a NUL byte (also
#: in every UTF-16 or UTF-32 body), a `\u` escape, or the UTF-8 lead byte of U+D000-U+DFFF
#: (json.loads decodes with surrogatepass)
_ODD_BYTES = (b"\x00", b"\\u", b"\xed")


def parse_json(body: bytes) -> Any:
    """A request body's JSON; Refused(400) if it is not JSON or nests deeper than MAX_DEPTH
    (checked on the bytes first: the parser recurses, and a RecursionError is no answer)."""
    if _nested_deeper_than(body, MAX_DEPTH):
        raise Refused(400, f"body is nested deeper than {MAX_DEPTH} levels", "payload")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: only malformed bodies get here
        raise Refused(400, "body is not JSON", "payload") from None


def _nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the brackets outside strings nest deeper than `limit`: each pass takes away
    the innermost pairs, so what still has a pair after `limit` passes is deeper."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:
            return False
    return _INNERMOST.search(brackets) is not None


class _NotFinite(ValueError):
    """A number the inbox could not store (NaN, an infinity, a float that overflows)."""


def _finite(text: str) -> float:
    value = float(text)  # a long enough decimal overflows to inf
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> float:
    raise _NotFinite(text)  # NaN, Infinity, -Infinity


#: JSON whose every number is finite (one decoder: json.loads would build one a call)
_FINITE = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)


def _parse_noting_odd(body: bytes) -> tuple[Any, bool]:
    """parse_json, and whether the JSON may hold text or a number the inbox could not store
    (else every value in it is storable: the walk over it is skipped, the request path's
    largest cost)."""
    if _nested_deeper_than(body, MAX_DEPTH):
        return parse_json(body), True  # refused there
    try:
        data = _FINITE.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except _NotFinite:
        return parse_json(body), True  # parsed again, walked: the refusal names the field
    except (ValueError, RecursionError):
        raise Refused(400, "body is not JSON", "payload") from None
    return data, any(odd in body for odd in _ODD_BYTES)


def hubspot_batch(body: bytes) -> list[dict[str, Any]]:
    """A batch of HubSpot events: a JSON array of up to 100 objects, each with an eventId,
    holding nothing the inbox could not store (checked here, so nothing acked jams it)."""
    data, odd = _parse_noting_odd(body)
    if not isinstance(data, list) or not data:
        raise Refused(400, "expected a non-empty JSON array of events", "payload")
    if len(data) > HUBSPOT_MAX_EVENTS:
        raise Refused(400, f"more than {HUBSPOT_MAX_EVENTS} events", "payload")
    for i, event in enumerate(data):
        if not isinstance(event, dict) or event.get("eventId") in (None, ""):
            raise Refused(400, f"event {i} has no eventId", "payload")
        problem = _event_problem(event, odd)
        if problem:
            raise Refused(400, f"event {i}: {problem}", "payload")
    return data


def _event_problem(event: dict[str, Any], odd: bool = True) -> str | None:
    """What in one event the inbox could not store, naming the field; None if all is well.
    `odd`: whether the body may hold unstorable text or numbers (else only sizes are checked)."""
    fits = storable if odd else _fits
    checks = (
        ("eventId", event["eventId"], EVENT_ID_CHARS),
        ("objectId", event.get("objectId"), RECORD_ID_CHARS),
    )
    for name, value, chars in checks:
        if type(value) is int and -_SHORT < value < _SHORT:  # most ids: nothing to check
            continue
        if value in (None, ""):
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            return f"{name} must be an integer or text"
        if (problem := fits(str(value), chars)) is not None:
            return f"{name} {problem}"
    kind = event.get("subscriptionType")
    if kind not in (None, ""):
        if not isinstance(kind, str):
            return "subscriptionType must be text"
        if (problem := fits(kind.split(".", 1)[0], OBJECT_CHARS)) is not None:
            return f"subscriptionType {problem}"
    return _unstorable_json(event, "") if odd else None


def _fits(text: str, max_chars: int) -> str | None:
    """`storable` of text that holds no NUL and no lone surrogate: its size alone."""
    return None if len(text) <= max_chars else f"is longer than {max_chars} characters"


def _unstorable_json(value: Any, path: str) -> str | None:
    """The first text that is not valid Unicode, or number that is not finite, in a parsed
    JSON value (depth already bounded), named by its path."""
    if isinstance(value, str):
        return None if storable(value) is None else f"{path or 'text'} is not valid text"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'number'} is not a finite number"
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        name = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)
        if isinstance(key, str) and storable(key) is not None:
            return f"a key in {path or 'the event'} is not valid text"
        if (problem := _unstorable_json(item, name)) is not None:
            return problem
    return None


def hubspot_events(body: bytes) -> list[InboxEvent]:
    out = []
    for event in hubspot_batch(body):
        kind = str(event.get("subscriptionType") or "")
        obj = event.get("objectId")
        out.append(
            InboxEvent(
                "hubspot",
                str(event["eventId"]),
                kind.split(".", 1)[0] or None,
                None if obj in (None, "") else str(obj),
                event,
            )
        )
    return out


def salesforce_events(body: bytes) -> list[InboxEvent]:
    message = soap.parse(body)
    return [
        InboxEvent(
            "salesforce",
            n.id,
            n.object,
            n.record_id,
            {"action_id": message.action_id, "fields": n.fields},
        )
        for n in message.notifications
    ]


READERS = {"hubspot": hubspot_events, "salesforce": salesforce_events}


def events_of(source: str, body: bytes) -> list[InboxEvent]:
    """The events of a stored delivery (the inbox worker's reader)."""
    return READERS[source](body)
