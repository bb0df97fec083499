"""Errors a connector raises, and how the rest of the engine should treat them.

```
ConnectorError                 root: anything a connector raises on purpose
├── TransientError             retry with backoff (429, 5xx, resets, timeouts, row locks)
├── FatalError                 do not retry
│   ├── ConnectError           cannot reach or authenticate to the CRM      -> exit 3
│   ├── LimitReachedError      the CRM's or our own API budget is used up   -> stop writing, exit 1
│   └── SourceError            the source data cannot be read at all        -> exit 2
```

Per-record failures are not exceptions: `Connector.write` returns a `WriteResult` per
record, each saying whether its error is transient.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every error a connector raises on purpose."""


class TransientError(ConnectorError):
    """A failure worth retrying: the same call may succeed a moment later.

    Args:
        message: what happened, with no secret in it.
        retry_after: seconds the CRM asked us to wait (Retry-After), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """A failure that retrying will not fix."""


class ConnectError(FatalError):
    """The CRM cannot be reached, or refused our credentials (exit 3)."""


class LimitReachedError(FatalError):
    """An API allowance is used up; pending writes wait for the next run (exit 1)."""


class SourceError(FatalError):
    """The source cannot be read at all: a missing file, a missing id column (exit 2)."""
