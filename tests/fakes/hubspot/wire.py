"""Wire basics shared by the fake HubSpot portal's endpoints: replies, errors, parsing.

Every error body has HubSpot's `status`, `message`, `correlationId` and `category`
(extra keys such as `errors` or `context` go before `category`, as HubSpot orders them).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals

MAX_BATCH = 100
JSON_TYPE = "application/json;charset=utf-8"
CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    423: "LOCKED",
    429: "RATE_LIMITS",
}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    search: bool = False  # search responses carry no X-HubSpot-RateLimit headers
    headers: dict[str, str] = field(default_factory=dict)


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def reply(status: int, payload: Any) -> Reply:
    return Reply(status, dumps(payload))


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
    }
    body.update(extra)
    body["category"] = category
    return body


class ApiError(Exception):
    def __init__(self, status: int, message: str, category: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.category = category or CATEGORIES.get(status, "ERROR")
        self.extra = extra

    def reply(self) -> Reply:
        return reply(self.status, error_body(self.category, str(self), **self.extra))


def object_type(name: str) -> str:
    obj = schema.OBJECT_TYPES.get(name)
    if obj is None:
        raise ApiError(400, f"Unable to infer object type from: {name}")
    return obj


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise ApiError(400, f"Invalid input JSON on line {line}, column {col}: {exc}") from None


def query_names(query: dict[str, list[str]], key: str) -> list[str] | None:
    """A multi or comma-separated query parameter, flattened (None when absent/empty)."""
    values = [part for raw in query.get(key, []) for part in raw.split(",") if part]
    return values or None


def query_flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[-1].strip().lower() == "true"


def batch_inputs(data: Any, limit: int = MAX_BATCH) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise ApiError(400, "Invalid input JSON: `inputs` must be a list.")
    inputs = data["inputs"]
    if len(inputs) > limit:
        raise ApiError(400, f"Batch input size {len(inputs)} is above the maximum of {limit}.")
    ids = []
    for item in inputs:
        rid = item.get("id") if isinstance(item, dict) else None
        if rid is None or isinstance(rid, bool | dict | list):
            raise ApiError(400, "Invalid input JSON: every input needs an `id`.")
        ids.append(vals.as_text(rid))
    return inputs, ids
