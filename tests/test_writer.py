"""Writing a plan in batches: retry what is transient, report what is not, lose nothing.

A scripted connector replays what a CRM does to a write call (a 503 for the whole call,
a row lock on one record, a validation rule, a deleted record, a missing answer, the
daily API limit) and records every call. No test sleeps: the retry policy's sleep only
records the waits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icp_engine.connectors.base import (
    Connector,
    FieldInfo,
    PullContext,
    PullReport,
    RecordUpdate,
    WritePlan,
    WriteResult,
)
from icp_engine.connectors.errors import ConnectError, LimitReachedError, TransientError
from icp_engine.sync.config import load_config
from icp_engine.sync.writer import BatchOutcome, WriteSummary, make_retrying, write_all

MAPPING = load_config("csv", None).mapping

Step = Callable[[Sequence[RecordUpdate]], list[WriteResult]]


class ScriptedConnector(Connector):
    """Answers each `write` call with the next step of a script (all succeed once it ends)."""

    name = "scripted"
    max_batch_size = 3

    def __init__(self, *script: Step) -> None:
        super().__init__(MAPPING)
        self.script = list(script)
        self.calls: list[list[str]] = []

    def read(self, kind: Any, context: PullContext, report: PullReport) -> Iterator[pd.DataFrame]:
        return iter(())

    def deleted_ids(self, kind: Any, since: datetime | None, known: Collection[str]) -> set[str]:
        return set()

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        assert len(batch) <= self.max_batch_size
        self.calls.append([u.record_id for u in batch])
        self._calls.add("write")
        step = self.script.pop(0) if self.script else all_ok
        return step(batch)

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        return {"account": {}, "opportunity": {}}

    def begin_write(self, records: int) -> WritePlan:
        size = self.max_batch_size
        return WritePlan(records, size, math.ceil(records / size), "scripted")


# -- script steps ----------------------------------------------------------------------


def all_ok(batch: Sequence[RecordUpdate]) -> list[WriteResult]:
    return [WriteResult(u.record_id, ok=True) for u in batch]


def raises(error: Exception) -> Step:
    def step(batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        raise error

    return step


MISSING = object()


def answers(**by_id: Any) -> Step:
    """Per-record answers: a WriteResult maker, or MISSING to leave the record out."""

    def step(batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        results = []
        for update in batch:
            make = by_id.get(update.record_id)
            if make is MISSING:
                continue
            results.append(make(update.record_id) if make else WriteResult(update.record_id, True))
        return results

    return step


def locked(retry_after: float | None = None) -> Callable[[str], WriteResult]:
    return lambda rid: WriteResult(
        rid,
        ok=False,
        code="UNABLE_TO_LOCK_ROW",
        message="unable to obtain exclusive access to this record",
        transient=True,
        retry_after=retry_after,
    )


def invalid(rid: str) -> WriteResult:
    return WriteResult(
        rid,
        ok=False,
        code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message="ICP score is managed by RevOps",
    )


def gone(rid: str) -> WriteResult:
    return WriteResult(rid, ok=False, code="ENTITY_IS_DELETED", message="deleted", deleted=True)


# -- helpers ---------------------------------------------------------------------------


def updates(n: int) -> list[RecordUpdate]:
    return [RecordUpdate(f"r{i}", {"ICP_Score__c": float(i), "ICP_Tier__c": "A"}) for i in range(n)]


class Run:
    """One `write_all` call, with everything it reported on the way."""

    def __init__(self, connector: ScriptedConnector, todo: list[RecordUpdate], attempts: int = 4):
        self.sleeps: list[float] = []
        self.batches: list[BatchOutcome] = []
        self.progress: list[int] = []
        self.summary: WriteSummary = write_all(
            connector,
            todo,
            self.batches.append,
            make_retrying(attempts=attempts, max_wait=30.0, sleep=self.sleeps.append),
            self.progress.append,
        )


def ids(items: Sequence[RecordUpdate]) -> list[str]:
    return [u.record_id for u in items]


def outcome_ids(outcome: BatchOutcome) -> list[str]:
    return [u.record_id for u, _ in outcome]


# -- batching --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 9])
def test_batches_cover_every_update_once_and_never_exceed_the_limit(n: int) -> None:
    todo = updates(n)
    connector = ScriptedConnector()

    run = Run(connector, todo)

    assert len(connector.calls) == math.ceil(n / 3)
    assert all(1 <= len(call) <= 3 for call in connector.calls)
    assert [rid for call in connector.calls for rid in call] == ids(todo)
    assert run.summary == WriteSummary(written=n)
    assert run.sleeps == []
    assert run.progress == [len(call) for call in connector.calls]


def test_on_batch_gets_one_outcome_per_record_of_every_batch() -> None:
    todo = updates(7)
    connector = ScriptedConnector(answers(r1=invalid), answers(r4=gone))

    run = Run(connector, todo)

    assert [outcome_ids(o) for o in run.batches] == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]
    for outcome in run.batches:
        for update, result in outcome:
            assert update in todo  # the very update handed in, values and all
            assert result.record_id == update.record_id
    flat = {u.record_id: r for o in run.batches for u, r in o}
    assert flat["r1"].code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert flat["r4"].deleted
    assert all(flat[r].ok for r in ("r0", "r2", "r3", "r5", "r6"))


# -- whole-call transient errors -------------------------------------------------------


def test_a_transient_error_for_the_whole_call_is_retried_with_backoff() -> None:
    todo = updates(4)
    connector = ScriptedConnector(
        raises(TransientError("503 Service Unavailable")),
        raises(TransientError("connection reset")),
    )

    run = Run(connector, todo)

    assert connector.calls == [["r0", "r1", "r2"]] * 3 + [["r3"]]
    assert run.summary.written == 4
    assert run.summary.failed == []
    assert run.summary.retries == 2
    assert len(run.sleeps) == 2
    # full-jitter exponential backoff, 0.5 s base: within [0, 0.5] then [0, 1]
    for i, wait in enumerate(run.sleeps):
        assert 0.0 <= wait <= 0.5 * 2**i
    assert len(run.batches) == 2


def test_retry_after_from_the_crm_sets_the_wait() -> None:
    connector = ScriptedConnector(raises(TransientError("429 Too Many Requests", retry_after=7.5)))

    run = Run(connector, updates(2))

    assert run.sleeps == [7.5]
    assert run.summary.written == 2
    assert run.summary.retries == 1


def test_retry_after_is_capped_at_the_longest_wait() -> None:
    connector = ScriptedConnector(raises(TransientError("429", retry_after=120)))

    run = Run(connector, updates(1))

    assert run.sleeps == [30.0]  # max_wait of the policy in Run


def test_retry_after_beyond_the_ceiling_stops_writing_and_keeps_the_rest() -> None:
    # issue 11 changed this: a Retry-After of an hour is no longer slept (capped) and
    # retried; it ends the write phase at once, the rest kept for the next run.
    connector = ScriptedConnector(
        answers(), raises(TransientError("429 TEN_SECONDLY_ROLLING", retry_after=3600))
    )

    run = Run(connector, updates(7))

    assert run.sleeps == []  # no wait at all, let alone an hour
    assert run.summary.written == 3
    assert ids(run.summary.not_attempted) == ["r3", "r4", "r5", "r6"]
    assert run.summary.stopped is not None
    assert "asked to wait 3,600 s" in run.summary.stopped
    assert "rerun after" in run.summary.stopped


def test_a_whole_call_failing_every_attempt_fails_its_records_and_writing_goes_on() -> None:
    connector = ScriptedConnector(*[raises(TransientError("read timed out"))] * 3)

    run = Run(connector, updates(5), attempts=3)

    assert connector.calls == [["r0", "r1", "r2"]] * 3 + [["r3", "r4"]]
    assert run.summary.written == 2
    assert [(u.record_id, r.ok, r.transient) for u, r in run.summary.failed] == [
        ("r0", False, True),
        ("r1", False, True),
        ("r2", False, True),
    ]
    assert {r.message for _, r in run.summary.failed} == {"read timed out"}
    assert run.summary.retries == 2
    assert run.summary.stopped is None


# -- per-record transient failures -----------------------------------------------------


def test_only_the_records_that_failed_transiently_are_sent_again() -> None:
    connector = ScriptedConnector(answers(r1=locked()), answers())

    run = Run(connector, updates(3))

    assert connector.calls == [["r0", "r1", "r2"], ["r1"]]
    assert run.summary.written == 3
    assert run.summary.failed == []
    assert run.summary.retries == 1
    assert len(run.sleeps) == 1
    # the batch's outcome is reported once, in batch order, with the final answers
    assert len(run.batches) == 1
    assert [(u.record_id, r.ok) for u, r in run.batches[0]] == [
        ("r0", True),
        ("r1", True),
        ("r2", True),
    ]


def test_a_record_level_retry_after_sets_the_wait() -> None:
    connector = ScriptedConnector(answers(r0=locked(2.0), r2=locked(5.0)))

    run = Run(connector, updates(3))

    assert connector.calls == [["r0", "r1", "r2"], ["r0", "r2"]]
    assert run.sleeps == [5.0]  # the longest the CRM asked for


def test_a_record_missing_from_the_answer_is_retried() -> None:
    connector = ScriptedConnector(answers(r2=MISSING))

    run = Run(connector, updates(3))

    assert connector.calls == [["r0", "r1", "r2"], ["r2"]]
    assert run.summary.written == 3
    assert run.summary.retries == 1


def test_transient_failures_left_after_the_last_attempt_are_reported_as_transient() -> None:
    connector = ScriptedConnector(*[answers(r1=locked(), r2=MISSING)] * 3)

    run = Run(connector, updates(3), attempts=3)

    assert connector.calls == [["r0", "r1", "r2"], ["r1", "r2"], ["r1", "r2"]]
    assert run.summary.written == 1
    failed = {u.record_id: r for u, r in run.summary.failed}
    assert set(failed) == {"r1", "r2"}
    assert all(r.transient and not r.ok for r in failed.values())
    assert failed["r1"].code == "UNABLE_TO_LOCK_ROW"
    assert failed["r2"].code == "NO_RESULT"
    assert run.summary.retries == 2
    assert len(run.sleeps) == 2
    assert [(u.record_id, r.ok) for u, r in run.batches[0]] == [
        ("r0", True),
        ("r1", False),
        ("r2", False),
    ]


def test_a_later_whole_call_failure_keeps_the_records_own_error() -> None:
    connector = ScriptedConnector(
        answers(r1=locked()), raises(TransientError("503")), raises(TransientError("503"))
    )

    run = Run(connector, updates(3), attempts=3)

    assert connector.calls == [["r0", "r1", "r2"], ["r1"], ["r1"]]
    [(update, result)] = run.summary.failed
    assert update.record_id == "r1"
    assert (result.code, result.transient) == ("UNABLE_TO_LOCK_ROW", True)


# -- permanent failures and deleted records ---------------------------------------------


def test_permanent_failures_are_not_retried_and_come_back_with_the_crms_words() -> None:
    todo = updates(3)
    connector = ScriptedConnector(answers(r0=locked(), r1=invalid))

    run = Run(connector, todo)

    assert connector.calls == [["r0", "r1", "r2"], ["r0"]]  # r1 is never sent again
    assert run.summary.written == 2
    [(update, result)] = run.summary.failed
    assert update == todo[1]
    assert result.code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert result.message == "ICP score is managed by RevOps"
    assert result.transient is False


def test_a_batch_of_only_permanent_failures_is_one_call() -> None:
    connector = ScriptedConnector(answers(r0=invalid, r1=invalid, r2=invalid))

    run = Run(connector, updates(3))

    assert len(connector.calls) == 1
    assert run.summary.retries == 0
    assert run.sleeps == []
    assert len(run.summary.failed) == 3


def test_deleted_records_are_reported_as_deleted_not_failed() -> None:
    connector = ScriptedConnector(answers(r1=gone))

    run = Run(connector, updates(3))

    assert connector.calls == [["r0", "r1", "r2"]]
    assert run.summary.deleted == ["r1"]
    assert run.summary.failed == []
    assert run.summary.written == 2


# -- API limit -------------------------------------------------------------------------


def test_the_api_limit_stops_writing_and_keeps_the_rest_for_next_run() -> None:
    todo = updates(8)
    connector = ScriptedConnector(all_ok, raises(LimitReachedError("daily API limit reached")))

    run = Run(connector, todo)

    assert connector.calls == [["r0", "r1", "r2"], ["r3", "r4", "r5"]]  # no retry, no more
    assert run.summary.stopped is not None
    assert "daily API limit reached" in run.summary.stopped
    assert run.summary.not_attempted == todo[3:]
    assert [outcome_ids(o) for o in run.batches] == [["r0", "r1", "r2"]]
    assert run.summary.written == 3
    assert run.summary.failed == []
    assert run.progress == [3]


def test_the_api_limit_on_the_first_call_writes_nothing() -> None:
    todo = updates(4)
    connector = ScriptedConnector(raises(LimitReachedError("limit")))

    run = Run(connector, todo)

    assert run.summary.not_attempted == todo
    assert run.batches == []
    assert run.summary.written == 0


def test_the_api_limit_during_a_retry_stops_writing() -> None:
    todo = updates(6)
    connector = ScriptedConnector(
        all_ok, raises(TransientError("503")), raises(LimitReachedError("limit"))
    )

    run = Run(connector, todo)

    assert connector.calls == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r3", "r4", "r5"]]
    assert run.summary.not_attempted == todo[3:]
    assert len(run.batches) == 1


def test_records_written_before_the_limit_hit_a_retry_are_not_lost() -> None:
    # r0 and r2 are written on the first call, r1 hits a row lock; the retry of r1 meets
    # the API limit. r0 and r2 are in the CRM now, so state must record them (on_batch)
    # and only r1 waits for the next run.
    todo = updates(3)
    connector = ScriptedConnector(answers(r1=locked()), raises(LimitReachedError("limit")))

    run = Run(connector, todo)

    assert connector.calls == [["r0", "r1", "r2"], ["r1"]]
    assert ids(run.summary.not_attempted) == ["r1"]
    written = [u.record_id for o in run.batches for u, r in o if r.ok]
    assert written == ["r0", "r2"]
    assert run.summary.written == 2


def test_other_fatal_errors_propagate() -> None:
    connector = ScriptedConnector(raises(ConnectError("session expired")))

    with pytest.raises(ConnectError, match="session expired"):
        Run(connector, updates(2))
    assert len(connector.calls) == 1  # not retried


# -- retries across batches ------------------------------------------------------------


def test_retries_count_every_extra_attempt_across_batches() -> None:
    connector = ScriptedConnector(
        raises(TransientError("503")),  # batch 1, attempt 1
        all_ok,  # batch 1, attempt 2
        answers(r3=locked(), r5=MISSING),  # batch 2, attempt 1
        answers(r5=locked()),  # batch 2, attempt 2: r3 and r5 again
        all_ok,  # batch 2, attempt 3: r5
    )

    run = Run(connector, updates(6))

    assert connector.calls == [
        ["r0", "r1", "r2"],
        ["r0", "r1", "r2"],
        ["r3", "r4", "r5"],
        ["r3", "r5"],
        ["r5"],
    ]
    assert run.summary.retries == 3
    assert len(run.sleeps) == 3
    assert run.summary.written == 6


# -- nothing is lost -------------------------------------------------------------------

KINDS = ("ok", "locked", "invalid", "gone", "missing")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(0, 10), st.integers(1, 4))
def test_every_update_ends_written_failed_deleted_or_not_attempted(
    data: st.DataObject, n: int, attempts: int
) -> None:
    todo = updates(n)
    makers: dict[str, Any] = {"locked": locked(), "invalid": invalid, "gone": gone}

    def random_step(batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        what = data.draw(st.sampled_from(["answer", "answer", "answer", "transient", "limit"]))
        if what == "transient":
            raise TransientError("503")
        if what == "limit":
            raise LimitReachedError("limit")
        kinds = {u.record_id: data.draw(st.sampled_from(KINDS)) for u in batch}
        by_id = {rid: MISSING if k == "missing" else makers.get(k) for rid, k in kinds.items()}
        return answers(**by_id)(batch)

    connector = ScriptedConnector(*[random_step] * 100)
    run = Run(connector, todo, attempts=attempts)
    summary = run.summary

    reported = [u.record_id for o in run.batches for u, _ in o]
    assert sorted(reported + ids(summary.not_attempted)) == sorted(ids(todo))
    written = [u.record_id for o in run.batches for u, r in o if r.ok]
    assert summary.written == len(written)
    assert sorted(summary.deleted + [u.record_id for u, _ in summary.failed] + written) == sorted(
        reported
    )
    assert (summary.stopped is None) == (summary.not_attempted == [])
    assert summary.retries == len(run.sleeps)
    for call in connector.calls:
        assert 1 <= len(call) <= connector.max_batch_size
