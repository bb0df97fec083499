"""The editor's HTTP server: 127.0.0.1 only, a random token, no cross-site requests.

Python's `http.server` is enough for one admin on one machine (no dependency to keep up
to date). What keeps other sites and other users of the machine out:

- it listens on 127.0.0.1 only, on a port the OS picks;
- the page is served only to a URL carrying the session's random token (403 otherwise);
- every API call is a POST carrying the token in an `X-ICP-Token` header, with a JSON
  body (so a cross-site form cannot send one, and a cross-site script must pass a CORS
  preflight this server never answers), a `Host` naming this server (no DNS rebinding),
  and, when the browser sends one, an `Origin` equal to this server's own;
- no CORS header is ever sent.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from icp_engine.sync.editor.session import EditorSession
from icp_engine.sync.mapedit import Edit, EditError

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000


class EditorServer(ThreadingHTTPServer):
    """Serves one `EditorSession` at `url` until `shutdown()`."""

    daemon_threads = True

    def __init__(self, session: EditorSession, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.session = session
        self.token = secrets.token_urlsafe(24)
        self.lock = threading.Lock()
        """One request at a time touches the session (a save is never half-seen)."""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"


def page(token: str, nonce: str) -> bytes:
    """The page with its script and style inlined (allowed by `nonce` alone) and the
    session token in a meta tag."""
    here = files(__package__ or "icp_engine.sync.editor")
    html = here.joinpath("page.html").read_text(encoding="utf-8")
    html = html.replace("/*STYLE*/", here.joinpath("app.css").read_text(encoding="utf-8"))
    html = html.replace("/*SCRIPT*/", here.joinpath("app.js").read_text(encoding="utf-8"))
    return html.replace("{{TOKEN}}", token).replace("{{NONCE}}", nonce).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: EditorServer
    server_version = "icp-editor"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("editor: %s", format)  # never the arguments: the request line holds the token

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("editor: %s %s", self.command, urlsplit(self.path).path)

    # -- guards -------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        return self.headers.get("Host") == self.server.origin.removeprefix("http://")

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.server.token)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self._send(status, "text/plain; charset=utf-8", f"{message}\n".encode())

    def _send(self, status: HTTPStatus, kind: str, body: bytes, nonce: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        inline = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src {inline}; style-src {inline}; "
            "connect-src 'self'; img-src data:; frame-ancestors 'none'; form-action 'none'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, data: Any) -> None:
        self._send(status, "application/json", json.dumps(data).encode("utf-8"))

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._host_ok():
            self._refuse(HTTPStatus.FORBIDDEN, "wrong Host")
            return
        token = parse_qs(url.query).get("token", [None])[0]
        if url.path != "/" or not self._token_ok(token):
            self._refuse(HTTPStatus.FORBIDDEN, "forbidden: open the URL icp mappings edit printed")
            return
        with self.server.lock:
            self.server.session.reload()  # a reload starts from the files as they are now
        nonce = secrets.token_urlsafe(16)
        body = page(self.server.token, nonce)
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", body, nonce)

    def do_POST(self) -> None:
        origin = self.headers.get("Origin")
        if not self._host_ok() or (origin is not None and origin != self.server.origin):
            self._refuse(HTTPStatus.FORBIDDEN, "cross-site request refused")
            return
        if not self._token_ok(self.headers.get("X-ICP-Token")):
            self._refuse(HTTPStatus.FORBIDDEN, "missing or wrong token")
            return
        if self.headers.get_content_type() != "application/json":
            self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            edits = [Edit.from_json(e) for e in body.get("edits", [])]
        except (ValueError, AttributeError, EditError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        route = urlsplit(self.path).path
        handlers = {"/api/check": self._check, "/api/save": self._save}
        if route not in handlers:
            self._refuse(HTTPStatus.NOT_FOUND, "no such endpoint")
            return
        with self.server.lock:
            try:
                answer = handlers[route](edits)
            except OSError as exc:  # a file that cannot be written: say which, keep serving
                where = f"{exc.filename}: " if exc.filename else ""
                answer = {"saved": False, "errors": [f"{where}{exc.strerror or exc}"]}
        self._json(HTTPStatus.OK, answer)

    def _check(self, edits: list[Edit]) -> dict[str, Any]:
        session = self.server.session
        checked = session.check(edits)
        return {
            "errors": checked.errors,
            "warnings": checked.warnings,
            "model": session.model(checked.texts),
            "preview": session.preview(checked.config),
            "diff": session.diff(checked.texts),
        }

    def _save(self, edits: list[Edit]) -> dict[str, Any]:
        session = self.server.session
        diff = session.diff(session.check(edits).texts)
        checked, written = session.save(edits)
        if checked.errors:
            return {"saved": False, "errors": checked.errors, "written": []}
        log.info("editor saved %s", ", ".join(written) or "nothing (no change)")
        return {"saved": True, "written": written, "diff": diff, "errors": []}
