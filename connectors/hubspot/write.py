"""Writing company properties back: batch update, 100 a call, bad records isolated.

`POST /crm/v3/objects/companies/batch/update` either takes the whole batch (200), takes
it but names ids it could not find (207 with `OBJECT_NOT_FOUND`: deleted companies), or
refuses the whole batch (400 `VALIDATION_ERROR` for one bad value, 409 `CONFLICT`). A
refused batch is split in halves, recursively, until the offending records stand alone:
one bad record costs about 2 x log2(100) = 14 extra calls and never blocks 99 good ones.

Values go out as the strings HubSpot stores: numbers as plain decimals at the output's
scale, enumeration values as they are (the plan already mapped engine values to CRM
values), `None` as "" (which clears a property).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from icp_engine.connectors.base import RecordUpdate, WriteResult
from icp_engine.connectors.errors import TransientError
from icp_engine.connectors.hubspot.client import HubSpotRequestError, Transport
from icp_engine.connectors.mapping import OutputField

log = logging.getLogger(__name__)
BATCH = 100
"""Inputs per batch update call (HubSpot's maximum)."""
BISECT = {"VALIDATION_ERROR", "CONFLICT"}
"""Whole-batch refusals worth splitting: one record is to blame, not the call."""
MISSING_PROPERTY = "PROPERTY_DOESNT_EXIST"
NO_RESULT = "NO_RESULT"
MERGED_IDS = "hs_merged_object_ids"
"""The default property listing the ids merged into a record (";"-separated)."""
_PROPERTY_ERRORS = re.compile(r"(\[\s*\{.*\}\s*\])", re.DOTALL)


def format_value(value: Any, spec: OutputField | None) -> str:
    """One value as the string HubSpot expects for the output's property."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec is not None and spec.type == "number":
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        text = f"{number.quantize(Decimal(1).scaleb(-spec.scale)):f}"
        return "0" if text.strip("-0.") == "" else text
    return str(value)


def property_errors(detail: str, body: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(property, code, message) for each per-property error a refusal embeds.

    HubSpot puts them as JSON inside the message (`Property values were not valid:
    [{"isValid":false,"message":"...","error":"INVALID_OPTION","name":"icp_tier"}]`) and
    sometimes as `errors[]` with `context.propertyName`.
    """
    found: list[tuple[str, str, str]] = []
    match = _PROPERTY_ERRORS.search(detail)
    if match:
        try:
            embedded = json.loads(match.group(1))
        except ValueError:
            embedded = []
        for item in embedded if isinstance(embedded, list) else []:
            if isinstance(item, dict) and not item.get("isValid", False):
                found.append(
                    (
                        str(item.get("name", "?")),
                        str(item.get("error", "INVALID")),
                        str(item.get("message", "")),
                    )
                )
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            names = (item.get("context") or {}).get("propertyName") or ["?"]
            for name in names if isinstance(names, list) else [names]:
                found.append((str(name), str(item.get("code", "")), str(item.get("message", ""))))
    return list(dict.fromkeys(found))


def readable(status: int, category: str, detail: str, body: Mapping[str, Any]) -> str:
    """HubSpot's refusal with the per-property errors it embeds spelled out."""
    problems = [
        f"{name}: {code}" + (f" ({message})" if message else "")
        for name, code, message in property_errors(detail, body)
    ]
    if any(code == MISSING_PROPERTY for _, code, _ in property_errors(detail, body)):
        problems.append("create the missing properties with `icp mappings apply --crm hubspot`")
    return "; ".join(problems) if problems else f"{status} {category}: {detail}"


class BatchWriter:
    """Batch updates of one object's records through one transport.

    Args:
        transport: the HubSpot transport (limiter, counting, error mapping).
        object_type: the HubSpot object (`companies`).
        outputs: output specs by CRM property name, for value formatting.
    """

    def __init__(
        self, transport: Transport, object_type: str, outputs: Mapping[str, OutputField]
    ) -> None:
        self.transport = transport
        self.object_type = object_type
        self.outputs = dict(outputs)

    def _inputs(self, batch: Sequence[RecordUpdate]) -> dict[str, Any]:
        return {
            "inputs": [
                {
                    "id": update.record_id,
                    "properties": {
                        name: format_value(value, self.outputs.get(name))
                        for name, value in update.values.items()
                    },
                }
                for update in batch
            ]
        }

    def update(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write up to 100 records; bisect a refused batch. One result per record.

        A transient failure (429 burst, 5xx, connection trouble) makes the records of
        that call transient failures, for the writer to retry.
        `ConnectError` and `LimitReachedError` propagate.
        """
        try:
            answer = self.transport.call(
                "write", "objects.batch_api", "update", self.object_type, self._inputs(batch)
            )
        except TransientError as exc:
            return [
                WriteResult(
                    u.record_id,
                    ok=False,
                    code="TRANSIENT",
                    message=str(exc),
                    transient=True,
                    retry_after=exc.retry_after,
                )
                for u in batch
            ]
        except HubSpotRequestError as exc:
            if exc.category not in BISECT and exc.status not in (400, 409):
                raise
            message = readable(exc.status, exc.category, exc.detail, exc.body)
            errors = property_errors(exc.detail, exc.body)
            missing = {name for name, code, _ in errors if code == MISSING_PROPERTY}
            if missing and all(code == MISSING_PROPERTY for _, code, _ in errors):
                # a property that does not exist fails every record writing it: no bisecting
                doomed = [u for u in batch if missing & set(u.values)]
                rest = [u for u in batch if not missing & set(u.values)]
                if doomed:
                    failed = [
                        WriteResult(u.record_id, ok=False, code=exc.category, message=message)
                        for u in doomed
                    ]
                    return failed + (self.update(rest) if rest else [])
            if len(batch) > 1:
                middle = len(batch) // 2
                log.info(
                    "batch of %d refused (%s); splitting it to isolate the bad records",
                    len(batch),
                    exc.category,
                )
                return self.update(batch[:middle]) + self.update(batch[middle:])
            return [WriteResult(batch[0].record_id, ok=False, code=exc.category, message=message)]
        results = self._results(batch, answer.status, answer.body)
        unconfirmed = [r.record_id for r in results if r.code == NO_RESULT]
        if not unconfirmed:
            return results
        found = self._resolve(unconfirmed)
        return [found.get(r.record_id, r) if r.code == NO_RESULT else r for r in results]

    @staticmethod
    def _results(
        batch: Sequence[RecordUpdate], status: int, body: Mapping[str, Any]
    ) -> list[WriteResult]:
        """One result per record: written only where the answer's `results` name it.

        An answer that names no record (a 200 with `results: []`, say) confirms nothing:
        its records are `NO_RESULT` (issue 10: only a confirmation counts).
        """
        written = {str(r.get("id")) for r in body.get("results") or [] if isinstance(r, dict)}
        failed: dict[str, WriteResult] = {}
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                continue
            category = str(error.get("category") or "ERROR")
            message = str(error.get("message") or "")
            gone = category == "OBJECT_NOT_FOUND"
            for record_id in (error.get("context") or {}).get("ids") or []:
                failed[str(record_id)] = WriteResult(
                    str(record_id), ok=False, code=category, message=message, deleted=gone
                )
        results = []
        for update in batch:
            if update.record_id in failed:
                results.append(failed[update.record_id])
            elif update.record_id in written:
                results.append(WriteResult(update.record_id, ok=True))
            else:
                results.append(
                    WriteResult(
                        update.record_id,
                        ok=False,
                        code=NO_RESULT,
                        message=f"HubSpot's {status} answer did not mention this record",
                        transient=True,
                    )
                )
        return results

    def _resolve(self, record_ids: Sequence[str]) -> dict[str, WriteResult]:
        """What became of records a batch update answered for without naming them.

        A batch update answers 200 and leaves a merged-away id out of `results` and
        `errors` alike (issue 13, item 8). Reading the ids back tells the cases apart:
        a merged-away id reads the surviving record, which lists it in
        `hs_merged_object_ids` (HubSpot's merge,
        https://developers.hubspot.com/docs/api-reference/crm-companies-v3/basic/post-crm-v3-objects-companies-merge
        and https://knowledge.hubspot.com/records/merge-records); an id HubSpot no longer
        knows is `OBJECT_NOT_FOUND` (207); a record read back under its own id exists and
        its write was simply not confirmed: a transient failure, tried again.
        """
        body = {"inputs": [{"id": i} for i in record_ids], "properties": [MERGED_IDS]}
        try:
            answer = self.transport.call(
                "write", "objects.batch_api", "read", self.object_type, body, archived=False
            )
        except TransientError:
            return {}  # stay NO_RESULT: retried
        found: dict[str, WriteResult] = {}
        noun = {"companies": "company", "deals": "deal"}.get(self.object_type, "record")
        for record in answer.body.get("results") or []:
            if not isinstance(record, dict):
                continue
            survivor = str(record.get("id"))
            merged = str((record.get("properties") or {}).get(MERGED_IDS) or "").split(";")
            for record_id in record_ids:
                if record_id != survivor and record_id in merged:
                    found[record_id] = WriteResult(
                        record_id,
                        ok=False,
                        code="MERGED",
                        message=(
                            f"merged into {noun} {survivor}, which is scored under its own id; "
                            f"{record_id} leaves the state"
                        ),
                        deleted=True,
                    )
        for error in answer.body.get("errors") or []:
            if isinstance(error, dict) and error.get("category") == "OBJECT_NOT_FOUND":
                for record_id in (error.get("context") or {}).get("ids") or []:
                    found.setdefault(
                        str(record_id),
                        WriteResult(
                            str(record_id),
                            ok=False,
                            code="OBJECT_NOT_FOUND",
                            message="HubSpot no longer has this record (deleted or purged)",
                            deleted=True,
                        ),
                    )
        for result in found.values():
            log.warning("%s %s: %s", noun, result.record_id, result.message)
        return found
