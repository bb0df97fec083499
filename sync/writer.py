"""Write a plan's updates in batches, retrying what is transient, losing nothing.

Batches are the connector's maximum size. A call that fails as a whole with a
`TransientError` is retried; so are the records a batch reports as transiently failed
(row locks, a 503 for part of a batch). Waits follow the CRM's Retry-After when given,
otherwise exponential backoff with full jitter. No wait exceeds `connectors.waits.MAX_WAIT`:
a Retry-After beyond it stops the writing like an API limit (the rest is kept for the
next run, exit 1, and the message says when to rerun). Records that still fail, and records
rejected for good (validation errors), come back as failures; after every batch the
caller's `on_batch` records what happened, so a run killed mid-write resumes cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from icp_engine.connectors.base import Connector, RecordUpdate, WriteResult
from icp_engine.connectors.errors import LimitReachedError, TransientError
from icp_engine.connectors.waits import WaitTooLong, too_long, wait_retry_after
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

log = logging.getLogger(__name__)

BatchOutcome = list[tuple[RecordUpdate, WriteResult]]
Sleep = Callable[[float], None]


class _RecordsToRetry(TransientError):
    """Some records of a batch failed transiently; retry just those."""


@dataclass
class WriteSummary:
    """What happened to every update handed to `write_all`."""

    written: int = 0
    failed: BatchOutcome = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    not_attempted: list[RecordUpdate] = field(default_factory=list)
    stopped: str | None = None
    """Why writing stopped early (an API limit), if it did."""
    retries: int = 0


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "write attempt %d failed (%s); retrying in %.1f s", state.attempt_number, error, wait
    )


def _worth_waiting_for(error: BaseException) -> bool:
    """Transient, and the CRM did not ask for a wait beyond the ceiling."""
    return isinstance(error, TransientError) and not too_long(error.retry_after)


def make_retrying(
    attempts: int = 5, max_wait: float = 60.0, sleep: Sleep | None = None
) -> Retrying:
    """The retry policy for writes: transient errors only, `attempts` tries in all."""
    options: dict[str, object] = {}
    if sleep is not None:
        options["sleep"] = sleep
    return Retrying(
        retry=retry_if_exception(_worth_waiting_for),
        stop=stop_after_attempt(attempts),
        wait=wait_retry_after(multiplier=0.5, max=max_wait),
        before_sleep=_log_retry,
        reraise=True,
        **options,  # type: ignore[arg-type]
    )


class _Stopped(Exception):
    """A fatal limit hit mid-batch; carries what the batch had already settled."""

    def __init__(
        self, cause: LimitReachedError, settled: BatchOutcome, pending: list[RecordUpdate]
    ):
        super().__init__(str(cause))
        self.cause, self.settled, self.pending = cause, settled, pending


def _write_batch(
    connector: Connector, batch: Sequence[RecordUpdate], retrying: Retrying, summary: WriteSummary
) -> BatchOutcome:
    final: dict[str, tuple[RecordUpdate, WriteResult]] = {}
    pending = list(batch)
    last_error: dict[str, WriteResult] = {}
    try:
        for attempt in retrying.copy():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    summary.retries += 1
                results = {r.record_id: r for r in connector.write(pending)}
                retry_next = []
                for update in pending:
                    result = results.get(update.record_id) or WriteResult(
                        update.record_id,
                        ok=False,
                        code="NO_RESULT",
                        message="the CRM returned no result for this record",
                        transient=True,
                    )
                    if result.ok or not result.transient:
                        final[update.record_id] = (update, result)
                    else:
                        retry_next.append(update)
                        last_error[update.record_id] = result
                pending = retry_next
                if retry_next:
                    waits = [last_error[u.record_id].retry_after or 0.0 for u in retry_next]
                    message = f"{len(retry_next)} records failed transiently"
                    raise _RecordsToRetry(message, retry_after=max(waits) or None)
    except TransientError as exc:
        if exc.retry_after is not None and too_long(exc.retry_after):
            settled = [final[u.record_id] for u in batch if u.record_id in final]
            cause = WaitTooLong(exc.retry_after, f"writing {len(pending)} records")
            raise _Stopped(cause, settled, pending) from exc
        for update in pending:
            result = last_error.get(update.record_id) or WriteResult(
                update.record_id, ok=False, code="TRANSIENT", message=str(exc), transient=True
            )
            final[update.record_id] = (update, result)
    except LimitReachedError as exc:
        settled = [final[u.record_id] for u in batch if u.record_id in final]
        raise _Stopped(exc, settled, pending) from exc
    return [final[u.record_id] for u in batch]


def write_all(
    connector: Connector,
    updates: Sequence[RecordUpdate],
    on_batch: Callable[[BatchOutcome], None],
    retrying: Retrying | None = None,
    progress: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Write `updates` through `connector`, calling `on_batch` after every batch.

    Args:
        connector: where to write; its `max_batch_size` sets the batch size.
        updates: one update per record.
        on_batch: records each batch's outcome (state commits happen here).
        retrying: the retry policy (`make_retrying()` by default).
        progress: called with the number of records finished after every batch.

    Returns:
        A summary. `LimitReachedError` stops the writing and leaves the remaining
        updates in `not_attempted`; other fatal errors propagate.
    """
    retrying = retrying or make_retrying()
    summary = WriteSummary()
    size = connector.max_batch_size
    for start in range(0, len(updates), size):
        batch = updates[start : start + size]
        try:
            outcome = _write_batch(connector, batch, retrying, summary)
        except _Stopped as stop:
            summary.stopped = str(stop.cause)
            summary.not_attempted = [*stop.pending, *updates[start + size :]]
            if stop.settled:
                on_batch(stop.settled)
                _tally(summary, stop.settled)
            log.warning(
                "stopped writing: %s; %d records wait for the next run",
                stop.cause,
                len(summary.not_attempted),
            )
            break
        on_batch(outcome)
        _tally(summary, outcome)
        if progress is not None:
            progress(len(batch))
    return summary


def _tally(summary: WriteSummary, outcome: BatchOutcome) -> None:
    for update, result in outcome:
        if result.ok:
            summary.written += 1
        elif result.deleted:
            summary.deleted.append(update.record_id)
        else:
            summary.failed.append((update, result))
