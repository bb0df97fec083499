"""Writing Account fields back to Salesforce, and creating the output fields.

Two ways, chosen per run by `SalesforceConnector.begin_write`; the writers get what they
use (the client, the allowance check, the object's name) and never the connector:

- sObject Collections (`PATCH composite/sobjects`, up to 200 records a call,
  `allOrNone: false`): Salesforce answers one SaveResult per record, in request order,
  inside an HTTP 200 even when some records fail.
- a Bulk API 2.0 ingest job for large change sets: the batch is uploaded as CSV
  (`#N/A` clears a field, an empty cell leaves it alone), and the job's
  `successfulResults`, `failedResults` and unprocessed records are read back into one
  result per record (their rows come back in any order; they are matched by Id).

Per-record error codes decide what happens next: a row lock is transient (the writer
retries the record), a deleted record leaves the engine's state, anything else
(validation rules, too-long text, read-only fields) is kept as a failure with
Salesforce's code and message and is not retried blindly.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from icp_engine.connectors.base import FieldCreation, RecordUpdate, WriteResult
from icp_engine.connectors.errors import TransientError
from icp_engine.connectors.mapping import OutputField
from icp_engine.connectors.salesforce.session import TRANSIENT_CODES, error_code, translate
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

log = logging.getLogger(__name__)
BULK_NULL = "#N/A"
DELETED_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
"""Updating a record that no longer exists (deleted, or purged from the recycle bin)."""


def result_for(record_id: str, code: str, message: str, fields: Sequence[str] = ()) -> WriteResult:
    """A failed record's result, classified by Salesforce's status code."""
    where = f" ({', '.join(fields)})" if fields else ""
    return WriteResult(
        record_id,
        ok=False,
        code=code,
        message=f"{message}{where}",
        transient=code in TRANSIENT_CODES,
        deleted=code in DELETED_CODES,
    )


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class CollectionsWriter:
    """sObject Collections update: one call per batch of up to 200 records.

    Args:
        client: the logged-in simple-salesforce client.
        object_name: the account object (`Account`).
        check_allowance: raises `LimitReachedError` once the run may make no more calls.
    """

    def __init__(
        self, client: Salesforce, object_name: str, check_allowance: Callable[[], None]
    ) -> None:
        self.client, self.object, self.check_allowance = client, object_name, check_allowance

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        payload = {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": self.object},
                    "Id": update.record_id,
                    **{name: _json_value(value) for name, value in update.values.items()},
                }
                for update in batch
            ],
        }
        self.check_allowance()
        try:
            answer = self.client.restful("composite/sobjects", method="PATCH", json=payload)
        except Exception as exc:
            raise translate(exc, f"writing {len(batch)} {self.object} records") from exc
        if not isinstance(answer, list) or not all(isinstance(a, dict) for a in answer):
            # not the SaveResult array: it confirms nothing (the writer retries them all)
            msg = f"writing {len(batch)} {self.object} records: the answer is not SaveResults"
            raise TransientError(msg)
        results = []  # one SaveResult per record, in request order; records past the end
        for update, saved in zip(batch, answer, strict=False):  # get none: NO_RESULT
            if saved.get("success"):
                results.append(WriteResult(update.record_id, ok=True))
                continue
            errors = saved.get("errors") or [{}]
            first = errors[0]
            results.append(
                result_for(
                    update.record_id,
                    str(first.get("statusCode", "UNKNOWN")),
                    str(first.get("message", "")),
                    first.get("fields") or (),
                )
            )
        return results


class BulkWriter:
    """A Bulk API 2.0 ingest job per batch (`bulk_job_size` records).

    The job is driven step by step (create, upload, close, wait) with simple-salesforce's
    Bulk 2.0 client rather than `update()`, which raises on a `Failed` job and loses its
    id: a job that ends `Failed` may have saved rows ("Understanding Bulk API 2.0
    Ingest": a failed job's remaining data isn't processed; "use the Failed Record
    Results and Get Job Unprocessed Record Results resources" to find out which,
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_bulk_v2/datafiles_understanding_bulk2_ingest.htm).
    So its results are always read: saved rows count as written, failed rows carry their
    own error, unprocessed rows are retried.
    """

    CALLS_PER_JOB = 7
    """Create, upload, close, poll (at least once), and three result reads."""

    def __init__(
        self,
        client: Salesforce,
        object_name: str,
        check_allowance: Callable[[], None],
        poll_seconds: float,
    ) -> None:
        self.client, self.object, self.check_allowance = client, object_name, check_allowance
        self.poll_seconds = poll_seconds

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        self.check_allowance()
        handler = getattr(self.client.bulk2, self.object)
        client = handler._client  # the job's id must outlive a failed job
        columns = list(dict.fromkeys(name for u in batch for name in u.values))
        buffer = io.StringIO()
        _write_csv(buffer, columns, batch)
        try:
            job_id = str(client.create_job(Operation.update)["id"])
        except Exception as exc:
            raise translate(exc, f"bulk update of {len(batch)} records") from exc
        try:
            client.upload_job_data(job_id, buffer.getvalue())
            client.close_job(job_id)
        except Exception as exc:
            with contextlib.suppress(Exception):  # an open job would hold its rows
                client.abort_job(job_id, False)
            raise translate(exc, f"bulk update of {len(batch)} records") from exc
        failure: str | None = None
        try:
            client.wait_for_job(job_id, False, self.poll_seconds)
        except SalesforceOperationError as exc:  # Failed, Aborted, or still running
            failure = _clean(str(exc))[:500]
            log.warning("Bulk API 2.0 job %s did not complete: %s", job_id, failure)
        except Exception as exc:
            raise translate(exc, f"waiting for bulk job {job_id}") from exc
        results = self._results(handler, job_id, failure)
        if failure is None:
            return [results[u.record_id] for u in batch if u.record_id in results]
        field = _MISSING_FIELD.search(failure)
        return [
            results.get(u.record_id)
            or WriteResult(
                u.record_id,
                ok=False,
                code="BULK_JOB_FAILED",
                message=(failure + _field_hint(self.object, field.group(1)))
                if field
                else f"bulk job {job_id} ended without processing it: {failure}",
                transient=field is None,
            )
            for u in batch
        ]

    def _results(self, handler: Any, job_id: str, failure: str | None) -> dict[str, WriteResult]:
        results: dict[str, WriteResult] = {}
        try:
            for row in _rows(handler.get_successful_records(job_id)):
                record_id = row.get("sf__Id") or row.get("Id", "")
                results[record_id] = WriteResult(record_id, ok=True)
            for row in _rows(handler.get_failed_records(job_id)):
                record_id = row.get("Id") or row.get("sf__Id", "")
                code, _, message = row.get("sf__Error", "").partition(":")
                results[record_id] = result_for(record_id, code, message.removesuffix(":--"))
            if failure is None or not _MISSING_FIELD.search(failure):
                for row in _rows(handler.get_unprocessed_records(job_id)):
                    record_id = row.get("Id", "")
                    results[record_id] = WriteResult(
                        record_id,
                        ok=False,
                        code="UNPROCESSED",
                        message=f"not processed by bulk job {job_id}"
                        + (f" ({failure})" if failure else ""),
                        transient=True,
                    )
        except SalesforceError as exc:
            raise translate(exc, "reading bulk job results") from exc
        return results


_MISSING_FIELD = re.compile(r"Field name not found\s*:\s*([A-Za-z0-9_]+)")


def fls_steps(obj: str, field: str) -> str:
    """Where an admin grants the integration user access to a field."""
    return (
        f"Setup > Object Manager > {obj} > Fields & Relationships > {field} > Set "
        "Field-Level Security: Visible (and not Read-Only, for an output) for the "
        "integration user's profile, or Read and Edit in a permission set assigned to it"
    )


def _field_hint(obj: str, field: str) -> str:
    """What to do when the integration user cannot see a field (it may well exist)."""
    return (
        f"; if {obj}.{field} exists, the integration user cannot see it: "
        f"{fls_steps(obj, field)}; otherwise create it with `icp mappings apply --crm "
        "salesforce`"
    )


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _cell(value: Any) -> str:
    value = _json_value(value)
    if value is None:
        return BULK_NULL
    return str(value)


def _write_csv(handle: IO[str], columns: list[str], batch: Sequence[RecordUpdate]) -> None:
    """Columns in a fixed order (Id first); absent values empty, which Salesforce skips."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["Id", *columns])
    for update in batch:
        writer.writerow(
            [update.record_id]
            + [_cell(update.values[c]) if c in update.values else "" for c in columns]
        )


def _rows(text: str | None) -> list[dict[str, str]]:
    if not text:
        return []
    return list(csv.DictReader(io.StringIO(text)))


# -- creating the output fields -------------------------------------------------------------


def _label(field: str) -> str:
    return field.removesuffix("__c").replace("_", " ")


def field_metadata(spec: OutputField) -> dict[str, Any]:
    """Tooling API `CustomField` metadata for one output field."""
    label = _label(spec.field)
    if spec.type == "number":
        return {"label": label, "type": "Number", "precision": 18, "scale": spec.scale}
    if spec.type == "picklist":
        values = list(dict.fromkeys(spec.values.values())) or ["A", "B", "C", "D"]
        return {
            "label": label,
            "type": "Picklist",
            "valueSet": {
                "restricted": False,
                "valueSetDefinition": {
                    "sorted": False,
                    "value": [{"fullName": v, "label": v, "default": False} for v in values],
                },
            },
        }
    length = spec.length or 255
    if length > 255:
        return {"label": label, "type": "LongTextArea", "length": length, "visibleLines": 3}
    return {"label": label, "type": "Text", "length": length}


def by_hand(obj: str, spec: OutputField) -> str:
    """What to create in Setup when the API cannot."""
    meta = field_metadata(spec)
    kind = meta["type"]
    if kind == "Number":
        kind = f"Number(18, {spec.scale})"
    elif kind == "Picklist":
        values = [v["fullName"] for v in meta["valueSet"]["valueSetDefinition"]["value"]]
        kind = f"Picklist with values {', '.join(values)}"
    else:
        kind = f"{kind}({meta['length']})"
    return (
        f"Setup > Object Manager > {obj} > Fields & Relationships > New: "
        f"{kind}, label '{meta['label']}', API name {spec.field}; then grant the integration "
        "user edit access to it"
    )


def create_custom_fields(
    client: Salesforce, obj: str, missing: Sequence[OutputField]
) -> list[FieldCreation]:
    """Create each field of `obj` through the Tooling API (`CustomField`), one call per field."""
    created = []
    for spec in missing:
        body: Mapping[str, Any] = {
            "FullName": f"{obj}.{spec.field}",
            "Metadata": field_metadata(spec),
        }
        try:
            answer = client.toolingexecute("sobjects/CustomField", method="POST", data=dict(body))
        except SalesforceError as exc:
            code, message = error_code(exc)
            created.append(
                FieldCreation(
                    spec.field,
                    False,
                    f"Salesforce refused ({code}: {message}); create it by hand: "
                    f"{by_hand(obj, spec)}",
                )
            )
            continue
        except Exception as exc:
            raise translate(exc, f"creating {obj}.{spec.field}") from exc
        ok = isinstance(answer, dict) and answer.get("success", True)
        created.append(
            FieldCreation(
                spec.field,
                bool(ok),
                "created"
                if ok
                else f"not created ({answer}); create it by hand: {by_hand(obj, spec)}",
            )
        )
    return created
