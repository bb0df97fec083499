"""The one retry policy of the engine: both CRMs' reads, Salesforce's calls and the writer.

A call that fails with a `TransientError` (a 429, a 5xx, a reset connection, a row lock)
is tried again, up to `attempts` tries in all. Between tries the policy waits:

- the `Retry-After` the error carries (`TransientError.retry_after`), never more than
  `max_wait`; a Retry-After beyond `connectors.waits.MAX_WAIT` is not waited out at all
  (the error is not retried: the caller turns it into `WaitTooLong`, exit 1, rerun later);
- otherwise exponential backoff with full jitter (`backoff` x 2^n, at most `max_wait`),
  as AWS's "Exponential Backoff and Jitter" recommends.

Every wait is logged once, before it starts, by the one `before_sleep` line:
`<what>, attempt N failed (<error>); retrying in S s`. The sleep itself is injectable
(`sleep=`): tests pass a function that records the waits instead of sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from icp_engine.connectors.errors import TransientError
from icp_engine.connectors.waits import too_long
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
"""What waits between tries (`time.sleep` unless a caller injects another)."""


class wait_retry_after(wait_random_exponential):
    """Full-jitter exponential backoff, or the Retry-After a `TransientError` carries
    (never more than `max`)."""

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return min(float(error.retry_after), float(self.max))
        return float(super().__call__(retry_state))


def worth_waiting_for(error: BaseException) -> bool:
    """Transient, and the CRM did not ask for a wait beyond `MAX_WAIT`."""
    return isinstance(error, TransientError) and not too_long(error.retry_after)


def _logger(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s, attempt %d failed (%s); retrying in %.1f s",
            what,
            state.attempt_number,
            error,
            wait,
        )

    return before_sleep


def retrying(
    what: str,
    *,
    attempts: int = 5,
    backoff: float = 0.5,
    max_wait: float = 60.0,
    sleep: Sleep | None = None,
    give_up_on: Callable[[BaseException], bool] | None = None,
) -> Retrying:
    """The retry policy for one kind of call.

    Args:
        what: names the call in the log line (`HubSpot objects.basic_api.get_page`).
        attempts: tries in all (the first one included).
        backoff: base of the exponential wait, in seconds.
        max_wait: the longest single wait (a Retry-After above it is cut to it).
        sleep: what waits (default `time.sleep`).
        give_up_on: transient errors not to retry all the same (a refused connection
            at start-up is a configuration problem, not a blip).
    """

    def retry_on(error: BaseException) -> bool:
        return worth_waiting_for(error) and not (give_up_on is not None and give_up_on(error))

    return Retrying(
        retry=retry_if_exception(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_retry_after(multiplier=backoff, max=max_wait),
        before_sleep=_logger(what),
        reraise=True,
        sleep=sleep or time.sleep,
    )
