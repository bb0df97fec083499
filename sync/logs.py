"""Logging to stderr, as text for people or JSON lines for schedulers, secrets redacted.

Credentials come from the environment; a filter replaces their values wherever they
would appear in a log line, whatever logged them (our code, requests, urllib3).

Verbosity: `-q` warnings and errors only; default the run's story (info); `-v` what a
person debugging a run wants from the engine itself (stages and their timings, pages
read, API calls per stage, batch outcomes); `-vv` adds every HTTP request and the debug
output of the client libraries. With `--log-format json` every line on stderr is one
JSON object: log records, progress events (`"event": "progress"`) and the run summary
(`"event": "summary"`) alike.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

SECRET_VARIABLES = (
    "SF_ACCESS_TOKEN",
    "SF_PASSWORD",
    "SF_SECURITY_TOKEN",
    "SF_CONSUMER_SECRET",
    "HUBSPOT_ACCESS_TOKEN",
    "ICP_LLM_API_KEY",
)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replaces the value of every secret environment variable in a record's message."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = [v for k in SECRET_VARIABLES if len(v := os.environ.get(k, "")) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


OUR_LOGGERS = ("icp", "sync", "connectors", "scoring")
"""The engine's own loggers: `-v` turns them to debug; libraries stay at info."""
HTTP_LOGGERS = ("urllib3.connectionpool",)
"""One line per HTTP request: `-vv`."""

_settings = {"format": "text"}


def log_format() -> str:
    """The format `configure` set: `text` or `json` (the CLI asks before printing)."""
    return _settings["format"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text).

    A record logged with `extra={"event": ..., "data": {...}}` carries the event name and
    its fields as keys of the same object (progress, summary), for a scheduler to read.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event:
            entry["event"] = event
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            for key, value in data.items():
                entry.setdefault(str(key), value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each line, so lines print above progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(log_format: str = "text", verbosity: int = 0) -> None:
    """Send logs to stderr in `log_format`.

    `verbosity` is `-v` count minus `-q` count: below 0 warnings only, 0 info, 1 the
    engine's debug lines (libraries stay at info), 2 or more everything, HTTP included.
    """
    _settings["format"] = log_format
    handler = _Stderr(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    if verbosity < 0:
        root.setLevel(logging.WARNING if verbosity == -1 else logging.ERROR)
    elif verbosity >= 2:
        root.setLevel(logging.DEBUG)
    else:
        root.setLevel(logging.INFO)
    ours = logging.DEBUG if verbosity >= 1 else logging.NOTSET
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.NOTSET)
