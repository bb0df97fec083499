"""Logging to stderr, as text for people or JSON lines for schedulers, secrets redacted.

Credentials come from the environment. A CRM or a proxy may echo one back in an error
body, which then travels in an exception's text; so redaction is not only a log filter:
`redact` is applied to what the engine stores in state (run and failure messages), and
`guard_streams` makes everything written to stdout and stderr (the `error:` line,
`--json`, tables, `status`) pass through it. A secret is replaced as written, JSON-escaped
and URL-encoded, and any `Bearer` token is replaced too.

Verbosity: `-q` warnings and errors only; default the run's story (info); `-v` what a
person debugging a run wants from the engine itself (stages and their timings, pages
read, API calls per stage, batch outcomes); `-vv` adds every HTTP request and the debug
output of the client libraries. With `--log-format json` every line on stderr is one
JSON object: log records, progress events (`"event": "progress"`) and the run summary
(`"event": "summary"`) alike.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import quote

SECRET_VARIABLES = (
    "SF_ACCESS_TOKEN",
    "SF_PASSWORD",
    "SF_SECURITY_TOKEN",
    "SF_CONSUMER_SECRET",
    "HUBSPOT_ACCESS_TOKEN",
    "ICP_LLM_API_KEY",
)
REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/!=-]{8,}")


def secret_values() -> list[str]:
    """The secrets of this process's environment in every form they may be echoed in."""
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            found |= {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value)}
    return sorted(found, key=len, reverse=True)  # longest first: no half-replaced secret


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret (and any bearer token) replaced by `[redacted]`."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written before passing it on."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.secrets = secret_values()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def write(self, text: str) -> int:
        self.stream.write(redact(text, self.secrets))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True


def guard_streams() -> None:
    """Make stdout and stderr redact secrets (once; click, rich and logging all use them)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


class RedactSecrets(logging.Filter):
    """Replaces the value of every secret environment variable in a record's message."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = secret_values()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        return True


OUR_LOGGERS = ("icp", "icp_engine")
"""The engine's own loggers: `-v` turns them to debug; libraries stay at info."""
HTTP_LOGGERS = ("urllib3.connectionpool",)
"""One line per HTTP request: `-vv`."""

_settings = {"format": "text"}


def log_format() -> str:
    """The format `configure` set: `text` or `json` (the CLI asks before printing)."""
    return _settings["format"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text).

    The logger is named without the `icp_engine.` namespace (`sync.runner`), as people read it.

    A record logged with `extra={"event": ..., "data": {...}}` carries the event name and
    its fields as keys of the same object (progress, summary), for a scheduler to read.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name.removeprefix("icp_engine."),
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
