"""Gather: load the mirror into a Book, then pull what changed in the CRM since each cursor;
`ingest` maps records read from the CRM (pulled or refetched) into the book and the mirror."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.mapping import Mapping, get_path, to_model
from crm_renewals.connector.domain.models import MODELS, READ_KINDS, to_json, validate
from crm_renewals.connector.errors import MappingError
from crm_renewals.connector.ports import Cursor, SourceRecord
from crm_renewals.connector.services import runlog
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.reading import Reading
from crm_renewals.connector.services.scope import Scope, Touched, scope
from crm_renewals.connector.state import StateStore

Progress = Callable[[str, int], None]
#: For each kind whose failure makes a contract unplannable: canonical field naming the contract
#: (a renewal line names it through its renewal's key, "<contract id>:<term end date>"). A
#: contract whose renewal or renewal line cannot be read is not planned: its plan would not
#: see them (and could write over them).
CONTRACT_OF = {
    "contract": "id",
    "contract_line": "contract_id",
    "renewal_opportunity": "contract_id",
    "renewal_line": "renewal_key",
}


@dataclass
class Gathered:
    """What a run planned from: the book (the whole of it, or the accounts of `scope`), the
    cursors to commit once its writes succeed, what was read, and when reading began."""

    book: Book
    cursors: dict[str, Cursor]
    reading: Reading
    read_at: datetime
    scope: Scope | None


def gather(
    ctx: Context,
    *,
    full: bool,
    dry_run: bool,
    run_id: int | None,
    progress: Progress | None = None,
    as_of: date | None = None,
    whole: bool = False,
) -> Gathered:
    """The book as the CRM holds it now: the changes since each cursor (all of them if
    `full`), read before the first write (every record is mapped here). An incremental run
    then loads only the accounts its scope names (connector/services/scope.py); a full run, a
    dry run (which writes no mirror to load from), a `whole` one and any run the scope finds
    too large load the whole mirror first and read the changes into it."""
    read_at, reading = datetime.now(UTC), Reading()
    args = {"full": full, "dry_run": dry_run, "run_id": run_id, "progress": progress}
    if not (full or dry_run or whole or as_of is None):
        touched = Touched()
        cursors = pull_changes(ctx, Book(), **args, reading=reading, touched=touched)
        found = scope(ctx.store, touched, as_of)
        if found is not None:
            return Gathered(load_book(ctx.store, found), cursors, reading, read_at, found)
        return Gathered(load_book(ctx.store), cursors, reading, read_at, None)
    book = load_book(ctx.store)
    cursors = pull_changes(ctx, book, **args, reading=reading)
    return Gathered(book, cursors, reading, read_at, None)


def load_book(store: StateStore, only: Scope | None = None) -> Book:
    """The synced book: the mirror's records (no CRM call); `only`: its accounts'."""
    book = Book()
    rows = store.mirror.stream_accounts(only.accounts, only.contracts) if only else None
    for kind, record_id, parent_id, deleted, data, error in rows or store.mirror.stream():
        if error is not None:
            if parent_id:
                book.mark_broken(parent_id, f"{kind} {record_id}", error)
            continue
        if data is None:
            continue
        model = validate(MODELS[kind], data)
        if deleted:
            _note_deleted(book, kind, model)
        else:
            book.put(kind, record_id, model)
    return book


def _note_deleted(book: Book, kind: str, model) -> None:
    if kind == "renewal_line" and model.key:
        book.note_deleted_line(model.key)
    elif kind == "renewal_opportunity":
        book.deleted_renewal_keys.add(model.key)
    elif kind == "contract":
        book.deleted_contracts.add(model.id)


def pull_changes(
    ctx: Context,
    book: Book,
    *,
    full: bool,
    dry_run: bool,
    run_id: int | None,
    progress: Progress | None = None,
    reading: Reading | None = None,
    touched: Touched | None = None,
) -> dict[str, Cursor]:
    """Read every kind's changes into the book (and the mirror unless dry-run); `touched`
    learns what they name. Returns the cursors to commit once the run's writes succeed."""
    new_cursors: dict[str, Cursor] = {}
    sinces = {kind: None if full else _since(ctx, kind) for kind in READ_KINDS}
    ctx.crm.prefetch(sinces)
    for kind, since in sinces.items():
        records = 0
        for page in ctx.crm.read_changes(kind, since):
            before = _settled(ctx, kind, page) if touched is not None else {}
            rows = ingest(ctx, book, kind, page, run_id, mirror=not dry_run, reading=reading)
            if touched is not None:
                touched.add(rows, before)
            new_cursors[kind] = page[-1].cursor
            records += len(page)
            if progress:
                progress(kind, len(page))
        runlog.read(kind, records, since, full)
    return new_cursors


def _settled(ctx: Context, kind: str, page: list[SourceRecord]) -> dict[str, tuple]:
    """id -> (deleted, data, error) of these records as the mirror holds them, where a run that
    completed saved them (and so planned what they say): read again unchanged, they touch
    nothing. What a killed or failed run saved is not settled: it may have planned part of it."""
    found = ctx.store.mirror.mapped(kind, [r.id for r in page])
    done = ctx.store.runs.completed({run for _, run in found.values() if run is not None})
    return {rid: mapped for rid, (mapped, run) in found.items() if run in done}


def _since(ctx: Context, kind: str) -> Cursor | None:
    """Where to read `kind` from: after its cursor, and back to the overlap before the last
    read's start (records stamped before it were all visible then: a late commit, or a clock
    behind ours, is covered by `sync.overlap_seconds`). Before read times were kept: the
    overlap before the cursor."""
    cursor = ctx.store.cursors.get(kind)
    if cursor is None:
        return None
    overlap = timedelta(seconds=ctx.config.sync.overlap_seconds)
    read_at = ctx.store.cursors.read_at(kind)
    settled = (read_at or cursor.modified_at) - overlap
    return cursor if settled > cursor.modified_at else Cursor(settled, "")


def ingest(
    ctx: Context,
    book: Book,
    kind: str,
    records: Iterable[SourceRecord],
    run_id: int | None,
    *,
    mirror: bool = True,
    reading: Reading | None = None,
) -> list[dict[str, Any]]:
    """Map CRM records of one kind into the book and, if `mirror` (not in a dry run), into the
    mirror: their rows saved, their mapping failures dead-lettered, earlier failures of those
    that map now resolved. `reading` counts them and their failures. Returns their rows."""
    rows, letters, fixed = [], [], []
    for rec in records:
        row, letter, error = map_record(ctx.mapping, book, kind, rec)
        row["run_id"] = run_id
        rows.append(row)
        if letter:
            letters.append(letter)
        else:
            fixed.append(rec.id)
        if reading is not None:
            reading.read[kind] += 1
            if letter and error:
                reading.fail(error)
    if mirror:  # a page's rows and its letters commit together
        with ctx.store.begin() as uow:
            uow.mirror.save(rows)
            uow.dead_letters.add(letters, run_id)
            uow.dead_letters.resolve(kind, fixed)
    return rows


class Mapped(NamedTuple):
    """One record mapped: its mirror row; if it failed, its dead letter and the error."""

    row: dict[str, Any]
    letter: dict[str, Any] | None
    error: MappingError | None


def map_record(mapping: Mapping, book: Book, kind: str, rec: SourceRecord) -> Mapped:
    """Map one CRM record into the book. A failure is dead-lettered (a deleted record's is
    not: it is gone) naming its contract, which is then not planned."""
    row = {
        "kind": kind,
        "id": rec.id,
        "parent_id": None,
        "modified_at": rec.modified_at,
        "deleted": rec.deleted,
        "raw": rec.fields,
        "data": None,
        "error": None,
    }
    contract_id = _contract_ref(mapping, kind, rec)
    ref = f"{kind} {rec.id}"
    try:
        model = to_model(mapping, kind, rec.fields)
    except MappingError as err:
        book.drop(kind, rec.id)
        if rec.deleted:
            if contract_id:
                book.clear_broken(contract_id, ref)
            return Mapped(row, None, err)
        row.update(error=str(err), parent_id=contract_id)
        if contract_id:
            book.mark_broken(contract_id, ref, str(err))
        letter = {
            "stage": "read",
            "kind": kind,
            "record_id": rec.id,
            "contract_id": contract_id,
            "field": err.field,
            "value": err.value,
            "error_code": "MAPPING_ERROR",
            "message": str(err),
        }
        return Mapped(row, letter, err)
    if contract_id:
        book.clear_broken(contract_id, ref)
    row["data"] = to_json(model)
    if rec.deleted:
        book.drop(kind, rec.id)
        _note_deleted(book, kind, model)
    else:
        book.put(kind, rec.id, model)
    return Mapped(row, None, None)


def _contract_ref(mapping: Mapping, kind: str, rec: SourceRecord) -> str | None:
    """The contract a record belongs to, read from its raw fields (it may not map)."""
    if kind not in CONTRACT_OF:
        return None
    if kind == "contract":
        return rec.id
    spec = mapping.models[kind].fields.get(CONTRACT_OF[kind])
    value = get_path(rec.fields, spec.field) if spec and spec.field else None
    if not value:
        return None
    return str(value).rsplit(":", 1)[0] if kind == "renewal_line" else str(value)
