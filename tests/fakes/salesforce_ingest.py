"""Bulk API 2.0 ingest jobs on the fake org (tests/fakes/salesforce_org.py routes
/services/data/vXX.X/jobs/ingest* here): create, upload the CSV, close (UploadComplete) or abort,
poll, and the successful, failed and unprocessed records, as the Bulk API 2.0 developer guide
describes them. Each request is one API call of the org's daily allocation (FakeOrg.answer
counts it before it gets here), as for query jobs (tests/fakes/salesforce_bulk.py says why).

Rules, each from https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
(page names below) unless another address is given:
- Create (create_job.htm): POST jobs/ingest {object, operation, externalIdFieldName (required
  for upsert), contentType CSV, lineEnding LF|CRLF}; the job answers state Open and its
  contentUrl.
- Upload (upload_job_data.htm): PUT the CSV to jobs/ingest/<id>/batches, text/csv, answered 201
  with no body; "A request can provide CSV data that does not in total exceed 150 MB of base64
  encoded content" (the error's code for more is not documented: INVALIDBATCH here).
- Close (close_job.htm): PATCH {"state": "UploadComplete"}; "If you don't make this request,
  processing of your data does not start" (bulk-api-2-0-ingest.html). Abort: {"state":
  "Aborted"}. The org then processes the job whether or not anyone polls it: a client that
  dies after closing finds its records saved.
- CSV (datafiles_prepare_csv.htm, datafiles_csv_valid_record_rows.htm): the header row names
  the fields; "Empty field values are ignored when you update records. To set a field value to
  null, use a field value of #N/A."
- Poll (get_job_info.htm): state UploadComplete, InProgress, then JobComplete, Failed or
  Aborted (errorMessage says why), numberRecordsProcessed and numberRecordsFailed.
- successfulResults/ (get_job_successful_results.htm): CSV of sf__Id, sf__Created and "Field
  data for the row that was provided in the original job data upload request"; failedResults/
  (get_job_failed_results.htm): sf__Id, sf__Error ("Error code and message"; the text
  `CODE:message:fields --` is how orgs write it, unconfirmed in the docs) and the row;
  unprocessedrecords/ (get_job_unprocessed_results.htm): the rows "not processed by the job",
  for failed or aborted jobs. "The order of records in the response is not guaranteed to match
  the ordering of records in the original job data": shuffled here.
- Each record is saved as the REST API saves it (the org's own upsert, insert, update and
  per-record refusals), so a record refused by a Collections call is refused by a job too.

Tests choose how many polls a job takes (`polls_to_complete`), make the next job fail part way
(`fail_next`), and see every job (`jobs`, with its operation, rows and polls).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from typing import TYPE_CHECKING, Any

from tests.fakes.salesforce_bulk import new_job

if TYPE_CHECKING:
    from tests.fakes.salesforce_org import FakeOrg

#: "150 MB of base64 encoded content" a job's upload (upload_job_data.htm)
MAX_UPLOAD_BASE64 = 150 * 1024 * 1024
OPERATIONS = ("insert", "update", "upsert", "delete")
TERMINAL = ("JobComplete", "Failed", "Aborted")
NUMBERS = {"double", "currency", "percent"}


def _error(status: int, code: str, message: str) -> tuple[int, dict, str]:
    return status, {}, json.dumps([{"errorCode": code, "message": message}])


class FakeIngestJobs:
    def __init__(self, org: FakeOrg, version: str):
        self.org = org
        self.version = version
        self.jobs: dict[str, dict[str, Any]] = {}
        #: status polls a job answers before its end state (it is processed at close)
        self.polls_to_complete = 2
        #: the next closed job stops after this many rows, Failed with this errorMessage
        self.fail_next: tuple[int, str] | None = None

    def answer(self, method: str, path: str, body: Any, headers) -> tuple[int, dict, str]:
        parts = path.strip("/").split("/")[2:]  # jobs/ingest/<id>/<what>
        if method == "POST" and not parts:
            return self._create(_json(body))
        if not parts or parts[0] not in self.jobs:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        job = self.jobs[parts[0]]
        what = parts[1] if len(parts) > 1 else None
        if what == "batches" and method == "PUT":
            return self._upload(job, body, headers)
        if what is None and method == "PATCH":
            return self._change(job, _json(body).get("state"))
        if what is None and method == "GET":
            return 200, {}, json.dumps(self._poll(job))
        if what in ("successfulResults", "failedResults", "unprocessedrecords") and method == "GET":
            return self._results(job, what)
        return _error(404, "NOT_FOUND", f"no fake for {method} {path}")

    # ------------------------------------------------------------------ lifecycle

    def _create(self, body: dict) -> tuple[int, dict, str]:
        obj, operation = body.get("object"), body.get("operation")
        if operation not in OPERATIONS:
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        if obj not in self.org.schema:
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid object: {obj}")
        external = body.get("externalIdFieldName")
        if operation == "upsert" and not external:
            return _error(400, "INVALIDJOB", "InvalidJob : externalIdFieldName is required")
        job = new_job(self.org, operation, obj, "Open")
        job_id = job["id"]
        self.jobs[job_id] = {
            **job,
            "externalIdFieldName": external,
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{self.version}/jobs/ingest/{job_id}/batches",
            "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": body.get("columnDelimiter", "COMMA"),
            # not shown: the rows and what became of them
            "_rows": [],
            "_header": [],
            "_done": [],  # (row, sf__Id, created, error or None)
            "_left": [],
            "_polls": 0,
        }
        return 200, {}, json.dumps(_shown(self.jobs[job_id]))

    def _upload(self, job: dict, body: Any, headers) -> tuple[int, dict, str]:
        if job["state"] != "Open":
            return _error(400, "INVALIDJOBSTATE", f"Job {job['id']} is not Open")
        if "text/csv" not in (headers.get("Content-Type") or ""):
            return _error(400, "INVALIDBATCH", "InvalidBatch : the job data must be text/csv")
        data = body.encode() if isinstance(body, str) else (body or b"")
        if len(base64.b64encode(data)) > MAX_UPLOAD_BASE64:
            return _error(400, "INVALIDBATCH", "InvalidBatch : more than 150 MB of job data")
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        rows = list(reader)
        if not rows:
            return _error(400, "INVALIDBATCH", "InvalidBatch : no header row")
        job["_header"], job["_rows"] = rows[0], job["_rows"] + rows[1:]
        return 201, {}, ""

    def _change(self, job: dict, state: str | None) -> tuple[int, dict, str]:
        if state == "Aborted" and job["state"] not in TERMINAL:
            job["state"] = "Aborted"
            job["_left"] = job["_rows"][len(job["_done"]) :]
        elif state == "UploadComplete" and job["state"] == "Open":
            job["state"] = "UploadComplete"
            self._process(job)
        else:
            return _error(400, "INVALIDJOBSTATE", f"Job {job['id']} cannot be set {state}")
        return 200, {}, json.dumps(_shown(job))

    def _process(self, job: dict) -> None:
        """Save every row as the REST API would (processing does not wait for a poll)."""
        fail, self.fail_next = self.fail_next, None
        rows = job["_rows"]
        stop = fail[0] if fail else len(rows)
        for row in rows[:stop]:
            cells = dict(zip(job["_header"], row, strict=False))
            job["_done"].append((row, *self._save(job, cells)))
        job["_left"] = rows[stop:]
        if fail:
            job["_end"], job["errorMessage"] = "Failed", fail[1]
        else:
            job["_end"] = "JobComplete"

    def _save(self, job: dict, cells: dict[str, str]) -> tuple[str, bool, str | None]:
        obj, op = job["object"], job["operation"]
        fields = {k: self._value(obj, k, v) for k, v in cells.items() if v != ""}
        org = self.org
        if op == "delete":
            answer = org._delete(fields.get("Id", ""))
        else:
            rec = {"attributes": {"type": obj}, **fields}
            answer = org._refused(obj, rec)
            if answer is None and op == "upsert":
                answer = org._upsert(obj, job["externalIdFieldName"], rec)
            elif answer is None and op == "insert":
                answer = org._create(rec)
            elif answer is None:
                rec["id"] = rec.pop("Id", None)
                answer = org._update(rec)
        if answer.get("success"):
            return answer["id"], bool(answer.get("created", op == "insert")), None
        error = answer["errors"][0]
        text = f"{error['statusCode']}:{error['message']}:{','.join(error.get('fields') or [])} --"
        return answer.get("id") or "", False, text

    def _value(self, obj: str, name: str, text: str) -> Any:
        from tests.fakes.salesforce_org import TYPES

        if text == "#N/A":
            return None
        kind = TYPES.get(name)
        if kind == "boolean":
            return text.lower() == "true"
        if kind in NUMBERS:
            return float(text)
        return text

    def _poll(self, job: dict) -> dict:
        job["_polls"] += 1
        if job["state"] in ("UploadComplete", "InProgress"):
            job["state"] = "InProgress"
            if job["_polls"] > self.polls_to_complete:
                job["state"] = job["_end"]
        return {
            **_shown(job),
            "numberRecordsProcessed": len(job["_done"]) if job["state"] in TERMINAL else 0,
            "numberRecordsFailed": sum(1 for d in job["_done"] if d[3] is not None)
            if job["state"] in TERMINAL
            else 0,
            "retries": 0,
            "totalProcessingTime": 100 * job["_polls"],
        }

    def _results(self, job: dict, what: str) -> tuple[int, dict, str]:
        if job["state"] not in TERMINAL:
            return _error(400, "INVALIDJOBSTATE", f"Job {job['id']} is not complete")
        if what == "successfulResults":
            header = ["sf__Id", "sf__Created", *job["_header"]]
            rows = [[i, str(c).lower(), *r] for r, i, c, e in job["_done"] if e is None]
        elif what == "failedResults":
            header = ["sf__Id", "sf__Error", *job["_header"]]
            rows = [[i, e, *r] for r, i, c, e in job["_done"] if e is not None]
        else:
            header, rows = job["_header"], list(job["_left"])
        random.Random(job["id"] + what).shuffle(rows)
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return 200, {"Content-Type": "text/csv"}, out.getvalue()


def _json(body: Any) -> dict:
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body) if body else {}


def _shown(job: dict) -> dict:
    return {k: v for k, v in job.items() if not k.startswith("_")}
