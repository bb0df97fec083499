"""Bulk API 2.0 for the fake Salesforce org: ingest (update) jobs and query jobs.

Routes under `/services/data/vNN.0/jobs/`, as simple-salesforce's bulk2.py calls them. An
ingest job's rows are applied when the client closes it (`UploadComplete`), the way the real
service goes on processing after a client dies; polls then report `InProgress` until
`org.bulk_polls_to_complete` polls have been made, then `JobComplete` (or `Failed`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests.fakes.salesforce.soql import parse_soql
from tests.fakes.salesforce.soql_query import Soql
from tests.fakes.salesforce.values import csv_value, format_datetime, make_id
from tests.fakes.salesforce.wire import (
    CSV_TYPE,
    ApiError,
    RecordError,
    Request,
    Response,
    json_response,
)

if TYPE_CHECKING:
    from tests.fakes.salesforce.org import FakeSalesforce

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
CHUNK = 200  # records per transaction (one SystemModstamp per chunk)
_RESULTS = {
    "successfulresults": "success",
    "failedresults": "failed",
    "unprocessedrecords": "unprocessed",
}


@dataclass
class BulkJob:
    id: str
    kind: str  # "ingest" | "query"
    operation: str
    object: str
    version: str
    created: datetime
    line_ending: str = "LF"
    delimiter: str = "COMMA"
    state: str = "Open"
    modstamp: datetime | None = None
    data: bytes | None = None
    header: list[str] = field(default_factory=list)
    success: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    final_state: str = "JobComplete"
    error_message: str | None = None
    polls: int = 0
    soql: Soql | None = None
    ids: list[str] = field(default_factory=list)
    created_by: str = ""

    def info(self, full: bool = True, created: bool = False) -> dict[str, Any]:
        """Job info in the key order of the documented and recorded responses."""
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.version),
        }
        if created and self.kind == "ingest":
            out["contentUrl"] = f"services/data/v{self.version}/jobs/ingest/{self.id}/batches"
        if full:
            out["jobType"] = "V2Ingest" if self.kind == "ingest" else "V2Query"
        out["lineEnding"], out["columnDelimiter"] = self.line_ending, self.delimiter
        if full:
            done = self.state in ("JobComplete", "Failed", "Aborted")
            processed = (
                len(self.success) + len(self.failed)
                if self.kind == "ingest"
                else (len(self.ids) if self.state == "JobComplete" else 0)
            )
            out["numberRecordsProcessed"] = processed if done else 0
            if self.kind == "ingest":
                out["numberRecordsFailed"] = len(self.failed) if done else 0
            out["retries"] = 0
            out["totalProcessingTime"] = 0 if not done else 120 + processed // 10
            if self.kind == "ingest":
                out["apiActiveProcessingTime"] = out["totalProcessingTime"] // 2
                out["apexProcessingTime"] = 0
            if self.state == "Failed" and self.error_message:
                out["errorMessage"] = self.error_message
        return out

    def csv(self, header: list[str], rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=DELIMITERS[self.delimiter],
            lineterminator=LINE_ENDINGS[self.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue().encode()


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except (ValueError, binascii.Error):
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


class BulkApi:
    """The `jobs/` resources; every method runs with the org's lock held."""

    def __init__(self, org: FakeSalesforce):
        self.org = org
        self.jobs: dict[str, BulkJob] = {}
        self.counter = 0

    def handle(self, req: Request, version: str, parts: list[str]) -> Response:
        if not parts or parts[0] not in ("ingest", "query"):
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        kind, rest, method = parts[0], parts[1:], req.method
        if not rest:
            if method == "POST":
                return self.create(req, version, kind)
            if method == "GET":
                jobs = [j.info(full=False) for j in self.jobs.values() if j.kind == kind]
                return json_response(200, {"done": True, "records": jobs, "nextRecordsUrl": None})
            raise self.not_allowed(method, "GET,POST")
        job = self.jobs.get(rest[0])
        if job is None or job.kind != kind:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(rest) == 1:
            if method == "GET":
                return json_response(200, self.poll(job).info())
            if method == "PATCH":
                return self.set_state(job, req)
            if method == "DELETE":
                return self.delete(job)
            raise self.not_allowed(method, "GET,PATCH,DELETE")
        if len(rest) == 2 and kind == "ingest" and rest[1] == "batches":
            if method != "PUT":
                raise self.not_allowed(method, "PUT")
            return self.upload(job, req)
        if len(rest) == 2 and kind == "ingest" and rest[1].lower() in _RESULTS:
            if method != "GET":
                raise self.not_allowed(method, "GET")
            return self.ingest_results(job, _RESULTS[rest[1].lower()])
        if len(rest) == 2 and kind == "query" and rest[1] == "results":
            if method != "GET":
                raise self.not_allowed(method, "GET")
            return self.query_results(job, req)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    @staticmethod
    def not_allowed(method: str, allowed: str) -> ApiError:
        return ApiError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
        )

    def create(self, req: Request, version: str, kind: str) -> Response:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", str(exc)) from None
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        operation = body.get("operation")
        self.counter += 1
        job_id = make_id("750", self.counter)
        now = self.org.now()
        if kind == "query":
            if operation not in ("query", "queryAll"):
                raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
            soql = parse_soql(str(body.get("query") or ""), self.org.sobjects)
            if soql.count_only:
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    "Aggregate queries are not supported by Bulk API 2.0 query jobs",
                )
            job = BulkJob(
                job_id,
                kind,
                operation,
                soql.sobject.name,
                version,
                now,
                line_ending,
                delimiter,
                "UploadComplete",
                soql=soql,
                ids=soql.run(include_deleted=operation == "queryAll"),
            )
            if self.org.bulk_query_failures > 0:
                # the job gives up, as a large unchunked query does ("If you receive a
                # message that the API retried more than 15 times, apply a filter criteria
                # and try again": Understanding Bulk API 2.0 Query)
                self.org.bulk_query_failures -= 1
                job.final_state = "Failed"
                job.error_message = "InternalServerError : Retried more than 15 times"
        else:
            sobject = self.org.sobject(str(body.get("object") or ""))
            if sobject is None:
                raise ApiError(400, "INVALIDJOB", f"Unable to find object: {body.get('object')}")
            if operation != "update":
                raise ApiError(
                    400,
                    "INVALIDJOB",
                    f"The fake org implements only update ingest jobs, not {operation}",
                )
            if body.get("contentType", "CSV") != "CSV":
                raise ApiError(400, "INVALIDJOB", "contentType must be CSV")
            job = BulkJob(
                job_id, kind, operation, sobject.name, version, now, line_ending, delimiter
            )
        job.created_by = self.org.user_id
        self.jobs[job_id] = job
        return json_response(200, job.info(full=False, created=True))

    def poll(self, job: BulkJob) -> BulkJob:
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            done = job.polls >= self.org.bulk_polls_to_complete
            job.state = job.final_state if done else "InProgress"
            job.modstamp = self.org.now()
        return job

    def upload(self, job: BulkJob, req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("text/csv"):
            raise ApiError(400, "INVALIDJOB", "Content-Type must be text/csv")
        if job.state != "Open":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job.id} is not Open")
        if job.data is not None:
            raise ApiError(
                400,
                "INVALIDJOB",
                f"Found multiple contents for job: <{job.id}>, please 'Close' / "
                "'Abort' / 'Delete' the current Job then create a new Job and make "
                "sure you only do 'PUT' once on a given Job.",
            )
        job.data = req.body
        return Response(201)

    def set_state(self, job: BulkJob, req: Request) -> Response:
        try:
            state = json.loads(req.body or b"{}").get("state")
        except (ValueError, AttributeError):
            raise ApiError(400, "JSON_PARSER_ERROR", 'Expected {"state": ...}') from None
        if state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            self.process(job)
            job.state = "UploadComplete"
        elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            if job.state == "Open" and job.kind == "ingest":
                job.header, rows = self.rows(job)
                job.unprocessed = rows
            job.state = "Aborted"
        else:
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Cannot change the state of job {job.id} from {job.state} to {state}",
            )
        job.modstamp = self.org.now()
        return json_response(200, job.info(full=False))

    def delete(self, job: BulkJob) -> Response:
        if job.state in ("Open", "InProgress"):
            raise ApiError(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} must be closed or aborted before it is deleted",
            )
        del self.jobs[job.id]
        return Response(204)

    def rows(self, job: BulkJob) -> tuple[list[str], list[list[str]]]:
        text = (job.data or b"").decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.delimiter])
        table = [row for row in reader if row]
        return (table[0], table[1:]) if table else ([], [])

    def process(self, job: BulkJob) -> None:
        """Apply an update job's rows, in transactions of CHUNK rows; fill its results."""
        org = self.org
        sobject = org.sobjects[job.object]
        job.header, rows = self.rows(job)
        unknown = [c for c in job.header if sobject.field(c) is None]
        if unknown:
            job.final_state = "Failed"
            job.error_message = f"InvalidBatch : Field name not found : {unknown[0]}"
            job.unprocessed = rows
            return
        names = [f["name"] for f in map(sobject.field, job.header) if f is not None]
        id_col = names.index("Id") if "Id" in names else None
        keep = max(0, len(rows) - max(0, org.bulk_leave_unprocessed))
        rows, job.unprocessed = rows[:keep], rows[keep:]
        for start in range(0, len(rows), CHUNK):
            prepared = []
            for row in rows[start : start + CHUNK]:
                cells = row + [""] * (len(names) - len(row))
                raw_id = cells[id_col] if id_col is not None else None
                values = {
                    name: (None if cell == "#N/A" else cell)
                    for i, (name, cell) in enumerate(zip(names, cells, strict=False))
                    if i != id_col and cell != ""
                }
                try:
                    rid, changes = org.prepare_update(sobject, raw_id, values, "csv", bulk=True)
                except RecordError as err:
                    job.failed.append([err.record_id or "", err.as_bulk(), *row])
                    continue
                prepared.append((rid, changes))
                job.success.append([rid, "false", *row])
            org.apply_update(sobject, prepared, org.now())
        rng = random.Random(job.id)  # the service's order is not the upload order
        rng.shuffle(job.success)
        rng.shuffle(job.failed)
        if job.unprocessed:
            job.final_state = "Failed"
            job.error_message = (
                "InternalServerError : the job was not fully processed; see unprocessedrecords"
            )

    def ingest_results(self, job: BulkJob, which: str) -> Response:
        if which == "success":
            body = job.csv(["sf__Id", "sf__Created", *job.header], job.success)
        elif which == "failed":
            body = job.csv(["sf__Id", "sf__Error", *job.header], job.failed)
        else:
            body = job.csv(job.header, job.unprocessed) if job.header else b""
        return Response(200, body, CSV_TYPE)

    def query_results(self, job: BulkJob, req: Request) -> Response:
        if job.state != "JobComplete" or job.soql is None:
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job.id} is not complete")
        offset = decode_locator(req.query["locator"]) if req.query.get("locator") else 0
        try:
            size = int(req.query.get("maxRecords") or 0) or max(1, len(job.ids))
        except ValueError:
            raise ApiError(400, "INVALIDJOB", "maxRecords must be a number") from None
        page = job.ids[offset : offset + size]
        records = job.soql.sobject.records
        columns = job.soql.columns
        rows = [[csv_value(c.get(records[i])) for c in columns] for i in page]
        end = offset + len(page)
        headers = {
            "Sforce-NumberOfRecords": str(len(page)),
            "Sforce-Locator": encode_locator(end) if end < len(job.ids) else "null",
        }
        return Response(200, job.csv([c.header for c in columns], rows), CSV_TYPE, headers)
