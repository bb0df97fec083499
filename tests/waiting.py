"""Waiting in tests on something observable, never for a fixed time: `wait_until` polls a
condition (a line printed, a file or state row appearing, a fake server's request count)
until it holds or a deadline passes; `settle` waits for the real clock to pass a fake CRM's."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

POLL = 0.005
"""Seconds between two looks at the condition."""


def wait_until(
    condition: Callable[[], object],
    what: str,
    timeout: float = 60.0,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Return once `condition()` is true; fail the test naming `what` after `timeout`
    seconds, or as soon as `alive()` says the process being watched has ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and not alive():
            raise AssertionError(f"the process ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(POLL)


class _Stamped(Protocol):
    def now(self) -> datetime: ...


def settle(fake: _Stamped) -> None:
    """Wait until the real clock passes the fake CRM's, which runs 1 ms a stamp ahead while
    busy: a stamp ahead of a run's start is read again by the next run (watermarks are
    capped at the run's start, as they must be against a real CRM's skewed clock)."""
    latest = fake.now()
    wait_until(lambda: datetime.now(UTC) > latest, "the real clock passes the fake CRM's")
