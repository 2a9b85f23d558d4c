"""Bulk API 2.0 ingest jobs, for a write group above salesforce.bulk_write_threshold (writes.py
decides): about six API calls for up to JOB_RECORDS records, where Composite calls take one per
1,000. Answers come back per record in the shape of sObject Collections answers, so the writes
treat both alike (a refused record fails alone, its error code and message kept).

The lifecycle, each request through the transport (budget-checked, counted, retried on its own;
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/ page names below):
1. create the job (create_job.htm): object, operation (upsert with externalIdFieldName, insert,
   update), CSV with LF line endings;
2. upload the CSV (upload_job_data.htm, PUT text/csv, 201): "upload data that does not exceed
   100 MB" (a bigger group goes as several jobs);
3. close it (close_job.htm, {"state": "UploadComplete"}): "If you don't make this request,
   processing of your data does not start";
4. poll its state with a growing pause (get_job_info.htm; bulk.poll_job) until JobComplete,
   Failed or Aborted;
5. read successfulResults/ (sf__Id, sf__Created; get_job_successful_results.htm) and, only
   when numberRecordsFailed says some failed, failedResults/ (sf__Error;
   get_job_failed_results.htm). Result rows come in no order: each is matched to its record by
   the key column it echoes ("Field data for the row that was provided in the original job
   data upload request"). unprocessedrecords/ is not read: a record in neither set was not
   processed, which is all that resource would say, for one call more.

A record a job did not process (a Failed or Aborted job, or no result for it) answers
SERVER_UNAVAILABLE, retriable: the Applier sends it again, then dead-letters it like any record
refused for a transient reason. Sending again is safe: upserts match by external id and inserts
of a key that exists answer DUPLICATE_VALUE, taken as done (writes.create_missing). The same goes
for a run killed while its job ran: the org finishes the job, and the next run's writes of the
same keys update what it saved instead of duplicating it.

Limits (Bulk API and Bulk API 2.0 Limits and Allocations, https://developer.salesforce.com/docs/
platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-bulkapi.html):
150,000,000 records uploaded a rolling 24 hours; 15,000 batches a day, shared with Bulk API
(Salesforce cuts a 2.0 job into batches itself); each request above is one API call of the
org's daily allocation, like any REST call.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import defaultdict, deque
from typing import Any

from crm_renewals.connector.adapters.salesforce.bulk import MAX_WAIT, poll_job
from crm_renewals.connector.adapters.salesforce.transport import SalesforceTransport

log = logging.getLogger(__name__)

#: Records a job: ours, not Salesforce's (its limit is bytes). The Applier holds a job's records
#: while it runs, so this bounds memory; at 50,000 a job costs ~6 calls where Composite takes 50.
JOB_RECORDS = 50_000
#: upload_job_data.htm: "upload data that does not exceed 100 MB" (150 MB once base64-encoded)
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
NULL = "#N/A"  # datafiles_csv_valid_record_rows.htm: "To set a field value to null, use #N/A"
STATUS_CODE = re.compile(r"^[A-Z_]+$")
FIELD_LIST = re.compile(r"^[A-Za-z0-9_.,]*$")


class BulkIngest:
    """Bulk API 2.0 ingest jobs a call of `write`."""

    def __init__(self, transport: SalesforceTransport, *, max_wait: float = MAX_WAIT):
        self.t = transport
        self.max_wait = max_wait
        #: ids of the jobs this adapter ran, in order (logs and tests)
        self.jobs: list[str] = []

    def write(
        self, obj: str, operation: str, key_field: str, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Per-record answers, in the order of `records` (request bodies as sObject Collections
        takes them), of one job: or several, when the CSV would pass MAX_UPLOAD_BYTES."""
        rows = [{k: v for k, v in r.items() if k != "attributes"} for r in records]
        if operation == "update":  # Collections names the record `id`; a CSV header `Id`
            rows = [{"Id": r.pop("id"), **r} for r in rows]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        data = _csv(columns, rows)
        if len(data) > MAX_UPLOAD_BYTES and len(records) > 1:
            half = len(records) // 2
            return self.write(obj, operation, key_field, records[:half]) + self.write(
                obj, operation, key_field, records[half:]
            )
        return self._job(obj, operation, key_field, [str(r[key_field]) for r in rows], data)

    def _job(
        self, obj: str, operation: str, key_field: str, keys: list[str], data: bytes
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "object": obj,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        if operation == "upsert":
            body["externalIdFieldName"] = key_field
        job = self.t.rest("POST", "jobs/ingest", json=body)["id"]
        self.jobs.append(job)
        path = f"jobs/ingest/{job}"
        log.info("Bulk API 2.0 %s job %s: %d %s records", operation, job, len(keys), obj)
        self.t.response("PUT", f"{path}/batches", data=data, headers={"Content-Type": "text/csv"})
        self.t.rest("PATCH", path, json={"state": "UploadComplete"})
        info = poll_job(self.t, path, self.max_wait)
        if info is None:  # aborted after max_wait: what it did is read back, the rest retried
            minutes = self.max_wait / 60
            info = {"state": "Aborted", "errorMessage": f"still running after {minutes:.0f} min"}
        return self._answers(path, info, key_field, keys)

    def _answers(
        self, path: str, info: dict[str, Any], key_field: str, keys: list[str]
    ) -> list[dict[str, Any]]:
        where: dict[str, deque[int]] = defaultdict(deque)
        for i, key in enumerate(keys):
            where[key].append(i)
        answers: list[dict[str, Any] | None] = [None] * len(keys)
        processed = info.get("numberRecordsProcessed")
        failed = info.get("numberRecordsFailed")
        if processed is None or failed is None or processed > failed:
            for row in self._rows(f"{path}/successfulResults/"):
                created = row.get("sf__Created", "").lower() == "true"
                answer = {"id": row.get("sf__Id"), "success": True, "created": created}
                _place(answers, where, row.get(key_field, ""), {**answer, "errors": []})
        if failed is None or failed > 0:
            for row in self._rows(f"{path}/failedResults/"):
                error = _error(row.get("sf__Error", ""))
                answer = {"success": False, "errors": [error]}
                if row.get("sf__Id"):
                    answer["id"] = row["sf__Id"]
                _place(answers, where, row.get(key_field, ""), answer)
        state = info.get("state")
        why = f"{state}: {info.get('errorMessage') or 'no reason given'}"
        missing = {
            "success": False,
            "errors": [
                {
                    "statusCode": "SERVER_UNAVAILABLE",
                    "message": f"not processed: Bulk API 2.0 job {path.rsplit('/', 1)[-1]} "
                    f"ended {why}",
                }
            ],
        }
        if state != "JobComplete":
            log.warning("Bulk API 2.0 job %s ended %s", path, why)
        return [a if a is not None else missing for a in answers]

    def _rows(self, path: str) -> list[dict[str, str]]:
        response = self.t.response("GET", path, headers={"Accept": "text/csv"})
        text = response.content.decode("utf-8")
        return list(csv.DictReader(io.StringIO(text, newline="")))


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) if c in row else "" for c in columns])
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    """A JSON value as a CSV cell: null (and an empty text, which Salesforce keeps as null) as
    #N/A, since an empty cell leaves the field as it is; booleans as true/false."""
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def _error(text: str) -> dict[str, Any]:
    """sf__Error as a Collections error: `CODE:message:fields --` as orgs write it (the docs say
    only "Error code and message"), else the whole text as the message."""
    code, _, rest = text.partition(":")
    if not STATUS_CODE.match(code):
        return {"statusCode": "UNKNOWN_ERROR", "message": text}
    rest = rest.removesuffix(" --").removesuffix("--")
    message, _, fields = rest.rpartition(":")
    if not message or not FIELD_LIST.match(fields):
        message, fields = rest, ""
    return {"statusCode": code, "message": message, "fields": [f for f in fields.split(",") if f]}


def _place(
    answers: list[dict[str, Any] | None], where: dict[str, deque[int]], key: str, answer: dict
) -> None:
    """Give `answer` to the first record of `key` not answered yet (a row we did not send, or
    one too many, is dropped)."""
    if where.get(key):
        answers[where[key].popleft()] = answer
