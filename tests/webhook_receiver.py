"""A real HTTP server on loopback that takes webhook POSTs, as Slack or a JSON receiver.

It records every request (path, headers, parsed JSON body) and answers with the statuses
queued in `answers` (then 200 "ok", as Slack's incoming webhooks answer).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    content_type: str
    body: Any
    status: int


class WebhookReceiver:
    """Use as a context manager; `url(path)` is where to post."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[int] = []
        self.always: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                if receiver.always is not None:
                    status = receiver.always
                else:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.received.append(
                    Received(self.path, self.headers.get("Content-Type", ""), body, status)
                )
                text = b"ok" if status == 200 else b"server_error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/services/T000/B000/secret-token-xyz") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def delivered(self) -> list[Any]:
        """Bodies answered with 200 (what a channel would show)."""
        return [r.body for r in self.received if r.status == 200]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
