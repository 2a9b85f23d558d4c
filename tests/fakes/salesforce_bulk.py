"""Bulk API 2.0 query jobs on the fake org (tests/fakes/salesforce_org.py routes
/services/data/vXX.X/jobs/query* here): create, poll, results in sets with Sforce-Locator,
abort and delete, as the Bulk API 2.0 developer guide describes them. Every request is one API
call of the org's daily allocation (FakeOrg.answer counts it before it gets here): the request
allocation "appl[ies] to Salesforce Platform SOAP and REST APIs and any other API built on those
frameworks" (https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/
guide/salesforce-app-limits-platform-api.html), and Bulk API 2.0 is served under /services/data.

Tests choose how many polls a job takes (`polls_to_complete`) and make the next job fail
(`fail_next`); `jobs` keeps every job (its query, state and polls) for assertions.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.salesforce_org import FakeOrg

DOCS = "https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/"
#: SOQL Bulk API 2.0 refuses (queries.htm, "SOQL Considerations"): GROUP BY, OFFSET and TYPEOF
#: clauses, aggregate functions such as COUNT(), parent-to-child (nested) queries
UNSUPPORTED = (
    (re.compile(r"\bGROUP BY\b", re.I), "GROUP BY"),
    (re.compile(r"\bOFFSET\b", re.I), "OFFSET"),
    (re.compile(r"\bTYPEOF\b", re.I), "TYPEOF"),
    (re.compile(r"\b(COUNT|COUNT_DISTINCT|SUM|AVG|MIN|MAX)\s*\(", re.I), "aggregate functions"),
    (re.compile(r"\(\s*SELECT\b", re.I), "parent-to-child (nested) queries"),
)
#: the set size when a results request names no maxRecords ("the server uses a default value
#: based on the service": query_get_job_results.htm)
DEFAULT_SET = 100_000


def new_job(org: FakeOrg, operation: str, obj: str, state: str) -> dict[str, Any]:
    """A new Bulk API 2.0 job's info (query_create_job.htm, create_job.htm)."""
    from tests.fakes.salesforce_org import VERSION

    stamp = org.now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {
        "id": f"750FK{next(org.counter):010d}AAA",
        "operation": operation,
        "object": obj,
        "createdById": "005FK0000000001AAA",
        "createdDate": stamp,
        "systemModstamp": stamp,
        "state": state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": float(VERSION),
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }


def _error(status: int, code: str, message: str) -> tuple[int, dict, str]:
    # Bulk API 2.0 errors answer like REST's: [{"errorCode", "message"}] (bulk_api_2_0_errors.htm
    # points to REST's "Status Codes and Error Responses")
    return status, {}, json.dumps([{"errorCode": code, "message": message}])


class FakeBulkJobs:
    def __init__(self, org: FakeOrg):
        self.org = org
        self.jobs: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.columns: dict[str, list[str]] = {}
        #: status polls a job answers InProgress before JobComplete (the first answers
        #: UploadComplete: query_create_job.htm shows a new job in that state)
        self.polls_to_complete = 2
        #: the next job ends in this state ("Failed" or "Aborted") with this errorMessage
        self.fail_next: tuple[str, str] | None = None

    def answer(self, method: str, path: str, query: dict, body: Any) -> tuple[int, dict, str]:
        parts = path.strip("/").split("/")[2:]  # jobs/query/<id>/results
        if method == "POST" and not parts:
            return self._create(body or {})
        if not parts or parts[0] not in self.jobs:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        job = self.jobs[parts[0]]
        if len(parts) == 2 and parts[1] == "results" and method == "GET":
            return self._results(job, query)
        if len(parts) == 1 and method == "GET":
            return 200, {}, json.dumps(self._poll(job))
        if len(parts) == 1 and method == "PATCH":  # query_abort_job.htm
            if (body or {}).get("state") != "Aborted" or job["state"] in ("JobComplete", "Failed"):
                return _error(400, "INVALIDJOBSTATE", f"Job {job['id']} cannot be aborted")
            job["state"] = "Aborted"
            return 200, {}, json.dumps(job)
        if len(parts) == 1 and method == "DELETE":  # query_delete_job.htm: 204, no body
            del self.jobs[job["id"]]
            return 204, {}, ""
        return _error(404, "NOT_FOUND", f"no fake for {method} {path}")

    # ------------------------------------------------------------------ lifecycle

    def _create(self, body: dict) -> tuple[int, dict, str]:
        """query_create_job.htm: operation query or queryAll, the SOQL in `query`."""
        operation, soql = body.get("operation"), body.get("query") or ""
        if operation not in ("query", "queryAll"):
            return _error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        for pattern, what in UNSUPPORTED:
            if pattern.search(soql):
                return _error(400, "INVALIDJOB", f"InvalidJob : {what} not supported in bulk query")
        from tests.fakes.salesforce_org import SoqlError

        try:
            obj, names, rows = self.org.select_rows(soql, include_deleted=operation == "queryAll")
        except SoqlError as exc:
            return _error(400, "INVALID_FIELD", str(exc))
        job = new_job(self.org, operation, obj, "UploadComplete")
        job_id = job["id"]
        self.jobs[job_id] = {**job, "query": soql, "polls": 0}
        cells = [[self._cell(self.org._value(obj, r, n)) for n in names] for r in rows]
        # results come in no particular order (Bulk API 2.0 splits a job into chunks run in
        # parallel: queries.htm); shuffled so that nothing can rely on an order
        random.Random(job_id).shuffle(cells)
        self.rows[job_id], self.columns[job_id] = cells, names
        if self.fail_next is not None:
            self.jobs[job_id]["fail"], self.fail_next = self.fail_next, None
        return 200, {}, json.dumps(job)

    def _poll(self, job: dict) -> dict:
        """query_get_one_job.htm: UploadComplete, then InProgress, then JobComplete (or Failed
        / Aborted with an errorMessage: bulk_api_2_job_states.htm)."""
        job["polls"] += 1
        if job["state"] in ("UploadComplete", "InProgress"):
            job["state"] = "InProgress"
            if job["polls"] > self.polls_to_complete:
                fail = job.get("fail")
                if fail:
                    job["state"], job["errorMessage"] = fail
                else:
                    job["state"] = "JobComplete"
                    job["numberRecordsProcessed"] = len(self.rows[job["id"]])
        shown = {k: v for k, v in job.items() if k not in ("query", "polls", "fail")}
        return {**shown, "retries": 0, "totalProcessingTime": 100 * job["polls"]}

    def _results(self, job: dict, query: dict) -> tuple[int, dict, str]:
        """query_get_job_results.htm: only of a JobComplete job; CSV with a header row, at most
        maxRecords rows; Sforce-Locator names the next set ("null" after the last one),
        Sforce-NumberOfRecords counts this set's rows."""
        if job["state"] != "JobComplete":
            return _error(400, "INVALIDJOBSTATE", f"Job {job['id']} is not JobComplete")
        try:
            size = int(query.get("maxRecords") or DEFAULT_SET)
            start = int(base64.b64decode(query["locator"] + "==")) if query.get("locator") else 0
        except ValueError:
            return _error(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
        if size < 1:
            return _error(400, "INVALIDLOCATOR", "maxRecords must be a positive integer")
        rows = self.rows[job["id"]]
        chunk = rows[start : start + size]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(self.columns[job["id"]])
        writer.writerows(chunk)
        following = start + len(chunk)
        # the doc's example locator is "MTAwMDA": base64 of the next row's offset, unpadded
        locator = (
            base64.b64encode(str(following).encode()).decode().rstrip("=")
            if following < len(rows)
            else "null"
        )
        headers = {
            "Content-Type": "text/csv",
            "Sforce-Locator": locator,
            "Sforce-NumberOfRecords": str(len(chunk)),
        }
        return 200, headers, out.getvalue()

    @staticmethod
    def _cell(value: Any) -> str:
        """A CSV cell as Bulk API 2.0 writes it: empty for null, true/false, datetimes in UTC
        with a Z."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", text):
            return text[:-5] + "Z"
        return text
