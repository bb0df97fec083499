"""A fake Salesforce org: a real HTTPS server on 127.0.0.1 speaking REST and Bulk API 2.0.

    with FakeSalesforce() as org:
        ids = org.add_accounts([{"Name": "Acme", "Industry": "Technology"}])
        sf = Salesforce(instance_url=org.instance_url, session_id=org.access_token,
                        session=org.session())
        org.fail(503, path_contains="composite/sobjects")  # the next write gets a 503

Wire formats follow what simple-salesforce 1.12.10 sends and what real orgs answer (query
pages with path-style `nextRecordsUrl`, SaveResult arrays, JSON error arrays,
`Sforce-Limit-Info`, SOAP and OAuth logins). The certificate comes from a `trustme` CA whose
PEM is at `org.ca_path`: set `REQUESTS_CA_BUNDLE` to it for subprocesses; in-process, use
`org.session()` (a plain `session.verify = org.ca_path` loses to REQUESTS_CA_BUNDLE or
CURL_CA_BUNDLE in the environment, a requests quirk). Faults (`fail`,
`drop`, `slow`, `lock_rows`, validation rules, `revoke_session`) make the org misbehave the
way real ones do. SOQL and the data model live in `salesforce_soql.py`, Bulk API 2.0 in
`salesforce_bulk.py`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import re
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, unquote_plus, urlsplit, urlunsplit

import trustme
from requests import PreparedRequest, Session
from requests import Response as HttpResponse
from requests.adapters import HTTPAdapter

from tests.fakes.salesforce_bulk import BulkApi
from tests.fakes.salesforce_soql import (
    ApiError,
    RecordError,
    Request,
    Response,
    SObject,
    Soql,
    coerce_value,
    default_objects,
    json_response,
    json_value,
    make_field,
    make_id,
    normalize_id,
    parse_soql,
    to_ms,
    update_field,
)

__all__ = ["FakeSalesforce", "RecordedRequest"]

_DATA_PATH = re.compile(r"/services/data/v(\d+\.\d+)(?:/(.*))?")
_NOT_FOUND = "The requested resource does not exist"
_EDGE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>"
    b"<h1>502 Bad Gateway</h1></center>\r\n<hr><center>sfdcedge</center>\r\n</body>\r\n"
    b"</html>\r\n"
)
_FAULT_BODIES = {
    500: (
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if "
        "you contact support: 1427712345-99999 (-1163212345)",
    ),
    503: ("SERVER_UNAVAILABLE", "Server Unavailable"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", _NOT_FOUND),
}
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


@dataclass
class RecordedRequest:
    """One HTTP request the org received. status 0: the connection was dropped unanswered."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


@dataclass
class _Fault:
    kind: str  # "fail" | "drop" | "slow"
    times: int
    method: str | None
    path_contains: str | None
    status: int = 503
    body: Any = None
    after_apply: bool = False
    seconds: float = 0.0

    def matches(self, method: str, raw_path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or (
            self.path_contains in raw_path or self.path_contains in unquote_plus(raw_path)
        )


class FakeSalesforce:
    """A Salesforce org with Accounts and Opportunities, served over HTTPS on 127.0.0.1."""

    def __init__(
        self,
        api_version: str = "59.0",
        page_size: int = 2000,
        daily_limit: int = 15_000,
        latency: float = 0.0,
    ):
        self.api_version, self.page_size = api_version, page_size
        self.daily_limit, self.latency = daily_limit, latency
        self.api_usage = 0  # the "used" count reported in Sforce-Limit-Info
        self.api_calls = 0  # REST and Bulk calls received (everything but logins)
        self.username = "icp-integration@example.com"
        self.password = "Sup3r-Secret!"
        self.security_token = "tOkEn1234567890"
        self.consumer_key = "3MVG9FakeConsumerKeyForTheIcpEngineTests"
        self.consumer_secret = "FAKE0123456789SECRET"
        self.can_customize = True
        self.bulk_polls_to_complete = 1
        self.bulk_leave_unprocessed = 0  # rows at the end of each ingest job left unprocessed
        self.org_id = make_id("00D", 48_879)
        self.user_id = make_id("005", 48_879)
        self.clock: Callable[[], datetime] = self._strict_clock
        self.sobjects: dict[str, SObject] = default_objects()
        self.ca_path = ""
        self._lock = threading.RLock()
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self._tokens: set[str] = set()
        self.access_token = self.issue_token()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._row_locks: dict[str, int] = {}
        self._rules: dict[str, list[Callable[[dict[str, Any]], str | None]]] = {}
        self._cursors: dict[str, tuple[Soql, list[str]]] = {}
        self._cursor_count = 0
        self._field_count = 0
        self._bulk = BulkApi(self)
        self._server: _Server | None = None
        self._tmpdir: str | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeSalesforce:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> FakeSalesforce:
        ca = trustme.CA()
        self._tmpdir = tempfile.mkdtemp(prefix="fake-salesforce-")
        self.ca_path = str(Path(self._tmpdir) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(self, context)
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-salesforce",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def instance_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake org is not running; use `with FakeSalesforce() as org`")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def connections(self) -> int:
        """TLS connections accepted so far (keep-alive clients reuse theirs)."""
        return 0 if self._server is None else self._server.accepted

    # ------------------------------------------------------------ clock and data

    def _strict_clock(self) -> datetime:
        with self._lock:
            stamp = max(to_ms(datetime.now(UTC)), self._last_stamp + timedelta(milliseconds=1))
            self._last_stamp = stamp
            return stamp

    def now(self) -> datetime:
        """The org's time (UTC, ms). The default clock never returns the same stamp twice."""
        return to_ms(self.clock())

    def sobject(self, name: str) -> SObject | None:
        lower = name.lower()
        return next((o for k, o in self.sobjects.items() if k.lower() == lower), None)

    def _sobject(self, name: str) -> SObject:
        found = self.sobject(name)
        if found is None:
            raise KeyError(f"the fake org has no sObject {name!r}")
        return found

    def add_records(self, obj: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records; returns their ids (ascending, in the order given).

        Fields not given are null; CreatedDate/SystemModstamp/LastModifiedDate default to
        `now()` (one call per record, so with the default clock no two records tie),
        IsDeleted to false; an `Id` may be given (15 or 18 characters).
        """
        with self._lock:
            sobject = self._sobject(obj)
            ids = []
            for row in rows:
                stamp = self.now()
                rec: dict[str, Any] = dict.fromkeys(sobject.fields)
                rec.update(
                    IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp
                )
                for key, raw in row.items():
                    f = sobject.field(key)
                    if f is None:
                        raise KeyError(f"{sobject.name} has no field {key!r}")
                    rec[f["name"]] = self._coerce(f, raw)
                rid = rec.get("Id") or sobject.next_id()
                if not str(rid).startswith(sobject.key_prefix) or rid in sobject.records:
                    raise ValueError(f"bad or duplicate {sobject.name} Id {rid!r}")
                rec["Id"] = rid
                if sobject.name == "Opportunity":
                    stage = str(rec.get("StageName") or "")
                    rec["IsClosed"] = rec.get("IsClosed") or stage.startswith("Closed")
                    rec["IsWon"] = rec.get("IsWon") or stage == "Closed Won"
                sobject.records[rid] = rec
                ids.append(rid)
            return ids

    def add_accounts(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        return self.add_records("Account", rows)

    def add_opportunities(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Opportunities; IsClosed/IsWon follow StageName ("Closed Won"/"Closed Lost")."""
        return self.add_records("Opportunity", rows)

    def records(self, obj: str) -> dict[str, dict[str, Any]]:
        """The live store: id -> field dict (typed values; deleted ones have IsDeleted True)."""
        return self._sobject(obj).records

    def _coerce(self, f: dict[str, Any], raw: Any) -> Any:
        try:
            return coerce_value(f, raw, "python")
        except (RecordError, ApiError) as exc:
            raise ValueError(str(exc)) from None

    def _record(self, obj: str, rid: str) -> tuple[SObject, dict[str, Any]]:
        sobject = self._sobject(obj)
        rec = sobject.records.get(normalize_id(rid) or rid)
        if rec is None:
            raise KeyError(f"no {sobject.name} {rid}")
        if rec.get("IsDeleted"):
            raise ValueError(f"{sobject.name} {rid} is deleted")
        return sobject, rec

    def edit(self, obj: str, rid: str, changes: Mapping[str, Any]) -> None:
        """A person's edit in the UI: applied as given, bumps SystemModstamp/LastModifiedDate."""
        with self._lock:
            sobject, rec = self._record(obj, rid)
            values = {}
            for key, raw in changes.items():
                f = sobject.field(key)
                if f is None:
                    raise KeyError(f"{sobject.name} has no field {key!r}")
                values[f["name"]] = self._coerce(f, raw)
            rec.update(values)
            rec["SystemModstamp"] = rec["LastModifiedDate"] = self.now()

    def delete(self, obj: str, rid: str) -> None:
        """Soft delete: gone from query/, still in queryAll/ with IsDeleted true."""
        with self._lock:
            _, rec = self._record(obj, rid)
            rec["IsDeleted"] = True
            rec["SystemModstamp"] = rec["LastModifiedDate"] = self.now()

    def fields(self, obj: str) -> dict[str, dict[str, Any]]:
        """The live describe field dicts by name."""
        return self._sobject(obj).fields

    def remove_field(self, obj: str, name: str) -> None:
        with self._lock:
            sobject = self._sobject(obj)
            f = sobject.field(name)
            if f is None:
                raise KeyError(f"{sobject.name} has no field {name!r}")
            del sobject.fields[f["name"]]
            for rec in sobject.records.values():
                rec.pop(f["name"], None)

    def set_field(self, obj: str, name: str, **attrs: Any) -> dict[str, Any]:
        """Change describe attributes of a field, or add it (`type=` default "string").

        `picklistValues` may be a list of strings.
        """
        with self._lock:
            sobject = self._sobject(obj)
            f = sobject.field(name)
            if f is not None:
                update_field(f, **attrs)
                return f
            f = make_field(name, attrs.pop("type", "string"), **attrs)
            sobject.fields[name] = f
            for rec in sobject.records.values():
                rec.setdefault(name, None)
            return f

    # ------------------------------------------------------------ observation and faults

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail(
        self,
        status: int = 503,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next matching requests with `status` (not applied).

        body None: the documented JSON error array (502: an edge proxy's HTML page); str or
        bytes are sent as they are, anything else as JSON.
        """
        self._add_fault(_Fault("fail", times, method, path_contains, status, body))

    def drop(
        self,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        after_apply: bool = False,
    ) -> None:
        """Close the connection without answering (after applying, with after_apply=True)."""
        self._add_fault(_Fault("drop", times, method, path_contains, after_apply=after_apply))

    def slow(
        self,
        seconds: float,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        self._add_fault(_Fault("slow", times, method, path_contains, seconds=seconds))

    def lock_rows(self, ids: Iterable[str], times: int = 1) -> None:
        """The next `times` write attempts on each id fail with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            for rid in ids:
                self._row_locks[normalize_id(rid) or rid] = times

    def add_validation_rule(self, obj: str, rule: Callable[[dict[str, Any]], str | None]) -> None:
        """rule(record as it would be after the API update) -> error message or None."""
        with self._lock:
            self._rules.setdefault(self._sobject(obj).name, []).append(rule)

    def issue_token(self) -> str:
        """A new valid session id, which becomes `access_token`."""
        with self._lock:
            token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
            self._tokens.add(token)
            self.access_token = token
            return token

    def revoke_session(self) -> None:
        """Expire every session: calls answer 401 INVALID_SESSION_ID until a new login."""
        with self._lock:
            self._tokens.clear()

    def session(self) -> Session:
        """A requests.Session that trusts the org's certificate.

        Its adapter for the org pins `ca_path`: in requests, REQUESTS_CA_BUNDLE and
        CURL_CA_BUNDLE from the environment override a plain `session.verify`.
        """
        session = Session()
        session.verify = self.ca_path
        session.mount(self.instance_url, _FakeAdapter(self.ca_path))
        return session

    def redirecting_session(self, domains: Iterable[str] = ("login", "test")) -> Session:
        """`session()` whose requests to https://{domain}.salesforce.com reach this org."""
        session = self.session()
        adapter = _FakeAdapter(self.ca_path, self.instance_url)
        for domain in domains:
            session.mount(f"https://{domain}.salesforce.com", adapter)
        return session

    # ------------------------------------------------------------ serving

    def serve(self, req: Request, raw_path: str) -> Response | None:
        """Answer one request; None means: drop the connection without an answer."""
        recorded = RecordedRequest(req.method, req.path, req.query, req.body, 0, req.headers)
        with self._lock:
            self._requests.append(recorded)
        if self.latency > 0:
            time.sleep(self.latency)
        fault = self._take_fault(req.method, raw_path)
        if fault is not None and fault.kind == "fail":
            response = _fault_response(fault)
        elif fault is not None and not fault.after_apply:
            return None
        else:
            response = self._respond(req)
            if fault is not None:
                return None
        recorded.status = response.status
        return response

    def _take_fault(self, method: str, raw_path: str) -> _Fault | None:
        delay, chosen = 0.0, None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, raw_path):
                    continue
                if fault.kind == "slow":
                    fault.times -= 1
                    delay += fault.seconds
                elif chosen is None:
                    fault.times -= 1
                    chosen = fault
            self._faults = [f for f in self._faults if f.times > 0]
        if delay:
            time.sleep(delay)
        return chosen

    def _respond(self, req: Request) -> Response:
        if req.path.startswith("/services/Soap/u/"):
            return self._soap_login(req)
        if req.path.rstrip("/") == "/services/oauth2/token":
            return self._oauth_token(req)
        if req.path.rstrip("/") == "/services/data":
            return json_response(200, _versions(self.api_version))
        match = _DATA_PATH.fullmatch(req.path)
        if match is None or float(match.group(1)) > float(self.api_version):
            return ApiError(404, "NOT_FOUND", _NOT_FOUND).response()
        version, rest = match.group(1), (match.group(2) or "").strip("/")
        auth = req.headers.get("authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        with self._lock:
            if token not in self._tokens:
                return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid").response()
            if self.api_usage >= self.daily_limit:
                response = ApiError(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                ).response()
            else:
                self.api_usage += 1
                self.api_calls += 1
                try:
                    response = self._route(req, version, rest.split("/") if rest else [])
                except ApiError as exc:
                    response = exc.response()
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_limit}"
            return response

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
        if head == "sobjects" and len(parts) == 3:
            sobject = self.sobject(parts[1])
            if sobject is None:
                raise ApiError(404, "NOT_FOUND", _NOT_FOUND)
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
            only("PATCH")
            return self._collections_update(req)
        if parts == ["tooling", "sobjects", "CustomField"]:
            only("POST")
            return self._create_custom_field(req)
        raise ApiError(404, "NOT_FOUND", _NOT_FOUND)

    # ------------------------------------------------------------ query

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
            raise ApiError(404, "NOT_FOUND", _NOT_FOUND)
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

    # ------------------------------------------------------------ writes

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
                raise ApiError(404, "NOT_FOUND", _NOT_FOUND) from None
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
        if sobject.field(name) is not None:
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

    # ------------------------------------------------------------ logins

    def _soap_login(self, req: Request) -> Response:
        text = req.body.decode("utf-8", "replace")

        def element(name: str) -> str:
            match = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
            return html.unescape(match.group(1)) if match else ""

        version = req.path.split("/")[4] if req.path.count("/") >= 4 else self.api_version
        password = element("password")
        valid = element("username") == self.username and (
            password == self.password + self.security_token
            or (not self.security_token and password == self.password)
        )
        envelope = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" {ns} xmlns:xsi='
            '"http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}'
            "</soapenv:Body></soapenv:Envelope>"
        )
        if not valid:
            message = "Invalid username, password, security token; or user locked out."
            fault = (
                "<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>"
                f"INVALID_LOGIN: {message}</faultstring><detail><sf:LoginFault "
                'xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>'
                f"<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault>"
                "</detail></soapenv:Fault>"
            )
            xml = envelope.format(ns='xmlns:sf="urn:fault.partner.soap.sforce.com"', body=fault)
            return Response(500, xml.encode(), "text/xml;charset=UTF-8")
        token = self.issue_token()
        base = self.instance_url
        result = (
            "<loginResponse><result>"
            f"<metadataServerUrl>{base}/services/Soap/m/{version}/{self.org_id[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{base}/services/Soap/u/{version}/{self.org_id[:15]}</serverUrl>"
            f"<sessionId>{token}</sessionId><userId>{self.user_id}</userId><userInfo>"
            f"<organizationId>{self.org_id}</organizationId><organizationName>ICP Fake Org"
            f"</organizationName><sessionSecondsValid>7200</sessionSecondsValid><userEmail>"
            f"{html.escape(self.username)}</userEmail><userId>{self.user_id}</userId><userName>"
            f"{html.escape(self.username)}</userName></userInfo></result></loginResponse>"
        )
        xml = envelope.format(ns='xmlns="urn:partner.soap.sforce.com"', body=result)
        return Response(200, xml.encode(), "text/xml;charset=UTF-8")

    def _oauth_token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")

        def refuse(error: str, description: str) -> Response:
            return json_response(400, {"error": error, "error_description": description})

        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                segment = form.get("assertion", "").split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            except (IndexError, ValueError):
                return refuse("invalid_grant", "invalid assertion")
            if claims.get("iss") != self.consumer_key:
                return refuse("invalid_client_id", "client identifier invalid")
            if claims.get("sub") != self.username:
                return refuse("invalid_grant", "user hasn't approved this consumer")
        elif grant == "password":
            if form.get("client_id") != self.consumer_key:
                return refuse("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != self.consumer_secret:
                return refuse("invalid_client", "invalid client credentials")
            if form.get("username") != self.username or form.get("password") not in (
                self.password,
                self.password + self.security_token,
            ):
                return refuse("invalid_grant", "authentication failure")
        elif grant == "client_credentials":
            basic = req.headers.get("authorization", "").removeprefix("Basic ")
            expected = f"{self.consumer_key}:{self.consumer_secret}".encode()
            if base64.b64decode(basic + "==") != expected:
                return refuse("invalid_client", "invalid client credentials")
        else:
            return refuse("unsupported_grant_type", "grant type not supported")
        token = self.issue_token()
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(
            hmac.new(
                self.consumer_secret.encode(), (self.user_id + issued).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return json_response(
            200,
            {
                "access_token": token,
                "scope": "api",
                "instance_url": self.instance_url,
                "id": f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
            },
        )


def _phrase(status: int) -> str:
    return HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"


def _versions(newest: str) -> list[dict[str, str]]:
    """`GET /services/data/`: every version up to the org's newest (57.0 was Spring '23)."""
    out = []
    for n in range(31, int(float(newest)) + 1):
        season = ("Spring", "Summer", "Winter")[(n - 57) % 3]
        year = 23 + (n - 57) // 3 + (season == "Winter")
        out.append(
            {"label": f"{season} '{year:02d}", "url": f"/services/data/v{n}.0", "version": f"{n}.0"}
        )
    return out


def _fault_response(fault: _Fault) -> Response:
    if fault.body is None:
        if fault.status == 502:
            return Response(502, _EDGE_502, "text/html")
        known = fault.status in HTTPStatus._value2member_map_
        code, message = _FAULT_BODIES.get(
            fault.status,
            (
                HTTPStatus(fault.status).name if known else "UNKNOWN_EXCEPTION",
                _phrase(fault.status),
            ),
        )
        return json_response(fault.status, [{"message": message, "errorCode": code}])
    if isinstance(fault.body, str | bytes):
        data = fault.body.encode() if isinstance(fault.body, str) else fault.body
        kind = "text/html" if data.lstrip().startswith(b"<") else "application/json;charset=UTF-8"
        return Response(fault.status, data, kind)
    return json_response(fault.status, fault.body)


class _FakeAdapter(HTTPAdapter):
    """Trusts the fake org's CA whatever the environment says; optionally sends the requests
    (for a login host) to the fake org instead."""

    def __init__(self, ca_path: str, target: str | None = None):
        super().__init__()
        self.ca_path, self.target = ca_path, urlsplit(target) if target else None

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        if self.target is not None:
            parts = urlsplit(request.url or "")
            request.url = urlunsplit(
                (self.target.scheme, self.target.netloc, parts.path, parts.query, parts.fragment)
            )
        return super().send(request, stream, timeout, self.ca_path, cert, proxies)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, org: FakeSalesforce, context: ssl.SSLContext):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.org, self.context = org, context
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        self.accepted = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, then serve it (keep-alive)."""
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(60)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        with self.live_lock:
            self.live.add(conn)
            self.accepted += 1
        try:
            _Handler(conn, client_address, self)
        except OSError:
            return
        finally:
            with self.live_lock:
                self.live.discard(conn)
            conn.close()

    def close_connections(self) -> None:
        with self.live_lock:
            for conn in list(self.live):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that go away (SIGKILLed engines included) are not errors."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._body()
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        server = cast(_Server, self.server)
        try:
            response = server.org.serve(
                Request(self.command, split.path, query, headers, body), self.path
            )
        except Exception as exc:  # a bug in the fake: say so loudly, answer like Salesforce
            traceback.print_exc()
            response = ApiError(500, "UNKNOWN_EXCEPTION", f"fake org error: {exc!r}").response()
        if response is None:
            self.close_connection = True
            return
        lines = [
            f"HTTP/1.1 {response.status} {_phrase(response.status)}",
            f"Date: {self.date_time_string()}",
            "Server: sfdcedge",
        ]
        if response.status != 204:
            lines += [
                f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}",
            ]
        lines += [f"{k}: {v}" for k, v in response.headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch
