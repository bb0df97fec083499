"""Logging in to Salesforce from the environment, counting calls, and reading its errors.

Credentials come only from the environment (DESIGN.md), in this order:

1. `SF_INSTANCE_URL` + `SF_ACCESS_TOKEN`: a session id; no login, so an expired
   session ends the run (exit 3) rather than being renewed;
2. `SF_USERNAME` + `SF_CONSUMER_KEY` + `SF_PRIVATE_KEY_FILE`: the OAuth JWT bearer flow;
3. `SF_USERNAME` + `SF_PASSWORD` (+ `SF_SECURITY_TOKEN`): a username-password login.

`SF_DOMAIN` (`login`, `test` or a My Domain such as `acme.my`) picks the login host and
`SF_API_VERSION` the REST version. TLS trust follows `REQUESTS_CA_BUNDLE`, as requests does.
With credentials, simple-salesforce logs in again by itself when a session expires.

Every HTTP call goes through one `requests.Session` whose response hook reports the call
(to the connector's one call counter) and reads `Sforce-Limit-Info`, so REST, Bulk 2.0
and Tooling calls are all counted and the org's daily allowance is watched whichever path
made the call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from icp_engine.connectors.errors import (
    ConnectError,
    ConnectorError,
    LimitReachedError,
    SourceError,
    TransientError,
)
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_CONCURRENT = re.compile(r"\bConcurrent", re.IGNORECASE)
CONCURRENCY_WAIT = 5.0
"""Seconds to wait after a concurrency REQUEST_LIMIT_EXCEEDED before trying again."""
_NOT_COUNTED = ("/services/Soap/u/", "/services/oauth2/")
"""Login and token calls: not charged against the org's daily API allowance."""
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
"""429 Too Many Requests (RFC 6585 s.4, sent by gateways and proxies in front of an org):
transient, never a configuration error."""
TRANSIENT_CODES = frozenset(
    {"SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG"}
)
ENV_VARS = (
    "SF_INSTANCE_URL",
    "SF_ACCESS_TOKEN",
    "SF_USERNAME",
    "SF_PASSWORD",
    "SF_SECURITY_TOKEN",
    "SF_DOMAIN",
    "SF_CONSUMER_KEY",
    "SF_PRIVATE_KEY_FILE",
    "SF_API_VERSION",
)


@dataclass
class ApiUsage:
    """The org's daily API allowance as the last response reported it."""

    used: int = 0
    limit: int = 0


class CountingSession(requests.Session):
    """A requests session that reports API calls, reads usage, and applies a timeout.

    Args:
        timeout: seconds to wait for one response (unless a call says otherwise).
        on_call: called once for every call charged to the org's allowance.
    """

    def __init__(self, timeout: float, on_call: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.on_call = on_call
        self.usage = ApiUsage()
        self.hooks["response"].append(self._observe)

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        counted = not any(part in response.url for part in _NOT_COUNTED)
        if counted and self.on_call is not None:
            self.on_call()
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.usage = ApiUsage(int(match.group(1)), int(match.group(2)))
        elif counted and self.usage.limit:
            self.usage.used += 1  # no header on this answer: count our own call at least

    def read_limits(self, body: Any) -> None:
        """Take the daily allowance from a `GET /limits/` answer when no answer so far
        carried `Sforce-Limit-Info` (the header is documented for REST answers, but not
        every answer, nor every proxy, carries it: without it the `api_share` check would
        stay off). `{"DailyApiRequests": {"Max": 15000, "Remaining": 14998}}`:
        https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
        """
        daily = body.get("DailyApiRequests") if isinstance(body, dict) else None
        if self.usage.limit or not isinstance(daily, dict):
            return
        try:
            most, left = int(daily["Max"]), int(daily["Remaining"])
        except (KeyError, TypeError, ValueError):
            return
        self.usage = ApiUsage(max(0, most - left), most)


def attach_counting(
    session: requests.Session, timeout: float, on_call: Callable[[], None]
) -> CountingSession:
    """Give a session made elsewhere (a test's, a proxy's) the counting behaviour."""
    if isinstance(session, CountingSession):
        session.on_call = on_call
        return session
    counting = CountingSession(timeout, on_call)
    counting.__dict__.update({k: v for k, v in session.__dict__.items() if k != "hooks"})
    counting.hooks["response"] = [*session.hooks.get("response", []), counting._observe]
    return counting


def login(session: CountingSession, api_version: str | None) -> Salesforce:
    """A simple-salesforce client from the environment. Raises `ConnectError`."""
    env = {name: os.environ.get(name, "").strip() for name in ENV_VARS}
    version = env["SF_API_VERSION"] or api_version
    common: dict[str, Any] = {"session": session}
    if version:
        common["version"] = version
    domain = env["SF_DOMAIN"] or None
    try:
        if env["SF_INSTANCE_URL"] or env["SF_ACCESS_TOKEN"]:
            _require(env, ("SF_INSTANCE_URL", "SF_ACCESS_TOKEN"), "a session id")
            return Salesforce(
                instance_url=env["SF_INSTANCE_URL"], session_id=env["SF_ACCESS_TOKEN"], **common
            )
        if env["SF_CONSUMER_KEY"] or env["SF_PRIVATE_KEY_FILE"]:
            _require(env, ("SF_USERNAME", "SF_CONSUMER_KEY", "SF_PRIVATE_KEY_FILE"), "JWT")
            key_file = Path(env["SF_PRIVATE_KEY_FILE"])
            if not key_file.is_file():
                msg = f"SF_PRIVATE_KEY_FILE={key_file}: no such file"
                raise ConnectError(msg)
            return Salesforce(
                username=env["SF_USERNAME"],
                consumer_key=env["SF_CONSUMER_KEY"],
                privatekey_file=str(key_file),
                domain=domain,
                **common,
            )
        if env["SF_USERNAME"] or env["SF_PASSWORD"]:
            _require(env, ("SF_USERNAME", "SF_PASSWORD"), "a password login")
            return Salesforce(
                username=env["SF_USERNAME"],
                password=env["SF_PASSWORD"],
                security_token=env["SF_SECURITY_TOKEN"],
                domain=domain,
                **common,
            )
    except SalesforceAuthenticationFailed as exc:
        msg = f"Salesforce refused the login: {exc.code}: {_clean(exc.message)}"
        raise ConnectError(msg) from exc
    except requests.RequestException as exc:
        msg = f"cannot reach Salesforce to log in: {type(exc).__name__}"
        raise ConnectError(msg) from exc
    msg = (
        "no Salesforce credentials in the environment: set SF_INSTANCE_URL and "
        "SF_ACCESS_TOKEN; or SF_USERNAME, SF_PASSWORD and SF_SECURITY_TOKEN (SF_DOMAIN=test "
        "for a sandbox); or SF_USERNAME, SF_CONSUMER_KEY and SF_PRIVATE_KEY_FILE (JWT)"
    )
    raise ConnectError(msg)


def _require(env: dict[str, str], names: tuple[str, ...], method: str) -> None:
    missing = [name for name in names if not env[name]]
    if missing:
        msg = f"Salesforce login by {method} needs {', '.join(names)}: {', '.join(missing)} not set"
        raise ConnectError(msg)


def _clean(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def error_code(exc: SalesforceError) -> tuple[str, str]:
    """The `errorCode` and message of a REST error (first entry of the JSON array)."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), _clean(first.get("message", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", "")), _clean(content.get("message", ""))
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return "", _clean(re.sub(r"<[^>]+>", " ", text))[:200]


def translate(exc: BaseException, doing: str) -> ConnectorError:
    """The engine's error for a failed Salesforce call (`doing` says what was attempted)."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, SalesforceError):
        code, message = error_code(exc)
        status = getattr(exc, "status", 0) or 0
        where = f"{doing}: HTTP {status} {code} {message}".rstrip()
        if code == "REQUEST_LIMIT_EXCEEDED" and _CONCURRENT.search(message):
            # "ConcurrentPerOrgLongTxn Limit exceeded." (too many requests running longer
            # than 20 s in the org at once) and "ConcurrentRequests ... Limit exceeded." are
            # momentary, unlike "TotalRequests Limit exceeded." (the daily allowance): seen
            # in mautic/mautic#5006 and SalesforceLabs/OrgCheck#432; Salesforce's "API
            # Request Limits and Allocations" counts them separately. Retried after a wait.
            return TransientError(
                f"{where} (too many long-running requests in the org at once; retrying)",
                retry_after=CONCURRENCY_WAIT,
            )
        if code == "REQUEST_LIMIT_EXCEEDED":
            return LimitReachedError(f"the org's API limit is reached ({where})")
        if isinstance(exc, SalesforceExpiredSession):
            return ConnectError(
                f"{where}; the session expired or was revoked (with SF_ACCESS_TOKEN the engine "
                "cannot log in again: set a new token, or use a username/JWT login)"
            )
        if status in TRANSIENT_STATUS or code in TRANSIENT_CODES:
            return TransientError(where)
        if isinstance(exc, SalesforceRefusedRequest):
            return ConnectError(f"{where} (check the integration user's permissions)")
        return SourceError(where)
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # a 2xx whose body is not JSON (a proxy's page, an empty or cut-off body): it
        # confirms nothing and reads as nothing (issue 10: only a confirmation counts)
        return TransientError(f"{doing}: Salesforce's answer is not JSON ({_clean(exc)[:120]})")
    if isinstance(exc, requests.Timeout):
        return TransientError(f"{doing}: no answer in time ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return TransientError(f"{doing}: connection failed ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return TransientError(f"{doing}: {type(exc).__name__}")
    msg = f"{doing}: {type(exc).__name__}: {exc}"
    return SourceError(msg)
