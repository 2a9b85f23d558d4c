"""The CRM's fields by object, for the mapping editor's field pickers: read through the port
(`object_fields`: Salesforce describe, HubSpot properties, the sandbox's schema) once per
process and connection, kept FIELDS_TTL_S, so opening edit forms costs no CRM call each."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from crm_renewals.connector.ports import FieldInfo
from crm_renewals.console.state import ConnectionState, current

#: a CRM's schema changes when an admin adds a field: seen again after this long
FIELDS_TTL_S = 600


@dataclass
class FieldCache:
    entries: dict[str, tuple[float, tuple[FieldInfo, ...]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, state: ConnectionState, obj: str) -> tuple[FieldInfo, ...]:
        with self.lock:
            found = self.entries.get(obj)
            if found and time.time() - found[0] < FIELDS_TTL_S:
                return found[1]
        with state.context() as ctx:
            fields = tuple(ctx.crm.object_fields(obj))
        with self.lock:
            self.entries[obj] = (time.time(), fields)
        return fields


def crm_fields(obj: str) -> tuple[FieldInfo, ...]:
    """The fields of CRM object `obj` (empty: the CRM has no such object); a ConnectorError
    when the CRM cannot be reached."""
    state = current()
    cache = state.memo.setdefault("crm_fields", FieldCache())
    return cache.get(state, obj)
