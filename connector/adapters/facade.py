"""What every adapter's facade class shares: the CRM port, delegated to the adapter's parts
(`reads`, `writes`, `diagnosis`), and the transport's call count and retry waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from crm_renewals.connector.ports import (
    Check,
    Cursor,
    FieldInfo,
    OutboundRecord,
    SourceRecord,
    WriteResult,
)


class AdapterFacade:
    """Set `transport`, `reads`, `writes` and `diagnosis` in the subclass's __init__."""

    transport: Any
    reads: Any
    writes: Any
    diagnosis: Any

    @property
    def api_calls(self) -> int:
        return self.transport.api_calls

    @property
    def api_calls_by_kind(self) -> dict[str, int]:
        """API calls by kind of request (composite, collections, query, ...), where the
        transport tells them apart; empty where it does not."""
        return dict(getattr(self.transport, "calls_by_kind", {}))

    @property
    def sleep(self) -> Callable[[float], None]:
        """Waits between retries (Context.sleep: tests and the inbox worker set it)."""
        return self.transport.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], None]) -> None:
        self.transport.sleep = value

    # ------------------------------------------------------------------ the port

    def prefetch(self, sinces: Mapping[str, Cursor | None]) -> None:
        """Reads of these kinds come next (from these cursors): an adapter that can read
        several at once in one call starts them; the others do nothing."""

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        return self.reads.read_changes(kind, since)

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        return self.reads.read_ids(kind, ids)

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.writes.upsert(kind, records)

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.writes.create_missing(kind, records)

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        return self.writes.delete(kind, keys)

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ diagnosis

    def doctor(self) -> list[Check]:
        return self.diagnosis.doctor()

    def check_mapping_online(self) -> list[Check]:
        return self.diagnosis.check_mapping_online()

    def setup(self, apply: bool) -> list[Check]:
        return self.diagnosis.setup(apply)

    def object_fields(self, obj: str) -> list[FieldInfo]:
        return self.diagnosis.object_fields(obj)
