"""The HubSpot transport: the SDK's generated APIs, built once, every call through one gate.

hubspot-api-client builds a fresh `ApiClient` (and urllib3 pool) each time a discovery
attribute such as `client.crm.companies.basic_api` is read, so `Transport` reads each
API once and keeps it. Every call goes through `Transport.call`, which:

- waits for the rate limiter (and the search limiter for search calls);
- asks for the raw response (`_preload_content=False`) and parses the JSON itself:
  every property value is a string anyway, and the generated models cost ~0.1 ms per
  record to build;
- counts the call, feeds the `X-HubSpot-RateLimit-*` headers back to the limiter;
- turns failures into the engine's errors: 401 `ConnectError`, 429 `DAILY`
  `LimitReachedError`, other 429s, 5xx and connection trouble `TransientError`, other
  4xx `HubSpotRequestError` carrying HubSpot's category and message.

urllib3 is told never to retry (`no_retries`): left alone it retries GETs answered
429/503 with a Retry-After header, sleeping silently, and raises `MaxRetryError`, which
the SDK does not wrap. Retries happen in one place instead: the engine's one policy
(`connectors.retry`: `Transport.retrying` for reads, the sync writer for writes), each
logged with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from icp_engine.connectors.answers import hubspot_body
from icp_engine.connectors.errors import ConnectError, FatalError, LimitReachedError, TransientError
from icp_engine.connectors.hubspot.limits import SlidingWindow
from icp_engine.connectors.retry import Sleep, retrying
from icp_engine.connectors.waits import WaitTooLong, too_long
from tenacity import Retrying

log = logging.getLogger(__name__)
DEFAULT_HOST = "https://api.hubapi.com"
SECOND = 1.0
"""How long a SECONDLY 429 holds calls."""


class HubSpotRequestError(FatalError):
    """HubSpot refused a request for good (a 4xx other than 401 and 429).

    Attributes: `status`, `category` (`VALIDATION_ERROR`, `CONFLICT`...), `detail`
    (HubSpot's message) and the parsed error `body`.
    """

    def __init__(self, status: int, category: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"HubSpot answered {status} {category}: {detail}")
        self.status, self.category, self.detail, self.body = status, category, detail, body


class Unreachable(TransientError):
    """The connection failed (refused, reset, timed out, name not resolved)."""


class Unreadable(TransientError):
    """A 2xx answer whose body is not the JSON object HubSpot sends (an HTML page from a
    proxy, an empty or cut-off body). It confirms nothing: a read retries it and then
    ends the pull with an error; a write counts none of its records as written."""


@dataclass(frozen=True)
class Answer:
    """One successful HTTP exchange: status, parsed JSON body, response headers."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]


def no_retries() -> urllib3.Retry:
    """A urllib3 retry policy that never retries, sleeps or raises on status."""
    return urllib3.Retry(
        total=0,
        connect=0,
        read=0,
        redirect=0,
        status=0,
        other=0,
        raise_on_redirect=False,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


def _is_api_exception(exc: BaseException) -> bool:
    """Each SDK package has its own `ApiException` class: recognise them by shape."""
    return type(exc).__module__.startswith("hubspot.") and hasattr(exc, "status")


def _parse_answer(body: Any, where: str, status: int, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object of a successful answer; `Unreadable` when there is none.

    Every CRM endpoint the engine calls answers a JSON object (HubSpot's API reference,
    e.g. https://developers.hubspot.com/docs/api-reference/crm-companies-v3/batch/post-crm-v3-objects-companies-batch-update);
    anything else in a 2xx came from something in between and says nothing about the
    records asked for. 204 (no content) is the one answer allowed to be empty.
    """
    if status == 204:
        return {}
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    try:
        parsed = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    kind = (headers.get("Content-Type") or "no content type").split(";")[0]
    shown = " ".join(str(raw or "").split())[:80]
    found = f"{len(raw or '')} characters of {kind}" + (f": {shown!r}" if shown else "")
    raise Unreadable(f"{where}: HubSpot answered {status} without a JSON object ({found})")


def _parse(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {}  # a proxy's HTML error page: the HTTP reason says enough
    return parsed if isinstance(parsed, dict) else {"results": parsed}


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def describe_error(status: int, body: Mapping[str, Any], reason: str = "") -> tuple[str, str]:
    """HubSpot's category and message for an error answer."""
    category = str(body.get("category") or body.get("policyName") or reason or f"HTTP_{status}")
    message = str(body.get("message") or reason or "no message")
    return category, message


class Transport:
    """The SDK client for one portal, its limiters, and the single place calls are made.

    Args:
        token: the private app's access token (never logged, never in a message).
        host: the API origin (`HUBSPOT_BASE_URL`).
        limiter: the burst budget shared by every call.
        search_limiter: the search endpoints' own per-second budget.
        timeout: seconds to wait for one response.
        on_call: called with a tally key for every HTTP call made.
        attempts, backoff: the read retry policy (tries, base of the exponential wait).
        pool_size: connections kept per host (at least the concurrent writers).
        sleep: what waits between read retries (tests inject one that does not sleep).
    """

    def __init__(
        self,
        token: str,
        host: str,
        limiter: SlidingWindow,
        search_limiter: SlidingWindow,
        timeout: float,
        on_call: Callable[[str], None],
        attempts: int = 5,
        backoff: float = 0.5,
        pool_size: int = 8,
        sleep: Sleep | None = None,
    ) -> None:
        from hubspot import HubSpot

        self.host = host.rstrip("/")
        options: dict[str, Any] = {"connection_pool_maxsize": pool_size}
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        if ca_bundle:  # TLS trust follows REQUESTS_CA_BUNDLE, as it does for requests
            options["ssl_ca_cert"] = ca_bundle
        # every generated API's Configuration gets host, token and retry policy from here
        self._client = HubSpot(access_token=token, retry=no_retries(), host=self.host, **options)
        self.limiter, self.search_limiter = limiter, search_limiter
        self.timeout = timeout
        self.on_call = on_call
        self.attempts, self.backoff, self.sleep = attempts, backoff, sleep
        self._apis: dict[str, Any] = {}
        self._lock = threading.Lock()

    def api(self, path: str) -> Any:
        """A generated API by its path under `client.crm` (`companies.batch_api`...), cached."""
        with self._lock:
            if path not in self._apis:
                target: Any = self._client.crm
                for part in path.split("."):
                    target = getattr(target, part)
                self._apis[path] = target
            return self._apis[path]

    def call(
        self, tally: str, path: str, method: str, *args: Any, search: bool = False, **kwargs: Any
    ) -> Answer:
        """Call `client.crm.<path>.<method>(*args, **kwargs)` once, under the limiters."""
        function = getattr(self.api(path), method)
        # Search has its own per-second budget (and sends no rate-limit headers).
        limiter = self.search_limiter if search else self.limiter
        slot = limiter.acquire()
        headers: Mapping[str, str] | None = None
        try:
            self.on_call(tally)
            response = function(
                *args, _preload_content=False, _request_timeout=self.timeout, **kwargs
            )
            try:
                data = response.data
                headers = response.headers
                status = int(response.status)
                parsed = _parse_answer(data, f"{path}.{method}", status, headers or {})
                return Answer(status, dict(hubspot_body(parsed, f"{path}.{method}")), headers)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"{path}.{method}: connection failed ({_reason(exc)})") from None
        except Exception as exc:
            if not _is_api_exception(exc):
                raise
            if getattr(exc, "status", None) != 429:  # a 429 says nothing of what is left
                headers = getattr(exc, "headers", None)
            raise self._error(exc, f"{path}.{method}", limiter) from None
        finally:
            limiter.release(slot, headers)

    def _error(self, exc: Any, where: str, limiter: SlidingWindow) -> Exception:
        status = int(getattr(exc, "status", 0) or 0)
        body = _parse(getattr(exc, "body", None))
        category, message = describe_error(status, body, str(getattr(exc, "reason", "") or ""))
        if status == 0:  # TLS failures and the like: the SDK's own status-less errors
            return ConnectError(f"cannot reach HubSpot at {self.host}: {message}")
        if status == 401:
            return ConnectError(
                f"HubSpot rejected the access token in HUBSPOT_ACCESS_TOKEN "
                f"(401 {category}: {message})"
            )
        if status == 429:
            policy = str(body.get("policyName") or "").upper()
            if policy == "DAILY":
                return LimitReachedError(f"HubSpot's daily API limit is used up ({message})")
            retry_after = _retry_after(getattr(exc, "headers", None))
            if retry_after is not None and too_long(retry_after):  # stop; rerun later
                return WaitTooLong(retry_after, f"{where}: 429 {policy or category}")
            # the window is full: hold every call a moment (a tenth of a 10 s window). A
            # SECONDLY policy is a per-second limit whichever endpoint met it (search, and
            # per-second limits on other endpoints: HubSpot's usage guidelines,
            # https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details): hold
            # one second, never a whole ten-second window.
            wait = SECOND if policy == "SECONDLY" else limiter.interval / 10
            limiter.pause(retry_after if retry_after is not None else wait)
            return TransientError(
                f"{where}: 429 {policy or category} ({message})", retry_after=retry_after
            )
        if status >= 500:
            return TransientError(f"{where}: HubSpot answered {status} {category}: {message}")
        return HubSpotRequestError(status, category, message, body)

    def retrying(self, what: str, unreachable: bool = True) -> Retrying:
        """The retry policy for reads: transient errors only, each retry logged.

        `unreachable=False` gives up at once when the connection itself fails (a refused
        connection or an unknown host at start-up is a configuration problem).
        """
        return retrying(
            f"HubSpot {what}",
            attempts=self.attempts,
            backoff=self.backoff,
            max_wait=60.0,
            sleep=self.sleep,
            give_up_on=None if unreachable else (lambda e: isinstance(e, Unreachable)),
        )

    def retried(self, tally: str, path: str, method: str, *args: Any, **kwargs: Any) -> Answer:
        """`call` with the read retry policy around it."""
        what = f"{path}.{method}"
        for attempt in self.retrying(what):
            with attempt:
                return self.call(tally, path, method, *args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = type(reason).__name__
    detail = str(reason)
    # urllib3 messages name the pool and URL; keep the gist (never headers, so no token)
    if "Connection refused" in detail:
        return f"{text}: connection refused"
    if "Name or service not known" in detail or "getaddrinfo" in detail:
        return f"{text}: host name not resolved"
    return f"{text}: {detail[:200]}"
