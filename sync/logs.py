"""Logging to stderr, as text for people or JSON lines for schedulers, secrets redacted.

Credentials come from the environment; a filter replaces their values wherever they
would appear in a log line, whatever logged them (our code, requests, urllib3).
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str = "text", verbosity: int = 0) -> None:
    """Send logs to stderr in `log_format`: info by default, -v debug, -q warnings only."""
    level = logging.INFO - 10 * verbosity
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(min(max(level, logging.DEBUG), logging.ERROR))
