"""Optional: an LLM names and describes segments and suggests hypotheses to test.

Segments always have a deterministic name made from their traits; the engine never
needs an LLM. Where `ICP_LLM_BASE_URL` is set (any OpenAI-compatible endpoint, with
`ICP_LLM_API_KEY` and `ICP_LLM_MODEL`), `describe_segments` sends each segment's rule and
figures (never account names or any other record) to `POST {base}/chat/completions` and
adds `llm_name`, `llm_description` and `hypotheses` to copies of the segments. Any
failure is logged as a warning (never with the key) and the segments come back as they
were. What the model writes is untrusted text: the report escapes it like any other.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

import requests

logger = logging.getLogger(__name__)

ENV_BASE_URL, ENV_API_KEY, ENV_MODEL = "ICP_LLM_BASE_URL", "ICP_LLM_API_KEY", "ICP_LLM_MODEL"
FIGURES = (
    "rule",
    "support",
    "win_rate",
    "win_rate_ci",
    "acv",
    "cycle_days",
    "lift",
    "acv_vs_avg",
    "traits",
)
"""What the model is told about a segment: its rule and aggregate figures only."""
MAX_NAME, MAX_TEXT, MAX_HYPOTHESES = 80, 600, 5
SYSTEM_PROMPT = (
    "You help B2B sales leaders understand their ideal customer profile. You get account "
    "segments found in won and lost deals: each with its rule, number of accounts "
    "(support), win rate with its 95% interval, average deal size (acv), median sales "
    "cycle in days, lift over the overall win rate and the traits that set it apart. "
    "For each segment write a short memorable name (at most 6 words), a one-sentence "
    "description a seller understands, and 1 to 3 hypotheses the sales team could test "
    "on why it wins or loses. Use only the figures given; invent no facts. Reply with "
    'JSON only, no prose: {"segments": [{"id": <the id given>, "name": "...", '
    '"description": "...", "hypotheses": ["..."]}]}, one entry per segment.'
)


class NamingError(Exception):
    """The endpoint failed or answered something unusable; the segments stay as they were."""


def describe_segments(
    segments: list[dict[str, Any]],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    session: requests.Session | None = None,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Segments with an LLM's name, description and hypotheses merged into copies.

    Args:
        segments: segment dicts (name, rule, support, win_rate, ...) as `icp train` makes.
        base_url: the API base, e.g. `https://api.example.com/v1`; default
            `ICP_LLM_BASE_URL`. Unset: the segments come back unchanged, nothing is sent.
        api_key: sent as a bearer token; default `ICP_LLM_API_KEY` (may be unset for a
            local server).
        model: the model name; default `ICP_LLM_MODEL`.
        session: the HTTP session to use (the test seam); default a new one.
        timeout: seconds to wait for the endpoint.

    Returns:
        New dicts with `llm_name`, `llm_description` and `hypotheses` added (the
        deterministic `name` is kept), or `segments` itself when naming is off or failed.
    """
    base = (base_url or os.environ.get(ENV_BASE_URL) or "").strip()
    if not base or not segments:
        return segments
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    name = model or os.environ.get(ENV_MODEL)
    endpoint = base.rstrip("/") + "/chat/completions"
    if not name:
        logger.warning(
            "%s is set but %s is not: segments keep their rule-based names",
            ENV_BASE_URL,
            ENV_MODEL,
        )
        return segments
    try:
        content = _complete(endpoint, key, name, segments, session, timeout)
        described = _parse(content, len(segments))
    except (requests.RequestException, NamingError, ValueError) as error:
        reason = str(error).replace(key, "REDACTED") if key else str(error)
        logger.warning(
            "LLM naming at %s failed (%s: %s); segments keep their rule-based names",
            _where(endpoint),
            type(error).__name__,
            reason[:300],
        )
        return segments
    return [
        {
            **segment,
            "llm_name": d["name"],
            "llm_description": d["description"],
            "hypotheses": d["hypotheses"],
        }
        for segment, d in zip(segments, described, strict=True)
    ]


def request_body(model: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completion request: the instructions, then the segments as JSON."""
    facts = [
        {"id": i, "name": s.get("name"), **{k: s[k] for k in FIGURES if s.get(k) is not None}}
        for i, s in enumerate(segments)
    ]
    user = json.dumps({"segments": facts}, sort_keys=True, default=_plain)
    return {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ],
    }


def _complete(
    endpoint: str,
    key: str | None,
    model: str,
    segments: list[dict[str, Any]],
    session: requests.Session | None,
    timeout: float,
) -> str:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    owned = session is None
    http = session or requests.Session()
    try:
        response = http.post(
            endpoint, json=request_body(model, segments), headers=headers, timeout=timeout
        )
    finally:
        if owned:
            http.close()
    if response.status_code != 200:  # the body is not logged: errors may echo the key
        msg = f"HTTP {response.status_code}"
        raise NamingError(msg)
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        msg = "not a chat completion response"
        raise NamingError(msg) from error
    if not isinstance(content, str):
        msg = "the completion has no text content"
        raise NamingError(msg)
    return content


def _parse(content: str, count: int) -> list[dict[str, Any]]:
    """The model's JSON, one entry per segment, matched by `id` (or by order)."""
    text = content.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    text = fenced.group(1) if fenced else text
    try:
        data = json.loads(text)
    except ValueError as error:
        msg = "the completion is not JSON"
        raise NamingError(msg) from error
    items = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        msg = 'the completion has no "segments" list'
        raise NamingError(msg)
    ids = [_as_id(i.get("id")) for i in items]
    if sorted(i for i in ids if i is not None) == list(range(count)) and len(ids) == count:
        by_id = dict(zip(ids, items, strict=True))
        items = [by_id[i] for i in range(count)]
    elif len(items) != count:
        msg = f"the completion describes {len(items)} segments, not {count}"
        raise NamingError(msg)
    return [_entry(item) for item in items]


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    name, description = item.get("name"), item.get("description", "")
    hypotheses = item.get("hypotheses", [])
    if not isinstance(name, str) or not name.strip():
        msg = "a segment has no name"
        raise NamingError(msg)
    if not isinstance(description, str) or not isinstance(hypotheses, list):
        msg = "a segment's description or hypotheses have the wrong type"
        raise NamingError(msg)
    return {
        "name": " ".join(name.split())[:MAX_NAME],
        "description": " ".join(description.split())[:MAX_TEXT],
        "hypotheses": [" ".join(str(h).split())[:MAX_TEXT] for h in hypotheses][:MAX_HYPOTHESES],
    }


def _as_id(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _where(endpoint: str) -> str:
    """The endpoint without user info or query, safe to log."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
