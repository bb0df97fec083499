"""The fake Salesforce org's REST API under `/services/data/vNN.0/`: routing, query and
queryMore pages, describes, limits and record reads. Writes are in salesforce_writes.py,
Bulk API 2.0 (`jobs/`) in salesforce_bulk.py."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.fakes.salesforce.bulk import BulkApi
from tests.fakes.salesforce.describe import SObject
from tests.fakes.salesforce.permissions import PermissionEndpoints
from tests.fakes.salesforce.soql import parse_soql
from tests.fakes.salesforce.soql_query import Soql
from tests.fakes.salesforce.values import json_value, make_id, normalize_id
from tests.fakes.salesforce.wire import NOT_FOUND, ApiError, Request, Response, json_response
from tests.fakes.salesforce.writes import WriteEndpoints


class RestEndpoints(WriteEndpoints, PermissionEndpoints):
    """FakeSalesforce's REST methods; the state is set up by `FakeSalesforce.__init__`."""

    page_size: int
    daily_limit: int
    api_usage: int
    _bulk: BulkApi
    _cursors: dict[str, tuple[Soql, list[str]]]
    _cursor_count: int

    if TYPE_CHECKING:

        @property
        def instance_url(self) -> str: ...

    def _route(self, req: Request, version: str, parts: list[str]) -> Response:
        method = req.method

        def only(*allowed: str) -> None:
            if method not in allowed:
                raise ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
                )

        head = parts[0] if parts else ""
        if head == "jobs":
            return self._bulk.handle(req, version, parts[1:])
        if head in ("query", "queryAll"):
            only("GET")
            if len(parts) == 1:
                return self._query(req, version, include_deleted=head == "queryAll")
            return self._query_more(req, version, parts[1])
        if parts == ["limits"]:
            only("GET")
            return self._limits()
        if parts == ["sobjects"]:
            only("GET")
            return self._global_describe(version)
        if head == "sobjects" and len(parts) == 2 and method == "POST":
            sobject = self.sobject(parts[1])
            if sobject is None:
                raise ApiError(404, "NOT_FOUND", NOT_FOUND)
            return self._create_record(req, sobject)
        if head == "sobjects" and len(parts) == 3:
            sobject = self.sobject(parts[1])
            if sobject is None:
                raise ApiError(404, "NOT_FOUND", NOT_FOUND)
            if parts[2] == "describe":
                only("GET")
                return json_response(
                    200, sobject.describe(version, self.instance_url, self._children(sobject))
                )
            only("GET", "PATCH")
            if method == "GET":
                return self._get_record(req, version, sobject, parts[2])
            return self._update_record(req, sobject, parts[2])
        if parts == ["composite", "sobjects"]:
            only("PATCH", "POST")
            if method == "POST":
                return self._collections_create(req)
            return self._collections_update(req)
        if parts == ["tooling", "sobjects", "CustomField"]:
            only("POST")
            return self._create_custom_field(req)
        if parts == ["tooling", "query"]:
            only("GET")
            return self._field_definitions(req)
        raise ApiError(404, "NOT_FOUND", NOT_FOUND)

    # ------------------------------------------------------------ query

    def _field_definitions(self, req: Request) -> Response:
        """Tooling `SELECT QualifiedApiName FROM FieldDefinition WHERE
        EntityDefinition.QualifiedApiName = 'Account'`: every field of the object, those
        field-level security hides from this user included (the only FieldDefinition
        query the fake answers; a real org requires the EntityDefinition filter)."""
        text = req.query.get("q", "")
        match = re.search(
            r"FROM\s+FieldDefinition\s+WHERE\s+EntityDefinition\.QualifiedApiName\s*=\s*'(\w+)'",
            text,
            re.IGNORECASE,
        )
        sobject = self.sobject(match.group(1)) if match else None
        if sobject is None:
            raise ApiError(400, "MALFORMED_QUERY", f"the fake org cannot answer {text!r}")
        names = sorted({*sobject.fields, *sobject.hidden})
        records = [
            {
                "attributes": {"type": "FieldDefinition"},
                "QualifiedApiName": name,
            }
            for name in names
        ]
        return json_response(200, {"size": len(records), "totalSize": len(records),
                                   "done": True, "records": records,
                                   "entityTypeName": "FieldDefinition"})  # fmt: skip

    def _query(self, req: Request, version: str, include_deleted: bool) -> Response:
        text = req.query.get("q", "")
        if not text.strip():
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        soql = parse_soql(text, self.sobjects)
        ids = soql.run(include_deleted)
        if soql.count_only:
            return json_response(200, {"totalSize": len(ids), "done": True, "records": []})
        return self._page(req, version, soql, ids, None, 0)

    def _query_more(self, req: Request, version: str, locator: str) -> Response:
        match = re.fullmatch(r"([A-Za-z0-9]+)-(\d+)", locator)
        cursor = self._cursors.get(match.group(1)) if match else None
        if match is None or cursor is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(req, version, cursor[0], cursor[1], match.group(1), int(match.group(2)))

    def _page(
        self,
        req: Request,
        version: str,
        soql: Soql,
        ids: list[str],
        cursor: str | None,
        offset: int,
    ) -> Response:
        size = self.page_size
        options = re.search(r"batchSize\s*=\s*(\d+)", req.headers.get("sforce-query-options", ""))
        if options:
            size = min(size, max(200, int(options.group(1))))
        page = ids[offset : offset + size]
        body: dict[str, Any] = {"totalSize": len(ids), "done": offset + len(page) >= len(ids)}
        if not body["done"]:
            if cursor is None:
                self._cursor_count += 1
                cursor = make_id("01g", self._cursor_count)
                self._cursors[cursor] = (soql, ids)
                while len(self._cursors) > 50:  # like a real org, old cursors expire
                    del self._cursors[next(iter(self._cursors))]
            body["nextRecordsUrl"] = (
                f"/services/data/v{version}/query/{cursor}-{offset + len(page)}"
            )
        records = soql.sobject.records
        body["records"] = [soql.render(records[i], version) for i in page]
        return json_response(200, body)

    # ------------------------------------------------------------ describe, limits, records

    def _children(self, sobject: SObject) -> list[dict[str, Any]]:
        return [
            {
                "cascadeDelete": True,
                "childSObject": other.name,
                "deprecatedAndHidden": False,
                "field": f["name"],
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": other.plural,
                "restrictedDelete": False,
            }
            for other in self.sobjects.values()
            for f in other.fields.values()
            if f["type"] == "reference" and sobject.name in f["referenceTo"]
        ]

    def _global_describe(self, version: str) -> Response:
        base = f"/services/data/v{version}/sobjects"
        return json_response(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [
                    {
                        "activateable": False,
                        "createable": True,
                        "custom": o.custom,
                        "customSetting": False,
                        "deletable": True,
                        "deprecatedAndHidden": False,
                        "feedEnabled": True,
                        "keyPrefix": o.key_prefix,
                        "label": o.label,
                        "labelPlural": o.plural,
                        "layoutable": True,
                        "name": o.name,
                        "queryable": True,
                        "replicateable": True,
                        "retrieveable": True,
                        "searchable": True,
                        "triggerable": True,
                        "undeletable": True,
                        "updateable": True,
                        "urls": {
                            "sobject": f"{base}/{o.name}",
                            "describe": f"{base}/{o.name}/describe",
                            "rowTemplate": f"{base}/{o.name}/{{ID}}",
                        },
                    }
                    for o in self.sobjects.values()
                ],
            },
        )

    def _limits(self) -> Response:
        def limit(most: int, used: int = 0) -> dict[str, int]:
            return {"Max": most, "Remaining": max(0, most - used)}

        jobs = self._bulk.jobs.values()
        return json_response(
            200,
            {
                "DailyApiRequests": limit(self.daily_limit, self.api_usage),
                "DailyAsyncApexExecutions": limit(250_000),
                "DailyBulkApiBatches": limit(15_000, sum(j.kind == "ingest" for j in jobs)),
                "DailyBulkV2QueryFileStorageMB": limit(976_562),
                "DailyBulkV2QueryJobs": limit(10_000, sum(j.kind == "query" for j in jobs)),
                "DataStorageMB": limit(5),
                "FileStorageMB": limit(20),
                "SingleEmail": limit(15),
            },
        )

    def _get_record(self, req: Request, version: str, sobject: SObject, raw: str) -> Response:
        rec = sobject.records.get(normalize_id(raw) or "")
        if rec is None:
            raise ApiError(404, "NOT_FOUND", NOT_FOUND)
        if rec.get("IsDeleted"):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        names = list(sobject.fields)
        if req.query.get("fields"):
            wanted = [sobject.field(n.strip()) for n in req.query["fields"].split(",")]
            names = [f["name"] for f in wanted if f is not None]
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject.name,
                "url": f"/services/data/v{version}/sobjects/{sobject.name}/{rec['Id']}",
            }
        }
        out.update({name: json_value(rec.get(name)) for name in names})
        return json_response(200, out)
