"""Signature checks, pure: bytes and clocks in, a refusal (status and short reason) out.

No Flask here, so the checks are tested against the fixed vectors directly as well as through
the routes. Secrets and signatures are never put into a refusal's reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from crm_renewals.connector.errors import WebhookRejectedError

#: Characters HubSpot's request-validation guide says to decode in the URI before hashing.
HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


#: A timestamp header: ASCII digits only (str.isdigit() takes "²"), and few enough of them
#: (16: milliseconds until the year 318857) that int() is cheap and never refuses.
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


class Refused(WebhookRejectedError):
    """A delivery we refuse: HTTP `status` and a short `reason` (also the metrics label)."""

    def __init__(self, status: int, reason: str, label: str):
        self.status, self.reason, self.label = status, reason, label
        super().__init__(reason)


def hubspot_uri(uri: str, decode: bool = True) -> str:
    if not decode or "%" not in uri:
        return uri
    for code, char in HUBSPOT_DECODED.items():
        uri = uri.replace(code, char).replace(code.lower(), char)
    return uri


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client secret, method + URI + body + timestamp))."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def check_timestamp(raw: str | None, now_s: float, tolerance_s: int, unit_ms: bool) -> str:
    """The timestamp header, refused when missing, malformed, or outside the window either way."""
    if not raw or not _TIMESTAMP.fullmatch(raw.strip()):
        raise Refused(401, "missing or malformed timestamp", "timestamp")
    moment = int(raw) / 1000 if unit_ms else int(raw)
    if abs(now_s - moment) > tolerance_s:
        raise Refused(401, "timestamp outside the allowed window", "timestamp")
    return raw.strip()


def check_hubspot_v3(
    secret: str | Sequence[str] | None,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_s: float,
    tolerance_s: int = 300,
) -> None:
    """Raise Refused unless the X-HubSpot-Signature-v3 is valid and recent. `secret` may be
    several: a private app's client secret and a public app's (each app signs with its own
    client secret); a signature made with any of them is good."""
    secrets = [secret] if isinstance(secret, str) else [s for s in secret or () if s]
    _present(secrets[0] if secrets else None, signature, "HubSpot client secret")
    ts = check_timestamp(timestamp, now_s, tolerance_s, unit_ms=True)
    given = signature.strip().encode()
    matched = False
    for one in secrets:  # every secret is tried: the time taken says nothing of which matched
        expected = hubspot_v3_signature(one, method, uri, body, ts).encode()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise Refused(401, "invalid signature", "signature")


def signals_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` + hex(HMAC-SHA256(secret, timestamp + "." + body)): the scheme README documents."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def check_signals(
    secret: str | None,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_s: float,
    tolerance_s: int = 300,
) -> None:
    _present(secret, signature, "signals secret")
    ts = check_timestamp(timestamp, now_s, tolerance_s, unit_ms=False)
    _matches(signals_signature(secret, ts, body), signature)


def _present(secret: str | None, signature: str | None, what: str) -> None:
    if not secret:
        raise Refused(401, f"{what} not configured", "not_configured")
    if not signature:
        raise Refused(401, "missing signature", "signature")


def _matches(expected: str, signature: str) -> None:
    """Constant-time comparison; the reason never says how they differ."""
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise Refused(401, "invalid signature", "signature")
