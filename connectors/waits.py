"""The longest the engine waits when a CRM says "come back later", and what it does then.

A 429 (RFC 6585, section 4) may carry `Retry-After` in seconds. A scheduled run that
honoured any value would block for as long as the server asked (an hour, a day) and
the next run behind it too. So every wait has a ceiling, `MAX_WAIT`: a Retry-After
beyond it is not waited out; it ends the write phase as an API limit does (the records
not yet written are kept for the next run, exit 1) with the time to rerun in the message.
https://www.rfc-editor.org/rfc/rfc6585#section-4

The retry policy that honours these waits is `connectors.retry`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icp_engine.connectors.errors import LimitReachedError

MAX_WAIT = 300.0
"""Seconds: the longest single wait a run accepts from a Retry-After."""


class WaitTooLong(LimitReachedError):
    """The CRM asked for a wait beyond `MAX_WAIT`: stop, keep the rest, rerun later."""

    def __init__(self, seconds: float, what: str, now: datetime | None = None) -> None:
        when = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
        super().__init__(
            f"{what}: the CRM asked to wait {seconds:,.0f} s (Retry-After), more than the "
            f"{MAX_WAIT:.0f} s a run waits; rerun after {when:%Y-%m-%d %H:%M} UTC"
        )
        self.seconds, self.rerun_after = seconds, when


def too_long(seconds: float | None) -> bool:
    return seconds is not None and seconds > MAX_WAIT


def bounded(seconds: float) -> float:
    """`seconds`, never more than `MAX_WAIT` (for waits that are not a Retry-After)."""
    return min(max(seconds, 0.0), MAX_WAIT)
