"""Bulk API 2.0 query jobs, for the first or full read of a big kind (reads.py decides): create
the job, wait for it with a growing pause, read its CSV results a set at a time (`maxRecords`,
`Sforce-Locator`), and give each row the shape queryAll's JSON has, so the mapping sees the same
records whichever way they were read (bulk_rows.py).

The lifecycle runs here, each request through the transport (budget-checked, counted, retried
on its own), rather than through simple-salesforce's `sf.bulk2.<Object>.query_all`: that one
waits with `time.sleep` (5 s a poll, not injectable, so tests would wait), sends no timeout, and
a failed results request loses the whole job. Docs:
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

from crm_renewals.connector.adapters.salesforce.transport import SalesforceTransport
from crm_renewals.connector.errors import FatalCrmError, RetriableCrmError

log = logging.getLogger(__name__)

#: Rows per results request: simple-salesforce's default; a set of 50,000 rows of a few
#: hundred bytes each is a few MB held at once (the rows are parsed as they are read).
RESULT_SET_RECORDS = 50_000
#: Pauses between status polls: FIRST_POLL, doubled each time up to MAX_POLL (seconds).
FIRST_POLL, MAX_POLL = 1.0, 30.0
#: Give up (and abort the job) after waiting this long in all: Salesforce itself retries a
#: query job's chunks up to 15 times before failing it (queries.htm).
MAX_WAIT = 4 * 3600.0
#: Terminal states (job states: api_asynch bulk_api_2_job_states.htm).
DONE, FAILED = "JobComplete", ("Failed", "Aborted")


class BulkQuery:
    """One Bulk API 2.0 query job a call of `rows`."""

    def __init__(
        self,
        transport: SalesforceTransport,
        *,
        result_set_records: int = RESULT_SET_RECORDS,
        max_wait: float = MAX_WAIT,
    ):
        self.t = transport
        self.result_set_records = result_set_records
        self.max_wait = max_wait
        #: the last job's id and how many status polls it took (for logs and tests)
        self.job_id: str | None = None
        self.polls = 0

    def rows(self, soql: str, *, include_deleted: bool) -> Iterator[dict[str, str]]:
        """The query's rows as CSV dicts (column -> text), in no particular order."""
        job = self._create(soql, include_deleted)
        self._wait(job)
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": self.result_set_records}
            if locator:
                params["locator"] = locator
            # query_get_job_results.htm: CSV with a header row; Sforce-Locator names the next
            # set, the string "null" after the last one
            response = self.t.response(
                "GET",
                f"jobs/query/{job}/results",
                params=params,
                headers={"Accept": "text/csv"},
            )
            text = response.content.decode("utf-8").replace("\x00", "")
            yield from csv.DictReader(io.StringIO(text, newline=""))
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return

    def _create(self, soql: str, include_deleted: bool) -> str:
        # query_create_job.htm: queryAll also returns records deleted (by a delete or a merge)
        operation = "queryAll" if include_deleted else "query"
        body = {"operation": operation, "query": soql, "contentType": "CSV"}
        job = self.t.rest("POST", "jobs/query", json=body)
        self.job_id, self.polls = job["id"], 0
        log.info("Bulk API 2.0 %s job %s: %s", operation, job["id"], soql)
        return job["id"]

    def _wait(self, job: str) -> None:
        """Poll the job's state until JobComplete; a failed or aborted job stops the read."""
        info = poll_job(self.t, f"jobs/query/{job}", self.max_wait, self._polled)
        if info is None:
            raise RetriableCrmError(
                f"Salesforce's Bulk API 2.0 query job {job} was not done after "
                f"{self.max_wait / 60:.0f} minutes; aborted it, the next run starts again",
                system="salesforce",
                code="BULK_JOB_TIMEOUT",
            )
        state = info.get("state")
        if state in FAILED:
            raise FatalCrmError(
                f"Salesforce's Bulk API 2.0 query job {job} ended {state}: "
                f"{info.get('errorMessage') or 'no reason given'}; nothing of this run was "
                "written and its cursors did not move. Run again, or set "
                "salesforce.bulk_threshold: null to read by REST pages",
                system="salesforce",
                code=f"BULK_JOB_{str(state).upper()}",
                body=str(info),
            )

    def _polled(self) -> None:
        self.polls += 1


def poll_job(
    t: SalesforceTransport, path: str, max_wait: float, polled: Callable[[], None] = lambda: None
) -> dict[str, Any] | None:
    """A Bulk API 2.0 job's info once it is JobComplete, Failed or Aborted, polled with a pause
    of FIRST_POLL doubling to MAX_POLL (`t.sleep`: tests do not wait); None, the job aborted,
    when it is still running after `max_wait` seconds (job states:
    bulk_api_2_job_states.htm)."""
    pause, waited = FIRST_POLL, 0.0
    while True:
        t.sleep(pause)
        waited += pause
        info = t.rest("GET", path)
        polled()
        if info.get("state") in (DONE, *FAILED):
            return info
        if waited >= max_wait:
            abort_job(t, path)
            return None
        pause = min(pause * 2, MAX_POLL)


def abort_job(t: SalesforceTransport, path: str) -> None:
    # query_abort_job.htm, close_job.htm: PATCH {"state": "Aborted"}
    try:
        t.rest("PATCH", path, json={"state": "Aborted"})
    except (FatalCrmError, RetriableCrmError) as exc:
        log.warning("could not abort Bulk API 2.0 job %s: %s", path, exc)
