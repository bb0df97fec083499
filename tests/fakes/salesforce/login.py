"""Logins to the fake Salesforce org: SOAP `login()` and the OAuth 2.0 token endpoint
(JWT bearer, username-password and client-credentials flows), its session tokens, and
requests sessions that trust the org's certificate (and send login hosts to the org)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

from requests import PreparedRequest, Session
from requests import Response as HttpResponse
from requests.adapters import HTTPAdapter

from tests.fakes.salesforce.wire import Request, Response, json_response


class LoginEndpoints:
    """FakeSalesforce's login methods; the state is set up by `FakeSalesforce.__init__`."""

    api_version: str
    username: str
    password: str
    security_token: str
    consumer_key: str
    consumer_secret: str
    org_id: str
    user_id: str
    access_token: str
    ca_path: str
    _lock: threading.RLock
    _tokens: set[str]

    if TYPE_CHECKING:

        @property
        def instance_url(self) -> str: ...

    def issue_token(self) -> str:
        """A new valid session id, which becomes `access_token`."""
        with self._lock:
            token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
            self._tokens.add(token)
            self.access_token = token
            return token

    def revoke_session(self) -> None:
        """Expire every session: calls answer 401 INVALID_SESSION_ID until a new login."""
        with self._lock:
            self._tokens.clear()

    def session(self) -> Session:
        """A requests.Session that trusts the org's certificate.

        Its adapter for the org pins `ca_path`: in requests, REQUESTS_CA_BUNDLE and
        CURL_CA_BUNDLE from the environment override a plain `session.verify`.
        """
        session = Session()
        session.verify = self.ca_path
        session.mount(self.instance_url, _FakeAdapter(self.ca_path))
        return session

    def redirecting_session(self, domains: Iterable[str] = ("login", "test")) -> Session:
        """`session()` whose requests to https://{domain}.salesforce.com reach this org."""
        session = self.session()
        adapter = _FakeAdapter(self.ca_path, self.instance_url)
        for domain in domains:
            session.mount(f"https://{domain}.salesforce.com", adapter)
        return session

    def _soap_login(self, req: Request) -> Response:
        text = req.body.decode("utf-8", "replace")

        def element(name: str) -> str:
            match = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
            return html.unescape(match.group(1)) if match else ""

        version = req.path.split("/")[4] if req.path.count("/") >= 4 else self.api_version
        password = element("password")
        valid = element("username") == self.username and (
            password == self.password + self.security_token
            or (not self.security_token and password == self.password)
        )
        envelope = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/" {ns} xmlns:xsi='
            '"http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}'
            "</soapenv:Body></soapenv:Envelope>"
        )
        if not valid:
            message = "Invalid username, password, security token; or user locked out."
            fault = (
                "<soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>"
                f"INVALID_LOGIN: {message}</faultstring><detail><sf:LoginFault "
                'xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>'
                f"<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault>"
                "</detail></soapenv:Fault>"
            )
            xml = envelope.format(ns='xmlns:sf="urn:fault.partner.soap.sforce.com"', body=fault)
            return Response(500, xml.encode(), "text/xml;charset=UTF-8")
        token = self.issue_token()
        base = self.instance_url
        result = (
            "<loginResponse><result>"
            f"<metadataServerUrl>{base}/services/Soap/m/{version}/{self.org_id[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{base}/services/Soap/u/{version}/{self.org_id[:15]}</serverUrl>"
            f"<sessionId>{token}</sessionId><userId>{self.user_id}</userId><userInfo>"
            f"<organizationId>{self.org_id}</organizationId><organizationName>ICP Fake Org"
            f"</organizationName><sessionSecondsValid>7200</sessionSecondsValid><userEmail>"
            f"{html.escape(self.username)}</userEmail><userId>{self.user_id}</userId><userName>"
            f"{html.escape(self.username)}</userName></userInfo></result></loginResponse>"
        )
        xml = envelope.format(ns='xmlns="urn:partner.soap.sforce.com"', body=result)
        return Response(200, xml.encode(), "text/xml;charset=UTF-8")

    def _oauth_token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")

        def refuse(error: str, description: str) -> Response:
            return json_response(400, {"error": error, "error_description": description})

        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                segment = form.get("assertion", "").split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            except (IndexError, ValueError):
                return refuse("invalid_grant", "invalid assertion")
            if claims.get("iss") != self.consumer_key:
                return refuse("invalid_client_id", "client identifier invalid")
            if claims.get("sub") != self.username:
                return refuse("invalid_grant", "user hasn't approved this consumer")
        elif grant == "password":
            if form.get("client_id") != self.consumer_key:
                return refuse("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != self.consumer_secret:
                return refuse("invalid_client", "invalid client credentials")
            if form.get("username") != self.username or form.get("password") not in (
                self.password,
                self.password + self.security_token,
            ):
                return refuse("invalid_grant", "authentication failure")
        elif grant == "client_credentials":
            basic = req.headers.get("authorization", "").removeprefix("Basic ")
            expected = f"{self.consumer_key}:{self.consumer_secret}".encode()
            if base64.b64decode(basic + "==") != expected:
                return refuse("invalid_client", "invalid client credentials")
        else:
            return refuse("unsupported_grant_type", "grant type not supported")
        token = self.issue_token()
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(
            hmac.new(
                self.consumer_secret.encode(), (self.user_id + issued).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return json_response(
            200,
            {
                "access_token": token,
                "scope": "api",
                "instance_url": self.instance_url,
                "id": f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
            },
        )


class _FakeAdapter(HTTPAdapter):
    """Trusts the fake org's CA whatever the environment says; optionally sends the requests
    (for a login host) to the fake org instead."""

    def __init__(self, ca_path: str, target: str | None = None):
        super().__init__()
        self.ca_path, self.target = ca_path, urlsplit(target) if target else None

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        if self.target is not None:
            parts = urlsplit(request.url or "")
            request.url = urlunsplit(
                (self.target.scheme, self.target.netloc, parts.path, parts.query, parts.fragment)
            )
        return super().send(request, stream, timeout, self.ca_path, cert, proxies)
