"""The CRM port: one small protocol in our vocabulary, implemented by every adapter.

Reads return CRM records as field dicts (the mapping turns them into canonical models); writes
take CRM field dicts produced by the mapping, keyed by our external keys. Batches never exceed
`max_batch`; one record's refusal comes back as a failed WriteResult, not an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Position in a change stream: last-modified stamp, then record id as tie-breaker."""

    modified_at: datetime
    record_id: str = ""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    id: str
    modified_at: datetime
    fields: dict[str, Any]
    deleted: bool = False

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.modified_at, self.id)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    key: str
    fields: dict[str, Any]
    parent_key: str | None = None
    #: the parent's CRM id, when the plan knows it (CPQ's renewal opportunity, read with its
    #: contract): the adapter sets it without looking the parent up by its key
    parent_id: str | None = None
    #: the connector knows the record is in the CRM already (it read or wrote it): an upsert
    #: leaves out the fields set only when a record is created (see `CrmClient.upsert`)
    exists: bool = False


@dataclass(frozen=True, slots=True)
class WriteResult:
    key: str
    ok: bool
    crm_id: str | None = None
    created: bool = False
    error_code: str | None = None
    message: str | None = None
    #: the refusal is transient (a locked row, a per-record 429 or 5xx): worth sending again
    retriable: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of `renewals doctor` / `mappings validate --online` / `setup`."""

    name: str  # what was checked, e.g. "field Opportunity.Renewal_Key__c"
    ok: bool
    detail: str = ""
    fix: str | None = None  # what the admin should do when not ok


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a CRM object as the CRM's schema describes it (Salesforce describe, HubSpot
    properties, the sandbox's schema): what the console's field picker offers."""

    name: str
    label: str
    #: the CRM's own type name (Salesforce and sandbox: string, picklist, double, date, ...;
    #: HubSpot: string, number, enumeration, date, datetime, bool; association: the adapter's)
    type: str
    #: allowed values of a picklist / enumeration (active ones), else empty
    picklist: tuple[str, ...] = ()
    #: the CRM sets it: a mapping can only read it
    read_only: bool = False


class CrmClient(Protocol):
    system: str
    max_batch: int
    api_calls: int
    #: waits between the adapter's retries of a failed call (429, 5xx, timeouts); settable
    sleep: Callable[[float], None]

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        """Pages of records of `kind` changed after `since` (all when None), oldest first,
        deleted ones included and flagged."""
        ...

    def prefetch(self, sinces: Mapping[str, Cursor | None]) -> None:
        """`read_changes(kind, since)` of each of these comes next: an adapter may start them
        together (Salesforce: five first pages in one Composite call)."""
        ...

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        """Current state of the records of `kind` with these CRM ids (webhook refetch); deleted
        ones flagged, unknown ones absent. Batched by the adapter."""
        ...

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        """Create or update by external key; one result per record, in order. Fields a CRM
        takes on insert only (a Salesforce renewal's price book) go with records not known to
        exist. When the kind's mapping has `key_field: Id` (e.g. health fields written to an
        account), the key is the CRM id and the record is updated only: a missing record is a
        failed WriteResult."""
        ...

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        """Create records whose key does not exist yet; existing ones are left untouched."""
        ...

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        """Delete by external key; a key that is already gone counts as deleted."""
        ...

    def close(self) -> None: ...


class Diagnosable(Protocol):
    """What `renewals doctor`, `mappings validate --online` and `setup` ask of an adapter."""

    def doctor(self) -> list[Check]:
        """Credentials, API version, access to every mapped object and field, limits."""
        ...

    def check_mapping_online(self) -> list[Check]:
        """The mapping against the CRM's own schema (describe / properties)."""
        ...

    def setup(self, apply: bool) -> list[Check]:
        """The custom fields/properties the connector needs: reported, or created when `apply`."""
        ...

    def object_fields(self, obj: str) -> list[FieldInfo]:
        """The fields of CRM object `obj`, by name ([] when the CRM has no such object):
        what `doctor` and the online checks read, for pickers and `mappings fields`."""
        ...
