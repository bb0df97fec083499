"""A CRM, or a proxy in front of it, that echoes the token in its error bodies, asks for
an hour's wait, or answers in a shape no API sends: no secret printed, returned in
`--json`, stored in state or shown by `icp status`; no hang; no traceback; the
documented exit code.

The servers are real loopback HTTP servers: a tiny one written here (an echoing proxy
that can forward to the fake HubSpot portal) and the fake Salesforce org's own faults.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner
from icp_engine.sync.cli.main import main

from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.salesforce import FakeSalesforce

TOKEN = "pat-na1-0123-SECRET-token/with+chars!"
Reply = tuple[int, dict[str, str], bytes]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.portal(companies=30, deals_per_company=1.0, token=TOKEN),
    pytest.mark.org(accounts=20),
]

Rule = Callable[[str, str, str], Reply | None]
"""(method, path, token) -> a reply, or None to forward upstream."""


class Proxy:
    """An HTTP server on 127.0.0.1 that answers by `rule`, or forwards to `upstream`."""

    def __init__(self, rule: Rule, upstream: str | None = None) -> None:
        self.rule, self.upstream, self.hits = rule, upstream, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                proxy.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                reply = proxy.rule(self.command, self.path, token)
                if reply is None and proxy.upstream is not None:
                    answer = requests.request(
                        self.command,
                        proxy.upstream + self.path,
                        data=body,
                        headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                        timeout=30,
                    )
                    skip = {"content-length", "transfer-encoding", "connection", "content-encoding"}
                    headers = {k: v for k, v in answer.headers.items() if k.lower() not in skip}
                    reply = (answer.status_code, headers, answer.content)
                status, headers, payload = reply or (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def echoes(token: str) -> list[str]:
    """The forms a server may echo a token in."""
    return [token, quote(token, safe=""), json.dumps(token)[1:-1]]


ERROR_BODIES: dict[str, Callable[[str], Reply]] = {
    "401 json": lambda t: (
        401,
        {"Content-Type": "application/json"},
        json.dumps(
            {
                "status": "error",
                "message": f"token {t} is not valid",
                "category": "INVALID_AUTHENTICATION",
            }
        ).encode(),
    ),
    "403 html": lambda t: (
        403,
        {"Content-Type": "text/html"},
        f"<html><body>Forbidden for Authorization: Bearer {t}</body></html>".encode(),
    ),
    "400 url-encoded": lambda t: (
        400,
        {"Content-Type": "application/json"},
        json.dumps(
            {
                "message": f"bad request ?access_token={quote(t, safe='')}",
                "category": "VALIDATION_ERROR",
            }
        ).encode(),
    ),
    "404 text": lambda t: (404, {"Content-Type": "text/plain"}, f"no route; you sent {t}".encode()),
}


def icp(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failure of this test
    return result.exit_code, result.stdout, result.stderr


def stored_text(state: Path) -> str:
    """Every text value in the state database."""
    with sqlite3.connect(state / "state.sqlite") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            str(row) for table in tables for row in db.execute(f"SELECT * FROM {table}")
        )


def assert_nowhere(secret: str, *texts: str) -> None:
    for text in texts:
        for form in echoes(secret):
            assert form not in text
        assert "Traceback" not in text


@pytest.mark.parametrize("kind", sorted(ERROR_BODIES))
def test_hubspot_error_bodies_echoing_the_token(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Proxy(lambda method, path, token: ERROR_BODIES[kind](token)) as server:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("HUBSPOT_BASE_URL", server.url)
        state = tmp_path / "state"
        code, out, err = icp("sync", "--crm", "hubspot", "--state", state, "--json")
        assert server.hits >= 1
    # the first call is refused: the CRM cannot be reached or authenticated to (exit 3, DESIGN.md)
    assert code == 3, err
    # (after the config warnings: the bundled hubspot.yaml leaves two criteria unmapped)
    said = [line for line in err.splitlines() if not line.startswith("WARNING ")]
    assert said[0].startswith("error: "), err
    if kind == "401 json":  # HubSpot's message is shown, with the token taken out
        assert "token [redacted] is not valid" in err, err
    status_code, status_out, status_err = icp("status", "--state", state)
    json_code, json_out, _ = icp("status", "--state", state, "--json")
    assert status_code == json_code == 0
    assert_nowhere(TOKEN, out, err, status_out, status_err, json_out, stored_text(state))


def test_hour_long_retry_after_ends_the_writes_and_the_rerun_does_not_block(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rule(method: str, path: str, token: str) -> Reply | None:
        if path.endswith("/batch/update"):
            body = {
                "status": "error",
                "message": f"slow down, {token}",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
            }
            return (
                429,
                {"Retry-After": "3600", "Content-Type": "application/json"},
                json.dumps(body).encode(),
            )
        return None

    state = tmp_path / "state"
    with Proxy(rule, portal.base_url) as server:
        monkeypatch.setenv("HUBSPOT_BASE_URL", server.url)
        for _ in range(2):  # the rerun meets the same answer: it must not block either
            code, out, err = icp("sync", "--crm", "hubspot", "--state", state, "--json")
            summary = json.loads(out)
            assert code == summary["exit_code"] == 1, err
            assert summary["counts"]["written"] == 0 and summary["counts"]["failed"] == 30
            assert "asked to wait 3,600 s" in summary["message"]
            assert "rerun after" in summary["message"]
    _, status_out, _ = icp("status", "--state", state)
    assert "LIMIT_REACHED" in status_out
    assert_nowhere(TOKEN, out, err, status_out, stored_text(state))
    # the CRM answers again: the kept records are written
    monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
    code, out, err = icp("sync", "--crm", "hubspot", "--state", state, "--json")
    assert code == 0 and json.loads(out)["counts"]["written"] == 30, err


def test_hubspot_malformed_answer_is_a_clear_error(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rule(method: str, path: str, token: str) -> Reply | None:
        if "/crm/v3/objects/companies" in path:
            return 200, {"Content-Type": "application/json"}, b'{"results": 5}'
        return None

    with Proxy(rule, portal.base_url) as server:
        monkeypatch.setenv("HUBSPOT_BASE_URL", server.url)
        code, _, err = icp("sync", "--crm", "hubspot", "--state", tmp_path / "s")
    assert code == 3, err
    assert "the answer's 'results' is 5, expected a list" in err
    assert "Traceback" not in err


def test_salesforce_echoed_session_id_never_shown_or_stored(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    secret = org.access_token
    org.fail(
        401,
        times=5,
        body=[{"errorCode": "INVALID_SESSION_ID", "message": f"Session {secret} expired"}],
    )
    state = tmp_path / "state"
    code, out, err = icp("sync", "--crm", "salesforce", "--state", state, "--json")
    assert code == 3 and "INVALID_SESSION_ID" in err
    _, status_out, _ = icp("status", "--state", state, "--json")
    assert_nowhere(secret, out, err, status_out, stored_text(state))


def test_salesforce_429_is_never_a_configuration_error(org: FakeSalesforce, tmp_path: Path) -> None:
    org.fail(429, times=1, method="GET", path_contains="/query")
    code, out, err = icp("sync", "--crm", "salesforce", "--state", tmp_path / "s", "--json")
    assert code == 0, err  # retried, then done
    assert json.loads(out)["counts"]["accounts_scored"] == 20


def test_salesforce_malformed_query_answer_names_the_call(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    # one malformed page is retried like any transient fault (issue 13) and the run converges
    org.fail(200, times=1, method="GET", path_contains="/query", body={"records": 5, "done": True})
    code, _, err = icp("sync", "--crm", "salesforce", "--state", tmp_path / "once")
    assert code == 0, err
    assert "a query page that is not one" in err
    # one that stays malformed ends the run with an error naming the call, never a traceback
    org.fail(200, times=50, method="GET", path_contains="/query", body={"records": 5, "done": True})
    code, _, err = icp("sync", "--crm", "salesforce", "--state", tmp_path / "s")
    assert code == 1, err  # like any transient fault that outlasts the retries: rerun later
    assert "querying Account: the answer's 'records' is 5, expected a list" in err
    error = err.strip().splitlines()[-1]  # the last line is the error, naming the call
    assert error.startswith("error: Salesforce answered a query page that is not one"), error
    assert "Traceback" not in err
