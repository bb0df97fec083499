"""A tiny OpenAI-compatible chat completions server on the loopback, for naming tests.

`POST /v1/chat/completions` checks the bearer token, reads the segments from the user
message (the JSON `scoring.naming` sends) and answers in the OpenAI response shape with
a name, a description and hypotheses made from each segment's traits. Answers are
deterministic (fixed id and timestamp), so a recorded cassette does not change between
recordings. `mode` makes it fail the ways real endpoints do.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "fenced", "error", "garbage", "wrong_count", "slow"]


def completion(model: str, content: str) -> dict[str, Any]:
    """A chat completion in the OpenAI response shape."""
    return {
        "id": "chatcmpl-fake-0001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }


def describe(segment: dict[str, Any]) -> dict[str, Any]:
    traits = [str(t) for t in segment.get("traits") or []]
    lead = traits[0] if traits else str(segment.get("name") or "segment")
    rate = segment.get("win_rate")
    wins = f"wins {rate:.0%} of deals" if isinstance(rate, int | float) else "wins often"
    return {
        "id": segment.get("id"),
        "name": f"{lead} fast movers",
        "description": f"Accounts where {segment.get('rule')}; this group {wins}.",
        "hypotheses": [f"{t} buyers feel the pain we solve sooner" for t in traits[:2]]
        or ["The rule marks a budget holder"],
    }


class FakeLlm:
    """The server; use as a context manager. `url` is its origin (`http://127.0.0.1:PORT`).

    Args:
        api_key: the bearer token it accepts; other tokens get 401.
        mode: "ok"; "fenced" (JSON inside a ``` fence); "error" (500); "garbage" (the
            content is not JSON); "wrong_count" (one entry short, no ids); "slow" (waits
            `delay` seconds before answering).
        delay: seconds a "slow" answer takes.
    """

    def __init__(self, api_key: str = "sk-fake-secret", mode: Mode = "ok", delay: float = 1.0):
        self.api_key, self.mode, self.delay = api_key, mode, delay
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True  # a "slow" answer must not hold up shutdown
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLlm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.mode == "error":
            return 500, {"error": {"message": "internal error", "type": "server_error"}}
        if self.mode == "slow":
            time.sleep(self.delay)
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        segments = json.loads(user)["segments"]
        described = [describe(s) for s in segments]
        if self.mode == "wrong_count":
            described = [{k: v for k, v in d.items() if k != "id"} for d in described[:-1]]
        content = json.dumps({"segments": described}, sort_keys=True)
        if self.mode == "garbage":
            content = "Sure! Here are some great names for your segments."
        elif self.mode == "fenced":
            content = f"```json\n{content}\n```"
        return 200, completion(body.get("model", ""), content)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, sort_keys=True).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request"}})
                    return
                auth = self.headers.get("Authorization") or ""
                fake.authorizations.append(auth)
                if auth != f"Bearer {fake.api_key}":
                    # like the real API, the error echoes part of the key it was given
                    echoed = auth[-4:]
                    message = f"Incorrect API key provided: ...{echoed}"
                    self._send(401, {"error": {"message": message, "type": "invalid_api_key"}})
                    return
                body = json.loads(raw)
                fake.bodies.append(body)
                status, payload = fake._answer(body)
                self._send(status, payload)

        return Handler
