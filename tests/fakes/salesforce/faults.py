"""Faults injected into the fake Salesforce org: failed, dropped and slowed requests,
locked rows and validation rules, and the answers a failing Salesforce gives."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

from tests.fakes.salesforce.store import OrgStore
from tests.fakes.salesforce.values import normalize_id
from tests.fakes.salesforce.wire import NOT_FOUND, Response, json_response, phrase

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
    404: ("NOT_FOUND", NOT_FOUND),
}


@dataclass
class Fault:
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


def fault_response(fault: Fault) -> Response:
    if fault.body is None:
        if fault.status == 502:
            return Response(502, _EDGE_502, "text/html")
        known = fault.status in HTTPStatus._value2member_map_
        code, message = _FAULT_BODIES.get(
            fault.status,
            (
                HTTPStatus(fault.status).name if known else "UNKNOWN_EXCEPTION",
                phrase(fault.status),
            ),
        )
        return json_response(fault.status, [{"message": message, "errorCode": code}])
    if isinstance(fault.body, str | bytes):
        data = fault.body.encode() if isinstance(fault.body, str) else fault.body
        kind = "text/html" if data.lstrip().startswith(b"<") else "application/json;charset=UTF-8"
        return Response(fault.status, data, kind)
    return json_response(fault.status, fault.body)


class FaultControls(OrgStore):
    """FakeSalesforce's fault methods; the state is set up by `FakeSalesforce.__init__`."""

    _faults: list[Fault]
    _row_locks: dict[str, int]
    _rules: dict[str, list[Callable[[dict[str, Any]], str | None]]]

    def _add_fault(self, fault: Fault) -> None:
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
        self._add_fault(Fault("fail", times, method, path_contains, status, body))

    def concurrency_limit(
        self, times: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Refuse the next matching requests as an org running too many long requests at
        once does: 403 REQUEST_LIMIT_EXCEEDED "ConcurrentPerOrgLongTxn Limit exceeded."
        (mautic/mautic#5006), not the daily "TotalRequests Limit exceeded."."""
        body = [
            {
                "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                "errorCode": "REQUEST_LIMIT_EXCEEDED",
            }
        ]
        self._add_fault(Fault("fail", times, method, path_contains, 403, body))

    def drop(
        self,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        after_apply: bool = False,
    ) -> None:
        """Close the connection without answering (after applying, with after_apply=True)."""
        self._add_fault(Fault("drop", times, method, path_contains, after_apply=after_apply))

    def slow(
        self,
        seconds: float,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        self._add_fault(Fault("slow", times, method, path_contains, seconds=seconds))

    def lock_rows(self, ids: Iterable[str], times: int = 1) -> None:
        """The next `times` write attempts on each id fail with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            for rid in ids:
                self._row_locks[normalize_id(rid) or rid] = times

    def add_validation_rule(self, obj: str, rule: Callable[[dict[str, Any]], str | None]) -> None:
        """rule(record as it would be after the API update) -> error message or None."""
        with self._lock:
            self._rules.setdefault(self._sobject(obj).name, []).append(rule)

    def _take_fault(self, method: str, raw_path: str) -> Fault | None:
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
