"""Records that cannot be written are kept with the CRM's error, reported, and retried.

A CSV connector with injected CRM answers stands in for an org that rejects some
writes (a validation rule), fails some transiently (row locks), or runs out of API
allowance half-way.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from icp_engine.connectors.base import RecordUpdate, WritePlan, WriteResult
from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.errors import LimitReachedError
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main
from icp_engine.sync.config import load_config
from icp_engine.sync.runner import RunOptions, RunResult, execute
from icp_engine.sync.writer import make_retrying

from tests.crmsim import read_rows


class RejectingCsv(CsvConnector):
    """Answers for chosen records as a CRM would; everything else is written."""

    takes_every_update = False  # it answers per record

    def __init__(self, source: Path, batch_size: int = 25) -> None:
        super().__init__(load_config("csv", None).mapping, source)
        self.batch_size = batch_size
        self.rejected: dict[str, WriteResult] = {}
        self.limit_after_calls: int | None = None

    def begin_write(self, records: int) -> WritePlan:
        return dataclasses.replace(super().begin_write(records), batch_size=self.batch_size)

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        if self.limit_after_calls is not None and self.write_calls >= self.limit_after_calls:
            msg = "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
            raise LimitReachedError(msg)
        keep = [u for u in batch if u.record_id not in self.rejected]
        results = super().write(keep) if keep else []
        return results + [self.rejected[u.record_id] for u in batch if u.record_id in self.rejected]


@pytest.fixture
def export(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp() / "failures-base"
    if not base.exists():
        write_sample_crm(base, accounts=120, seed=3)
    shutil.copytree(base, tmp_path / "export")
    return tmp_path / "export"


def run(export: Path, state: Path, connector: CsvConnector) -> RunResult:
    options = RunOptions(
        crm="csv",
        state_dir=state,
        source=export,
        retrying=make_retrying(attempts=3, sleep=lambda _: None),
    )
    return execute(load_config("csv", None), options, connector=connector)


def ids(export: Path) -> list[str]:
    return [row["Id"] for row in read_rows(export / "Account.csv")[1]]


def written(export: Path) -> set[str]:
    return {row["Id"] for row in read_rows(export / "icp_updates.csv")[1]}


def test_rejected_records_are_kept_reported_and_retried(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad, locked = ids(export)[:2]
    connector = RejectingCsv(export)
    connector.rejected = {
        bad: WriteResult(
            bad,
            ok=False,
            code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
            message="Tier must be set by the owner",
        ),
        locked: WriteResult(
            locked,
            ok=False,
            code="UNABLE_TO_LOCK_ROW",
            message="unable to obtain exclusive access",
            transient=True,
        ),
    }
    first = run(export, state, connector)
    assert first.exit_code == 1
    assert first.counts["failed"] == 2
    assert first.counts["written"] == 118
    assert bad not in written(export) and locked not in written(export)

    status = CliRunner().invoke(main, ["status", "--state", str(state), "--json"])
    failures = {f["record_id"]: f for f in json.loads(status.stdout)["failures"]}
    assert failures[bad]["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert failures[bad]["message"] == "Tier must be set by the owner"
    assert failures[locked]["transient"] is True

    # Nothing changed in the CRM, yet the next run retries exactly the failed records.
    second = run(export, state, RejectingCsv(export))
    assert second.exit_code == 0
    assert second.counts["accounts_pulled"] == 0
    assert second.counts["written"] == 2  # exactly the failed records were retried
    # The file holds every pending change (issue 10): the 118 not yet loaded and the 2.
    assert written(export) == set(ids(export))
    status = CliRunner().invoke(main, ["status", "--state", str(state), "--json"])
    assert json.loads(status.stdout)["failures"] == []


def test_transient_failures_are_retried_within_the_run(export: Path, tmp_path: Path) -> None:
    record = ids(export)[5]

    class LocksOnce(RejectingCsv):
        def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
            results = super().write(batch)
            self.rejected.clear()
            return results

    connector = LocksOnce(export)
    connector.rejected = {
        record: WriteResult(record, ok=False, code="UNABLE_TO_LOCK_ROW", transient=True)
    }
    result = run(export, tmp_path / "state", connector)
    assert result.exit_code == 0
    assert result.counts["retries"] == 1
    assert record in written(export)


def test_api_limit_stops_writing_and_the_rest_waits_for_the_next_run(
    export: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    connector = RejectingCsv(export, batch_size=25)
    connector.limit_after_calls = 2
    first = run(export, state, connector)
    assert first.exit_code == 1
    assert first.counts["written"] == 50
    assert first.counts["failed"] == 70
    assert "REQUEST_LIMIT_EXCEEDED" in (first.message or "")
    done = written(export)

    second = run(export, state, RejectingCsv(export))
    assert second.exit_code == 0
    assert second.counts["written"] == 70
    assert len(done) == 50
    assert written(export) == set(ids(export))  # the 50 still pending, and the other 70
