"""The one retry policy (`connectors.retry`): what it waits, what it retries, what it logs.

No test sleeps: the policy's sleep is injected and records the waits it was asked for.
"""

from __future__ import annotations

import logging

import pytest
from icp_engine.connectors.errors import LimitReachedError, SourceError, TransientError
from icp_engine.connectors.retry import retrying
from icp_engine.connectors.waits import MAX_WAIT


class Flaky:
    """Fails with the given errors, one per call, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(policy_waits: list[float], call: Flaky, **options: object) -> str:
    policy = retrying("Test call", sleep=policy_waits.append, **options)  # type: ignore[arg-type]
    return str(policy(call))


def test_retry_after_is_waited_and_capped_by_the_policy() -> None:
    waits: list[float] = []
    call = Flaky(TransientError("429", retry_after=7.5), TransientError("429", retry_after=45.0))
    assert run(waits, call, max_wait=30.0) == "ok"
    assert waits == [7.5, 30.0] and call.calls == 3


def test_without_retry_after_backoff_is_jittered_and_bounded() -> None:
    waits: list[float] = []
    call = Flaky(*(TransientError("503") for _ in range(4)))
    assert run(waits, call, attempts=5, backoff=0.5, max_wait=2.0) == "ok"
    assert len(waits) == 4
    for attempt, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(2.0, 0.5 * 2 ** (attempt - 1))


def test_a_retry_after_beyond_the_ceiling_is_not_waited_out() -> None:
    waits: list[float] = []
    call = Flaky(TransientError("429", retry_after=MAX_WAIT + 1))
    with pytest.raises(TransientError):
        run(waits, call)
    assert waits == [] and call.calls == 1


@pytest.mark.parametrize("error", [LimitReachedError("daily"), SourceError("bad query")])
def test_only_transient_errors_are_retried(error: Exception) -> None:
    waits: list[float] = []
    call = Flaky(error)
    with pytest.raises(type(error)):
        run(waits, call)
    assert waits == [] and call.calls == 1


def test_attempts_bound_the_tries_and_the_last_error_is_raised() -> None:
    waits: list[float] = []
    call = Flaky(*(TransientError(f"503 #{n}") for n in range(5)))
    with pytest.raises(TransientError, match="#2"):
        run(waits, call, attempts=3)
    assert call.calls == 3 and len(waits) == 2


def test_give_up_on_stops_at_once() -> None:
    class Refused(TransientError):
        pass

    waits: list[float] = []
    call = Flaky(Refused("connection refused"))
    with pytest.raises(Refused):
        run(waits, call, give_up_on=lambda e: isinstance(e, Refused))
    assert call.calls == 1


def test_each_wait_is_logged_once_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    call = Flaky(TransientError("503 Service Unavailable", retry_after=2.0))
    with caplog.at_level(logging.WARNING, logger="icp_engine.connectors.retry"):
        run(waits, call)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["Test call, attempt 1 failed (503 Service Unavailable); retrying in 2.0 s"]
