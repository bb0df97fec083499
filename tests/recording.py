"""vcrpy cassettes: recorded against the fake CRM servers, replayed offline by default.

Default (`ICP_RECORD` unset): cassettes in `cassettes/<crm>/` are replayed with
`record_mode="none"`; a request that is not in the cassette fails the test, so a change
in what the connector sends is caught.

`ICP_RECORD=1` re-records every cassette against the fake servers in `tests/fakes/`
(each cassette is replaced whole; record calls made from one thread at a time, since
vcrpy may drop interactions recorded concurrently).
`ICP_RECORD=live` records against a real sandbox org or portal instead (credentials from
the environment, see the README); the tests then check shapes rather than exact values.

Before anything is written the recording is scrubbed: the real host becomes a
placeholder (`https://sandbox.my.salesforce.test`, `https://api.hubapi.test`),
Authorization and Set-Cookie headers are dropped, and tokens in bodies (session ids,
access tokens, JWT assertions) are replaced by `REDACTED`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vcr

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
MODE = os.environ.get("ICP_RECORD", "")
RECORDING = MODE in ("1", "fake", "live")
LIVE = MODE == "live"

_SECRET_HEADERS = ("authorization", "set-cookie", "cookie", "x-sfdc-session")
_SECRET_JSON_KEYS = ("access_token", "refresh_token", "id_token", "sessionId", "signature")
_SECRET_PATTERNS = (
    re.compile(r"(<sessionId>)[^<]*(</sessionId>)"),
    re.compile(r"(<password>)[^<]*(</password>)"),
    re.compile(r"(<n1:password>)[^<]*(</n1:password>)"),
    re.compile(r"(assertion=)[^&\s\"]*()"),
    re.compile(r"(client_secret=)[^&\s\"]*()"),
    re.compile(r"(password=)[^&\s\"]*()"),
)


def _scrub_text(text: str, real_host: str, placeholder: str) -> str:
    if real_host:
        text = text.replace(real_host, placeholder)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1REDACTED\2", text)
    for key in _SECRET_JSON_KEYS:
        text = re.sub(rf'("{key}"\s*:\s*")[^"]*(")', r"\1REDACTED\2", text)
    return text


def _scrub_body(body: Any, real_host: str, placeholder: str) -> Any:
    if body is None:
        return body
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        return _scrub_text(text, real_host, placeholder).encode("utf-8")
    if isinstance(body, str):
        return _scrub_text(body, real_host, placeholder)
    return body


def scrubber(real_host: str, placeholder: str) -> tuple[Any, Any]:
    """vcrpy hooks that replace `real_host` and drop every secret before writing."""

    def request_hook(request: Any) -> Any:
        if real_host:
            request.uri = request.uri.replace(real_host, placeholder)
        for name in list(request.headers):
            if name.lower() in _SECRET_HEADERS:
                del request.headers[name]
        request.body = _scrub_body(request.body, real_host, placeholder)
        return request

    def response_hook(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers", {})
        for name in list(headers):
            if name.lower() in _SECRET_HEADERS:
                del headers[name]
        body = response.get("body", {})
        if "string" in body:
            body["string"] = _scrub_body(body["string"], real_host, placeholder)
        return response

    return request_hook, response_hook


def _json_body_matcher(r1: Any, r2: Any) -> None:
    """Bodies match when equal, or equal as JSON (key order does not matter)."""
    b1, b2 = r1.body or b"", r2.body or b""
    if b1 == b2:
        return
    try:
        same = json.loads(b1) == json.loads(b2)
    except (ValueError, TypeError):
        same = False
    if not same:
        msg = f"bodies differ: {b1[:200]!r} != {b2[:200]!r}"
        raise AssertionError(msg)


@contextmanager
def cassette(crm: str, name: str, real_host: str, placeholder: str) -> Iterator[Any]:
    """Replay (or with `ICP_RECORD`, record) `cassettes/<crm>/<name>.yaml`.

    Args:
        crm: the cassette folder.
        name: the cassette file name, without `.yaml`.
        real_host: the origin the test talks to while recording (the fake or a real CRM);
            replaced by `placeholder` in what is written.
        placeholder: the origin the test talks to while replaying.
    """
    request_hook, response_hook = scrubber(real_host, placeholder)
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES / crm),
        record_mode="all" if RECORDING else "none",
        match_on=["method", "scheme", "host", "port", "path", "query", "json_body"],
        before_record_request=request_hook,
        before_record_response=response_hook,
        decode_compressed_response=True,
        filter_headers=list(_SECRET_HEADERS),
    )
    recorder.register_matcher("json_body", _json_body_matcher)
    path = CASSETTES / crm / f"{name}.yaml"
    if RECORDING:
        path.unlink(missing_ok=True)  # a re-recording replaces the cassette, never appends
    elif not path.exists():
        msg = f"cassette {crm}/{name}.yaml is missing: record it with ICP_RECORD=1 pytest"
        raise FileNotFoundError(msg)
    with recorder.use_cassette(f"{name}.yaml", allow_playback_repeats=False) as tape:
        yield tape
