"""Product-usage signals: one measured value for one account at one moment.

The one validation used by `renewals signals import FILE.csv` and by `POST /webhooks/signals`,
so both accept and refuse exactly the same things.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Fields a signal carries; `source` is optional.
SIGNAL_FIELDS = ("account", "measure", "value", "timestamp", "source")


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
    raw = row.get("value")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SignalError(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SignalError(f"value {raw!r} is not a finite number")
    return Signal(
        account, measure, value, _moment(row.get("timestamp")), row.get("source") or source
    )


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SignalError(f"{name} is missing")
    return value.strip()


def _moment(raw: Any) -> datetime:
    """ISO 8601 with a time zone, or epoch milliseconds (as HubSpot sends them)."""
    if isinstance(raw, bool) or raw in (None, ""):
        raise SignalError("timestamp is missing")
    if isinstance(raw, int | float) or (isinstance(raw, str) and raw.strip().isdigit()):
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignalError(f"timestamp {raw!r} is not ISO 8601 or epoch milliseconds") from None
    if moment.tzinfo is None:
        raise SignalError(f"timestamp {raw!r} has no time zone (add Z or +00:00)")
    return moment.astimezone(UTC)
