"""Write a plan's updates in batches, retrying what is transient, losing nothing.

Batches are the size of the connector's write plan (`Connector.begin_write`). A call that
fails as a whole with a `TransientError` is retried; so are the records a batch reports
as transiently failed (row locks, a 503 for part of a batch), by the engine's one retry
policy (`connectors.retry`): waits follow the CRM's Retry-After when given, otherwise
exponential backoff with full jitter. No wait exceeds `connectors.waits.MAX_WAIT`:
a Retry-After beyond it stops the writing like an API limit (the rest is kept for the
next run, exit 1, and the message says when to rerun). Records that still fail, and records
rejected for good (validation errors), come back as failures; after every batch the
caller's `on_batch` records what happened, so a run killed mid-write resumes cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from icp_engine.connectors.base import Connector, RecordUpdate, WritePlan, WriteResult
from icp_engine.connectors.errors import LimitReachedError, TransientError
from icp_engine.connectors.retry import Sleep, retrying
from icp_engine.connectors.updates import RecordUpdates
from icp_engine.connectors.waits import WaitTooLong, too_long
from icp_engine.sync.state.records import LIMIT_REACHED, Failure
from tenacity import Retrying

log = logging.getLogger(__name__)

BatchOutcome = list[tuple[RecordUpdate, WriteResult]]


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


def make_retrying(
    attempts: int = 5, max_wait: float = 60.0, sleep: Sleep | None = None
) -> Retrying:
    """The retry policy for writes (`connectors.retry`): transient errors only,
    `attempts` tries in all."""
    return retrying("write", attempts=attempts, backoff=0.5, max_wait=max_wait, sleep=sleep)


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
    plan: WritePlan | None = None,
) -> WriteSummary:
    """Write `updates` through `connector`, calling `on_batch` after every batch.

    Args:
        connector: where to write.
        updates: one update per record.
        on_batch: records each batch's outcome (state commits happen here).
        retrying: the retry policy (`make_retrying()` by default).
        progress: called with the number of records finished after every batch.
        plan: the connector's write plan for these updates (its `batch_size` sets the
            batches); `connector.begin_write(len(updates))` when not given.

    Returns:
        A summary. `LimitReachedError` stops the writing and leaves the remaining
        updates in `not_attempted`; other fatal errors propagate.
    """
    retrying = retrying or make_retrying()
    summary = WriteSummary()
    plan = plan or connector.begin_write(len(updates))
    size = plan.batch_size
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


def accept_all(
    connector: Connector,
    count: int,
    progress: Callable[[int], None] | None = None,
    plan: WritePlan | None = None,
) -> WriteSummary:
    """`write_all` for a connector that `takes_every_update`: all `count` of them go in the
    plan's batches (`progress` told after each), and none is made into an object (a
    million updates and their answers were seconds of a backfill)."""
    plan = plan or connector.begin_write(count)
    for start in range(0, count, plan.batch_size):
        connector.accept(1)
        if progress is not None:
            progress(min(plan.batch_size, count - start))
    return WriteSummary(written=count)


def _tally(summary: WriteSummary, outcome: BatchOutcome) -> None:
    for update, result in outcome:
        if result.ok:
            summary.written += 1
        elif result.deleted:
            summary.deleted.append(update.record_id)
        else:
            summary.failed.append((update, result))


def hand_to(
    connector: Connector,
    updates: RecordUpdates,
    retrying: Retrying | None,
    progress: Callable[[int], None] | None = None,
    plan: WritePlan | None = None,
) -> tuple[list[str], BatchOutcome, WriteSummary]:
    """Give the updates to a connector that hands them over: the ids it accepted, what
    it refused, and the write summary (a million updates are not kept whole meanwhile)."""
    if connector.takes_every_update:
        summary = accept_all(connector, len(updates), progress, plan)
        return updates.record_ids.tolist(), [], summary
    accepted: list[str] = []
    refused: BatchOutcome = []

    def on_batch(outcome: BatchOutcome) -> None:
        for update, answer in outcome:
            if answer.ok:
                accepted.append(update.record_id)
            else:
                refused.append((update, answer))

    summary = write_all(connector, updates, on_batch, retrying, progress, plan)
    return accepted, refused, summary


def not_handed(refused: BatchOutcome, summary: WriteSummary) -> list[Failure]:
    """The failures of a hand-over: records the connector refused (not deleted ones) and
    those an API limit left unattempted."""
    return [
        Failure(u.record_id, r.code, r.message, r.transient, dict(u.values))
        for u, r in refused
        if not r.deleted
    ] + [
        Failure(u.record_id, LIMIT_REACHED, summary.stopped, True, dict(u.values))
        for u in summary.not_attempted
    ]
