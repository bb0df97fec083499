"""Client-side rate limiting for HubSpot: stay under the portal's budget, never bounce off it.

HubSpot allows a private app a burst of calls per rolling window (100 or 190 per 10 s by
plan) plus a daily allowance, and search endpoints about 5 requests per second of their
own. Every normal response says where the burst budget stands
(`X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds`, `-Daily`,
`-Daily-Remaining`); `SlidingWindow` takes those as they come so the connector sends as
fast as the budget allows and no faster.

Each call holds a slot from the moment it is sent until the window has passed since its
*response* arrived: the server counted the call at some moment in between, so a slot is
never freed before the server's own count drops it.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Wait = Callable[[threading.Condition, float | None], object]
"""Block on the window's condition, held, for at most `timeout` seconds (None: until told)."""


def _wait(condition: threading.Condition, timeout: float | None) -> object:
    return condition.wait(timeout)


def _header(headers: Mapping[str, str] | None, name: str) -> float | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:  # plain dicts (tests, cassettes) may not fold case
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class SlidingWindow:
    """At most `max_calls` calls in any `interval` seconds; thread-safe, blocking.

    Args:
        max_calls: calls allowed per window until the server's headers say otherwise.
        interval: the window, in seconds.
        adaptive: follow the `X-HubSpot-RateLimit-*` headers fed to `release`.
        clock, wait: injectable for tests (a simulated clock and a wait that moves it).
    """

    def __init__(
        self,
        max_calls: int,
        interval: float,
        adaptive: bool = True,
        clock: Clock = time.monotonic,
        wait: Wait = _wait,
    ) -> None:
        self.max_calls = max(1, int(max_calls))
        self.interval = float(interval)
        self.adaptive = adaptive
        self._clock = clock
        self._wait = wait
        self._slots: dict[int, float] = {}
        """Slot id -> when the call's response arrived (inf while it is in flight)."""
        self._ids = itertools.count()
        self._blocked_until = 0.0
        self._cond = threading.Condition()
        self.waited = 0.0
        """Seconds callers spent waiting for a slot, in all."""
        self.daily_max: float | None = None
        self.daily_remaining: float | None = None

    def _expire(self, now: float) -> None:
        cutoff = now - self.interval
        for slot in [s for s, t in self._slots.items() if t <= cutoff]:
            del self._slots[slot]

    def acquire(self) -> int:
        """Block until a call may be sent; return the slot it holds."""
        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                self._expire(now)
                if now >= self._blocked_until and len(self._slots) < self.max_calls:
                    slot = next(self._ids)
                    self._slots[slot] = math.inf
                    self.waited += now - started
                    return slot
                wake: list[float] = []
                if now < self._blocked_until:
                    wake.append(self._blocked_until)
                finished = [t for t in self._slots.values() if t != math.inf]
                if len(self._slots) >= self.max_calls and finished:
                    wake.append(min(finished) + self.interval)
                timeout = max(max(wake) - now, 0.001) if wake else None
                self._wait(self._cond, timeout)

    def release(self, slot: int, headers: Mapping[str, str] | None = None) -> None:
        """The call holding `slot` got its answer (with these headers, if any)."""
        with self._cond:
            now = self._clock()
            if slot in self._slots:
                self._slots[slot] = now
            if self.adaptive and headers:
                self._follow(headers, now)
            self._cond.notify_all()

    def _follow(self, headers: Mapping[str, str], now: float) -> None:
        limit = _header(headers, "X-HubSpot-RateLimit-Max")
        millis = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        remaining = _header(headers, "X-HubSpot-RateLimit-Remaining")
        if limit is not None and limit >= 1 and int(limit) != self.max_calls:
            log.debug("HubSpot burst limit: %d calls", int(limit))
            self.max_calls = int(limit)
        if millis is not None and millis > 0:
            self.interval = millis / 1000.0
        if remaining is not None:
            # Slots we hold count as used, so the server can only report fewer left than
            # we think when someone else shares the budget: count their calls too.
            ours = self.max_calls - len(self._slots)
            for _ in range(max(0, ours - int(remaining))):
                self._slots[next(self._ids)] = now
        daily = _header(headers, "X-HubSpot-RateLimit-Daily")
        daily_left = _header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None:
            self.daily_max = daily
        if daily_left is not None:
            self.daily_remaining = daily_left

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 said the window is full)."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
            self._cond.notify_all()

    def in_window(self) -> int:
        """Slots held now (in flight or answered within the window)."""
        with self._cond:
            self._expire(self._clock())
            return len(self._slots)
