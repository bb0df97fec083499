"""Writes to the fake Salesforce org: the checks Salesforce makes on each updated record
(shared with Bulk API 2.0 ingest jobs), REST PATCH of one record, sObject Collections
updates and Tooling API custom fields."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from tests.fakes.salesforce.describe import SObject
from tests.fakes.salesforce.store import OrgStore
from tests.fakes.salesforce.values import coerce_value, make_id, normalize_id
from tests.fakes.salesforce.wire import (
    NOT_FOUND,
    ApiError,
    RecordError,
    Request,
    Response,
    json_response,
)

_READONLY_HINT = (
    "Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)
_TOOLING_TYPES = {
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist",
    "Checkbox": "boolean",
    "Date": "date",
    "DateTime": "datetime",
    "Url": "url",
    "Email": "email",
    "Phone": "phone",
}


class WriteEndpoints(OrgStore):
    """FakeSalesforce's write methods; the state is set up by `FakeSalesforce.__init__`."""

    can_customize: bool
    new_fields_hidden: bool
    _row_locks: dict[str, int]
    _rules: dict[str, list[Callable[[dict[str, Any]], str | None]]]
    _field_count: int

    def prepare_update(
        self,
        sobject: SObject,
        raw_id: Any,
        values: Mapping[str, Any],
        source: str,
        bulk: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """Check one record's update the way Salesforce does; raises RecordError.

        The caller holds the lock, has rejected unknown fields, and applies the result with
        `apply_update`. `source` is "json" or "csv" (see `coerce_value`).
        """
        if raw_id is None or raw_id == "":
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
        rid = normalize_id(raw_id)
        if rid is None or not rid.startswith(sobject.key_prefix):
            raise RecordError(
                "MALFORMED_ID", f"{sobject.label} ID: id value of incorrect type: {raw_id}", ["Id"]
            )
        rec = sobject.records.get(rid)
        if rec is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if rec.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [], rid)
        described = [
            (f, raw)
            for f, raw in ((sobject.field(k), v) for k, v in values.items())
            if f is not None and f["name"] != "Id"
        ]
        readonly = [f["name"] for f, _ in described if not f["updateable"]]
        if readonly:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. " + _READONLY_HINT,
                readonly,
                rid,
            )
        changes = {}
        for f, raw in described:
            try:
                changes[f["name"]] = coerce_value(f, raw, source)
            except RecordError as err:
                err.record_id = rid
                raise
        if self._row_locks.get(rid, 0) > 0:
            self._row_locks[rid] -= 1
            message = "unable to obtain exclusive access to this record"
            raise RecordError(
                "UNABLE_TO_LOCK_ROW", message if bulk else f"{message} or 1 records: {rid}", [], rid
            )
        after = {**rec, **changes}
        for rule in self._rules.get(sobject.name, []):
            problem = rule(dict(after))
            if problem:
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", problem, [], rid)
        return rid, changes

    def apply_update(
        self, sobject: SObject, prepared: Iterable[tuple[str, dict[str, Any]]], stamp: datetime
    ) -> None:
        """Apply checked updates; every saved record gets the stamp, changed or not."""
        for rid, changes in prepared:
            rec = sobject.records[rid]
            rec.update(changes)
            rec["SystemModstamp"] = rec["LastModifiedDate"] = stamp

    @staticmethod
    def _json_body(req: Request) -> Any:
        try:
            return json.loads(req.body or b"null")
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None

    @staticmethod
    def _check_fields(sobject: SObject, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in ("attributes", "id") and sobject.field(key) is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {sobject.name}",
                )

    def _update_record(self, req: Request, sobject: SObject, raw_id: str) -> Response:
        body = self._json_body(req)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        self._check_fields(sobject, body)
        values = {k: v for k, v in body.items() if k not in ("attributes", "Id", "id")}
        try:
            prepared = self.prepare_update(sobject, raw_id, values, "json")
        except RecordError as err:
            if err.code in ("MALFORMED_ID", "INVALID_CROSS_REFERENCE_KEY"):
                raise ApiError(404, "NOT_FOUND", NOT_FOUND) from None
            status = 404 if err.code == "ENTITY_IS_DELETED" else 400
            raise ApiError(status, err.code, err.message, err.fields) from None
        self.apply_update(sobject, [prepared], self.now())
        return Response(204)

    def _collections_update(self, req: Request) -> Response:
        body = self._json_body(req)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ApiError(400, "JSON_PARSER_ERROR", 'Expected {"records": [...]}')
        if len(records) > 200:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        typed = []
        for rec in records:
            type_name = (rec.get("attributes") or {}).get("type")
            if not type_name:
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            sobject = self.sobject(str(type_name))
            if sobject is None:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
            self._check_fields(sobject, rec)
            typed.append((sobject, rec))
        outcomes: list[tuple[SObject, str | None, dict[str, Any] | None, RecordError | None]] = []
        for sobject, rec in typed:
            raw_id = rec.get("Id", rec.get("id"))
            values = {k: v for k, v in rec.items() if k not in ("attributes", "Id", "id")}
            try:
                rid, changes = self.prepare_update(sobject, raw_id, values, "json")
                outcomes.append((sobject, rid, changes, None))
            except RecordError as err:
                outcomes.append((sobject, err.record_id, None, err))
        rollback = body.get("allOrNone") is True and any(o[3] for o in outcomes)
        if not rollback:
            stamp = self.now()
            for target, saved_id, saved, _ in outcomes:
                if saved_id is not None and saved is not None:
                    self.apply_update(target, [(saved_id, saved)], stamp)
        results = []
        for _, result_id, _, failure in outcomes:
            error = failure
            if error is None and rollback:
                error = RecordError(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the "
                    "request was using AllOrNone header",
                )
            result: dict[str, Any] = {} if result_id is None else {"id": result_id}
            result["success"] = error is None
            result["errors"] = [] if error is None else [error.as_error()]
            results.append(result)
        return json_response(200, results)

    def _create_custom_field(self, req: Request) -> Response:
        body = self._json_body(req)
        if not self.can_customize:
            raise ApiError(
                400,
                "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                "insufficient access rights on cross-reference id",
            )
        full_name = body.get("FullName") if isinstance(body, dict) else None
        meta = body.get("Metadata") if isinstance(body, dict) else None
        if not isinstance(full_name, str) or "." not in full_name or not isinstance(meta, dict):
            raise ApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [FullName, Metadata]",
                [],
            )
        obj_name, name = full_name.split(".", 1)
        sobject = self.sobject(obj_name)
        type_ = _TOOLING_TYPES.get(str(meta.get("type")))
        if sobject is None or not name.endswith("__c") or type_ is None:
            raise ApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"Cannot create field {full_name} of type {meta.get('type')}",
                [],
            )
        if sobject.field(name) is not None or name in sobject.hidden:
            raise ApiError(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {name.removesuffix('__c')} on {sobject.name}.",
                [],
            )
        attrs: dict[str, Any] = {"label": meta.get("label") or name}
        if type_ in ("double", "currency", "percent"):
            attrs.update(precision=int(meta.get("precision", 18)), scale=int(meta.get("scale", 0)))
        if type_ in ("string", "textarea", "url", "email", "phone") and meta.get("length"):
            attrs["length"] = int(meta["length"])
        if meta.get("type") == "LongTextArea":
            attrs["length"] = int(meta.get("length", 32768))
        if type_ in ("picklist", "multipicklist"):
            value_set = meta.get("valueSet") or {}
            values = (value_set.get("valueSetDefinition") or {}).get("value") or []
            attrs["picklistValues"] = [str(v.get("fullName")) for v in values]
            attrs["restrictedPicklist"] = bool(value_set.get("restricted", False))
        self.set_field(sobject.name, name, type=type_, **attrs)
        if self.new_fields_hidden:  # no profile was given access: hidden from this user
            self.hide_field(sobject.name, name)
        self._field_count += 1
        return json_response(
            201,
            {
                "id": make_id("00N", self._field_count),
                "success": True,
                "errors": [],
                "warnings": [],
                "infos": [],
            },
        )
