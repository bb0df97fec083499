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
way real ones do. Modules: `salesforce_wire` (requests, responses, errors),
`salesforce_values` (ids, datetimes, coercion), `salesforce_describe` (field metadata,
sObjects), `salesforce_default_objects` (Account, Opportunity), `salesforce_soql_lexer`,
`salesforce_soql` (parser) and `salesforce_soql_query` (evaluation), `salesforce_store`
(test-side data), `salesforce_faults`, `salesforce_login` (SOAP, OAuth, sessions),
`salesforce_rest` (reads, routing), `salesforce_writes`, `salesforce_bulk` (Bulk API 2.0),
`salesforce_server` (HTTPS).
"""

from __future__ import annotations

import re
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme

from tests.fakes.salesforce.bulk import BulkApi
from tests.fakes.salesforce.default_objects import default_objects
from tests.fakes.salesforce.describe import SObject
from tests.fakes.salesforce.faults import Fault, FaultControls, fault_response
from tests.fakes.salesforce.login import LoginEndpoints
from tests.fakes.salesforce.permissions import permission_objects
from tests.fakes.salesforce.rest import RestEndpoints
from tests.fakes.salesforce.server import Server
from tests.fakes.salesforce.soql_query import Soql
from tests.fakes.salesforce.values import make_id
from tests.fakes.salesforce.wire import NOT_FOUND, ApiError, Request, Response, json_response

__all__ = ["FakeSalesforce", "RecordedRequest"]

_DATA_PATH = re.compile(r"/services/data/v(\d+\.\d+)(?:/(.*))?")


@dataclass
class RecordedRequest:
    """One HTTP request the org received. status 0: the connection was dropped unanswered."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


class FakeSalesforce(LoginEndpoints, RestEndpoints, FaultControls):
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
        self.new_fields_hidden = False  # True: fields created through the API get no FLS
        self.bulk_polls_to_complete = 1
        self.bulk_leave_unprocessed = 0  # rows at the end of each ingest job left unprocessed
        self.bulk_query_failures = 0  # the next N query jobs end Failed
        self.limit_info_header = True  # False: answers carry no Sforce-Limit-Info
        self.org_id = make_id("00D", 48_879)
        self.user_id = make_id("005", 48_879)
        self.clock: Callable[[], datetime] = self._strict_clock
        self.can_manage_permissions = True  # False: permission set creates are refused
        self.sobjects: dict[str, SObject] = {**default_objects(), **permission_objects()}
        self.ca_path = ""
        self._lock = threading.RLock()
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self._tokens: set[str] = set()
        self.access_token = self.issue_token()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._row_locks: dict[str, int] = {}
        self._rules: dict[str, list[Callable[[dict[str, Any]], str | None]]] = {}
        self._cursors: dict[str, tuple[Soql, list[str]]] = {}
        self._cursor_count = 0
        self._field_count = 0
        self._bulk = BulkApi(self)
        self.add_records("User", [{"Id": self.user_id, "Username": self.username}])
        self._server: Server | None = None
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
        self._server = Server(self, context)
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

    # ------------------------------------------------------------ observation

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

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
            response = fault_response(fault)
        elif fault is not None and not fault.after_apply:
            return None
        else:
            response = self._respond(req)
            if fault is not None:
                return None
        recorded.status = response.status
        return response

    def _respond(self, req: Request) -> Response:
        if req.path.startswith("/services/Soap/u/"):
            return self._soap_login(req)
        if req.path.rstrip("/") == "/services/oauth2/token":
            return self._oauth_token(req)
        if req.path.rstrip("/") == "/services/oauth2/userinfo":
            auth = req.headers.get("authorization", "")
            if auth.split(" ", 1)[-1].strip() not in self._tokens:
                return json_response(403, {"error": "Bad_OAuth_Token"})  # fmt: skip
            return self._userinfo()
        if req.path.rstrip("/") == "/services/data":
            return json_response(200, _versions(self.api_version))
        match = _DATA_PATH.fullmatch(req.path)
        if match is None or float(match.group(1)) > float(self.api_version):
            return ApiError(404, "NOT_FOUND", NOT_FOUND).response()
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
            if self.limit_info_header:  # some answers (and some proxies) carry none
                response.headers["Sforce-Limit-Info"] = (
                    f"api-usage={self.api_usage}/{self.daily_limit}"
                )
            return response


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
