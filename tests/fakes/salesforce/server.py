"""The HTTPS server of the fake Salesforce org: a thread and TLS handshake per connection,
keep-alive, chunked request bodies, answers with Salesforce's headers."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from tests.fakes.salesforce.wire import ApiError, Request, phrase

if TYPE_CHECKING:
    from tests.fakes.salesforce.org import FakeSalesforce


class Server(ThreadingHTTPServer):
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
        server = cast(Server, self.server)
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
            f"HTTP/1.1 {response.status} {phrase(response.status)}",
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
