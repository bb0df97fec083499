"""Wire plumbing of the fake Salesforce org: requests, responses and the two error kinds.

`ApiError` fails a whole request (HTTP status and the documented JSON error array),
`RecordError` one record of a write (SaveResult error / Bulk `sf__Error`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

JSON_TYPE = "application/json;charset=UTF-8"
CSV_TYPE = "text/csv"
NOT_FOUND = "The requested resource does not exist"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, data, JSON_TYPE, dict(headers or {}))


class ApiError(Exception):
    """A request-level failure: HTTP status and the documented JSON error array."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> Response:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return json_response(self.status, [item])


class RecordError(Exception):
    """A per-record failure (SaveResult error / Bulk sf__Error)."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = (), record_id: Any = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, list(fields)
        self.record_id: str | None = record_id

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_bulk(self) -> str:
        """Bulk API 2.0 `sf__Error`: `CODE:message:--` or `CODE:message:Field1,Field2 --`."""
        tail = f"{','.join(self.fields)} --" if self.fields else "--"
        return f"{self.code}:{self.message}:{tail}"


def phrase(status: int) -> str:
    return HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
