"""Transport for the fake HubSpot portal: a real HTTP/1.1 server, auth, limits, faults.

`Gateway.serve` is what every request goes through: it records the request, checks the
bearer token, applies injected faults, enforces the ten-secondly window, the daily
allowance and search's own per-second limit, and adds HubSpot's rate-limit headers.
The server keeps connections alive (Content-Length on every response) as urllib3 expects.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.hubspot.api import Api
from tests.fakes.hubspot.wire import CATEGORIES, Reply, dumps, error_body

_SEARCH = re.compile(r"/crm/v3/objects/[^/]+/search/?$")
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_PROXY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_FAULT_CATEGORIES = {500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    status: int  # 0 when the connection was dropped without a response


_GARBLED = {
    # what something between the engine and HubSpot may answer with a 200 (a captive
    # portal or a misconfigured proxy's HTML page, an empty body, a body cut off mid-way)
    "html": (_PROXY_PAGE.format(code=200, reason="OK").encode(), "text/html"),
    "empty": (b"", "application/json"),
    "truncated": (b'{"status":"COMPLETE","results":[{"id":"1', "application/json"),
}


@dataclass
class Fault:
    kind: str  # "fail", "drop", "slow" or "garble"
    times: int
    method: str | None = None
    path_contains: str | None = None
    status: int = 503
    seconds: float = 0.0
    after_apply: bool = False
    body: str = "html"
    policy: str = "TEN_SECONDLY_ROLLING"

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains in path)
        )


class Limits:
    """HubSpot's allowances for one private-app token: rolling window, daily, search/s."""

    def __init__(
        self, rate_limit: int | None, interval: float, daily_limit: int, search_rate: int | None
    ) -> None:
        self.lock = threading.Lock()
        self.rate_limit = rate_limit
        self.interval = interval
        self.daily_limit = daily_limit
        self.daily_remaining = daily_limit
        self.search_rate = search_rate
        self.window: deque[float] = deque()
        self.searches: deque[float] = deque()
        self.burst = 0
        self.rate_limited = 0

    def admit(self, search: bool) -> str | None:
        """Count the call, or return the policy that refuses it."""
        with self.lock:
            now = time.monotonic()
            policy = None
            if self.daily_remaining <= 0:
                policy = "DAILY"
            elif self.burst > 0:
                self.burst -= 1
                policy = "TEN_SECONDLY_ROLLING"
            elif search:
                while self.searches and self.searches[0] <= now - 1.0:
                    self.searches.popleft()
                if self.search_rate is not None and len(self.searches) >= self.search_rate:
                    policy = "SECONDLY"
                else:
                    self.searches.append(now)
            else:
                self._trim(now)
                if self.rate_limit is not None and len(self.window) >= self.rate_limit:
                    policy = "TEN_SECONDLY_ROLLING"
                else:
                    self.window.append(now)
            if policy is None:
                self.daily_remaining -= 1
            else:
                self.rate_limited += 1
            return policy

    def _trim(self, now: float) -> None:
        while self.window and self.window[0] <= now - self.interval:
            self.window.popleft()

    def headers(self) -> dict[str, str]:
        with self.lock:
            self._trim(time.monotonic())
            limit = self.rate_limit if self.rate_limit is not None else 1_000_000
            return {
                "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_remaining, 0)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(max(limit - len(self.window), 0)),
            }


def rate_limited(policy: str) -> Reply:
    text = {
        "DAILY": "daily",
        "SECONDLY": "secondly",
        "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
    }[policy]
    body = {
        "status": "error",
        "message": f"You have reached your {text} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
        "category": "RATE_LIMITS",
    }
    return Reply(429, dumps(body), search=policy == "SECONDLY")


def unauthorized() -> Reply:
    return Reply(401, dumps(error_body("INVALID_AUTHENTICATION", AUTH_MESSAGE)), search=True)


def failure(status: int, policy: str = "TEN_SECONDLY_ROLLING") -> Reply:
    """An injected failure as HubSpot (or the proxy in front of it, for 502/504) sends it."""
    if status in (502, 504):
        reason = "Bad Gateway" if status == 502 else "Gateway Time-out"
        page = _PROXY_PAGE.format(code=status, reason=reason).encode()
        return Reply(status, page, "text/html", search=True)
    if status == 429:
        return rate_limited(policy)
    if status == 401:
        return unauthorized()
    category = CATEGORIES.get(status) or _FAULT_CATEGORIES.get(status, "ERROR")
    message = {
        500: "internal error",
        503: "Service Unavailable. Please retry the request.",
    }.get(status, f"Injected failure with status {status}.")
    return Reply(status, dumps(error_body(category, message)))


def garbled(kind: str) -> Reply:
    """A 200 whose body is not HubSpot's JSON (see `_GARBLED`)."""
    page, content_type = _GARBLED[kind]
    return Reply(200, page, content_type, search=True)


def hollowed(answer: Reply) -> Reply:
    """The same page with `results: []` and its `paging` intact, as HubSpot search has
    been seen to answer (airbytehq/airbyte#80745: an empty page, more behind it)."""
    data = json.loads(answer.body)
    data["results"] = []
    return Reply(answer.status, dumps(data), answer.content_type, answer.search, answer.headers)


class Gateway:
    def __init__(self, api: Api, limits: Limits, token: Callable[[], str]) -> None:
        self.api = api
        self.limits = limits
        self.token = token
        self.latency = 0.0
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.api_calls = 0
        self.server_errors: list[str] = []

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _take(self, kind: str, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.matches(method, path):
                fault.times -= 1
                return fault
        return None

    def serve(self, method: str, target: str, headers: Any, body: bytes) -> Reply | None:
        """The reply for one request, or None to drop the connection without one."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        valid = headers.get("Authorization", "") == f"Bearer {self.token()}"
        with self.lock:
            if valid:
                self.api_calls += 1
            fail = self._take("fail", method, path)
            drop = self._take("drop", method, path)
            slow = self._take("slow", method, path)
            garble = self._take("garble", method, path)
            hollow = self._take("hollow", method, path)
            self.faults = [f for f in self.faults if f.times > 0]
        status = 0
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            if drop is not None and not drop.after_apply:
                return None
            if garble is not None and not garble.after_apply:
                answer = garbled(garble.body)
            else:
                answer = self._answer(method, path, query, body, valid, fail)
                if garble is not None:
                    answer = garbled(garble.body)
                elif hollow is not None and answer.status == 200:
                    answer = hollowed(answer)
            if drop is not None:
                return None
            if slow is not None:
                time.sleep(slow.seconds)
            status = answer.status
            return answer
        finally:
            with self.lock:
                self.requests.append(RecordedRequest(method, path, query, body, status))

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        valid: bool,
        fail: Fault | None,
    ) -> Reply:
        searching = bool(_SEARCH.match(path))
        if fail is not None:
            answer = failure(fail.status, fail.policy)
        elif not valid:
            return unauthorized()
        else:
            policy = self.limits.admit(searching)
            if policy is not None:
                answer = rate_limited(policy)
            else:
                try:
                    answer = self.api.handle(method, path, query, body)
                except Exception:
                    trace = traceback.format_exc()
                    with self.lock:
                        self.server_errors.append(trace)
                    print(trace, file=sys.stderr)
                    answer = Reply(500, dumps(error_body("INTERNAL_ERROR", "internal error")))
        if not (answer.search or searching):
            answer.headers.update(self.limits.headers())
        return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare"
    timeout = 300
    wbufsize = 64 * 1024  # headers and body leave in one write (no Nagle/delayed-ACK stall)
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        body = self._body()
        if body is None:
            self.close_connection = True
            return
        answer = self.server.gateway.serve(self.command, self.path, self.headers, body)
        if answer is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status)
        if answer.status != 204:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        correlation = answer.headers.pop("X-HubSpot-Correlation-Id", None) or str(uuid.uuid4())
        self.send_header("X-HubSpot-Correlation-Id", correlation)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)
        self.wfile.flush()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _body(self) -> bytes | None:
        """The request body; None when the client went away before sending all of it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline()
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunk = self.rfile.read(size + 2)
                if len(chunk) < size + 2:
                    return None
                chunks.append(chunk[:size])
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.gateway = gateway
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        self.closed = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.open_lock:
            self.open.discard(request)
            self.closed += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (killed mid-request, timed out, closed)
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self.open_lock:
            sockets = list(self.open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Server:
    """The listening socket and its thread."""

    def __init__(self, gateway: Gateway) -> None:
        self.httpd = _Server(gateway)
        port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.close_all()
        self.httpd.server_close()
        self.thread.join(timeout=5)
