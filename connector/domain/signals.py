"""Product-usage signals: one measured value for one account at one moment.

The one validation used by `renewals signals import FILE.csv` and by `POST /webhooks/signals`,
so both accept and refuse exactly the same things.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Fields a signal carries; `source` is optional.
SIGNAL_FIELDS = ("account", "measure", "value", "timestamp", "source")
#: The longest text each field may hold (the state store's columns).
MAX_CHARS = {"account": 80, "measure": 80, "source": 40}
#: Values beyond this, either way, are refused: no measure counts that high.
MAX_VALUE = 1e15
#: Moments accepted: from the epoch up to (not including) 2100.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"-?[0-9]{1,16}")


@dataclass(frozen=True, slots=True)
class Signal:
    account: str  # the account's CRM id
    measure: str  # a scorecard measure name, e.g. seat_utilisation
    value: float
    at: datetime  # UTC
    source: str = "api"


class SignalError(ValueError):
    """A signal that cannot be accepted; the message says which field and why."""


def parse_signal(
    row: Mapping[str, Any], measures: Collection[str], *, source: str = "api"
) -> Signal:
    """Validate one signal (a CSV row or a JSON object). Raises SignalError naming the field."""
    unknown = sorted(set(row) - set(SIGNAL_FIELDS))
    if unknown:
        raise SignalError(f"unknown field {unknown[0]!r}; expected {', '.join(SIGNAL_FIELDS)}")
    account = _text(row, "account")
    measure = _text(row, "measure")
    if measure not in measures:
        raise SignalError(f"measure {measure!r} is not in the scorecard: {', '.join(measures)}")
    given = row.get("source")
    blank = given is None or (isinstance(given, str) and not given.strip())
    origin = source if blank else _text(row, "source")
    return Signal(account, measure, _value(row.get("value")), _moment(row.get("timestamp")), origin)


def _text(row: Mapping[str, Any], name: str) -> str:
    """Text the store can hold: valid Unicode (no lone surrogates), no NUL, not too long."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SignalError(f"{name} is missing")
    if not isinstance(value, str):
        raise SignalError(f"{name} must be text, not {type(value).__name__}")
    if "\x00" in value or not _is_unicode(value):
        raise SignalError(f"{name} {_show(value)} is not valid text")
    value = value.strip()
    if len(value) > MAX_CHARS[name]:
        raise SignalError(f"{name} is longer than {MAX_CHARS[name]} characters")
    return value


def _value(raw: Any) -> float:
    """A finite number within ±MAX_VALUE (a JSON number, or its text in a CSV)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise SignalError(f"value {_show(raw)} is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise SignalError(f"value {_show(raw)} is not a number") from None
    except OverflowError:  # an integer too large for a float
        raise SignalError(f"value {_show(raw)} is not within ±{MAX_VALUE:g}") from None
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        raise SignalError(f"value {_show(raw)} is not a finite number within ±{MAX_VALUE:g}")
    return value


def _moment(raw: Any) -> datetime:
    """ISO 8601 with a time zone, or epoch milliseconds (as HubSpot sends them), within
    1970-01-01 and 2100-01-01 UTC."""
    if isinstance(raw, bool) or raw in (None, ""):
        raise SignalError("timestamp is missing")
    if isinstance(raw, int | float) or (isinstance(raw, str) and _EPOCH_MS.fullmatch(raw.strip())):
        moment = _from_epoch_ms(raw)
    elif isinstance(raw, str):
        moment = _from_iso(raw)
    else:
        raise SignalError(f"timestamp must be text or a number, not {type(raw).__name__}")
    if not EARLIEST <= moment < LATEST:
        raise SignalError(f"timestamp {_show(raw)} is not between 1970 and 2100")
    return moment


def _from_epoch_ms(raw: int | float | str) -> datetime:
    ms = float(raw) if isinstance(raw, str) else raw
    if not math.isfinite(ms) or not 0 <= ms < LATEST.timestamp() * 1000:
        raise SignalError(f"timestamp {_show(raw)} is not between 1970 and 2100")
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _from_iso(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignalError(f"timestamp {_show(raw)} is not ISO 8601 or epoch milliseconds") from None
    if moment.tzinfo is None:
        raise SignalError(f"timestamp {_show(raw)} has no time zone (add Z or +00:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00
        raise SignalError(f"timestamp {_show(raw)} is not between 1970 and 2100") from None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(raw: Any) -> str:
    """The offending value for a message: its repr, cut short (never a 5000-digit echo)."""
    if isinstance(raw, int) and raw.bit_length() > 100:  # repr() fails past 4300 digits
        return f"(an integer of about {int(raw.bit_length() * 0.30103) + 1} digits)"
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."
