"""A large org's full run goes a slice of accounts at a time (`sync.streamed`): it hands
over the same update file and leaves the same state as a run holding every account, and
a run failing between slices loses nothing."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main
from icp_engine.sync.config import load_config
from icp_engine.sync.history import run_detail
from icp_engine.sync.mirror_ahead import MirrorAhead
from icp_engine.sync.runner import CHUNK_ENV, RunOptions, RunResult, execute
from icp_engine.sync.spill import SPILL_PREFIX
from icp_engine.sync.state.parts import LAST_WRITTEN, PENDING, SCORES, records_layout
from icp_engine.sync.state.store import StateStore

from tests.crmsim import Clock, read_rows, write_rows
from tests.state_helpers import part_rows

ACCOUNTS = 900
SLICE = 200
START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def messy_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample export with what real ones hold: an account given twice (the first row
    counts), values a person set in the output fields, an unreadable value, and
    opportunities of no account or of one that does not exist."""
    directory = tmp_path_factory.mktemp("streamed") / "export"
    write_sample_crm(directory, accounts=ACCOUNTS, seed=11)
    header, rows = read_rows(directory / "Account.csv")
    repeated = dict(rows[17], NumberOfEmployees="4200", Industry="Banking")
    for row in rows[40:46]:
        row["ICP_Route__c"] = "Named AE"  # set by a person before the engine ever wrote
    rows[60]["NumberOfEmployees"] = "lots"
    write_rows(directory / "Account.csv", header, [*rows, repeated])
    header, opps = read_rows(directory / "Opportunity.csv")
    orphan = dict(opps[0], Id="0065g00ZZZZZZZZAAA", AccountId="001000000000000AAA")
    loose = dict(opps[1], Id="0065g00ZZZZZZZYAAA", AccountId="")
    write_rows(directory / "Opportunity.csv", header, [*opps, orphan, loose])
    return directory


def _run(export: Path, state: Path, kind: str, slice_rows: int, at: datetime) -> RunResult:
    options = RunOptions(
        crm="csv",
        kind="backfill" if kind == "backfill" else "sync",
        state_dir=state,
        source=export,
        now=lambda: at,
        chunk_accounts=slice_rows,
    )
    return execute(load_config("csv", None), options)


def _stored(state: Path) -> dict[str, Any]:
    """Everything the state keeps per record, read straight from its tables."""
    db = sqlite3.connect(state / "state.sqlite")
    try:
        tables = {
            layout.name: sorted(part_rows(db, layout.name, layout.schema.names), key=repr)
            for layout in (
                LAST_WRITTEN,
                PENDING,
                SCORES,
                records_layout("account"),
                records_layout("opportunity"),
            )
        }
        tables["failures"] = sorted(db.execute("SELECT * FROM failures").fetchall(), key=repr)
    finally:
        db.close()
    with StateStore(state) as store:
        tables["watermarks"] = sorted(
            (key, mark.value, sorted(mark.boundary_ids)) for key, mark in store.watermarks().items()
        )
    return tables


def _load_some(export: Path, clock: Clock, keep: int) -> None:
    """Data Loader loads every `keep`-th row of the update file (the rest stay pending)."""
    _, changes = read_rows(export / "icp_updates.csv")
    by_id = {row["Id"]: row for row in changes[::keep]}
    header, rows = read_rows(export / "Account.csv")
    moment = clock.tick()
    for row in rows:
        for name, value in by_id.get(row["Id"], {}).items():
            if name != "Id" and value != "":
                row[name] = "" if value == "#N/A" else value
                row["SystemModstamp"] = moment
    write_rows(export / "Account.csv", header, rows)


def _delete_accounts(export: Path, count: int) -> None:
    header, rows = read_rows(export / "Account.csv")
    write_rows(export / "Account.csv", header, rows[count:])


def _three_steps(
    messy_export: Path, directory: Path, slice_rows: int
) -> tuple[list[RunResult], list[tuple[bytes, dict[str, Any]]]]:
    """Backfill, a partial load, a sync, deletions and a second backfill with changes
    still pending: each run's result, and the update file and state after it."""
    export, state = directory / "export", directory / "state"
    shutil.copytree(messy_export, export)
    clock = Clock()
    clock.now = START + timedelta(hours=1)
    steps, after = [], []
    for number, kind in enumerate(("backfill", "sync", "backfill")):
        if number == 1:
            _load_some(export, clock, keep=3)  # 300 accounts changed: more than a slice
        if number == 2:
            _delete_accounts(export, 25)
            _load_some(export, clock, keep=2)
        steps.append(_run(export, state, kind, slice_rows, START + timedelta(days=number)))
        after.append(((export / "icp_updates.csv").read_bytes(), _stored(state)))
    return steps, after


@pytest.mark.slow
def test_streamed_runs_hand_over_and_store_what_a_whole_run_does(
    messy_export: Path, tmp_path: Path
) -> None:
    """Backfill, a partial load, a sync, deletions and a second backfill with changes
    still pending: after each step the update file and every table of the state are
    the same whether the run held every account or went 200 at a time."""
    results: dict[str, list[RunResult]] = {}
    seen: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
    for mode, slice_rows in (("whole", 0), ("streamed", SLICE)):
        results[mode], seen[mode] = _three_steps(messy_export, tmp_path / mode, slice_rows)

    whole, streamed = results["whole"], results["streamed"]
    assert [r.tier_changes is None for r in whole] == [True, True, True]
    assert [r.tier_changes is None for r in streamed] == [False, False, False]
    for number, (before, now) in enumerate(zip(seen["whole"], seen["streamed"], strict=True)):
        assert now[0] == before[0], f"step {number}: the update files differ"
        assert now[1] == before[1], f"step {number}: the states differ"
    for before, after in zip(whole, streamed, strict=True):
        assert after.exit_code == before.exit_code == 0
        for count in ("pending", "confirmed", "failed", "accounts_deleted"):
            assert after.counts[count] == before.counts[count]
    for step in (0, 2):  # full runs both: what `icp runs show` tells is the same
        before, after = whole[step], streamed[step]
        shown, told = run_detail(before, "ICP_Tier__c"), run_detail(after, "ICP_Tier__c")
        assert told["tier_changes_count"] == shown["tier_changes_count"]
        assert len(told["tier_changes"]) == min(shown["tier_changes_count"], 200)
        named = {c["account_id"]: c["name"] for c in shown["tier_changes"]}
        for change in told["tier_changes"]:
            assert (
                change["name"]
                and named.get(change["account_id"], change["name"]) == (change["name"])
            )
    assert whole[0].counts["accounts_scored"] > 200  # (more tier changes than are kept)
    assert streamed[0].counts == whole[0].counts  # full runs both: the same counts
    assert streamed[2].counts == whole[2].counts
    assert whole[1].counts["accounts_pulled"] == 300  # the sync read the changes only,
    assert streamed[1].counts["accounts_pulled"] == ACCOUNTS  # or everything, in slices
    assert whole[0].counts["accounts_pulled"] == ACCOUNTS
    assert whole[0].counts["unreadable_values"] == 1
    assert whole[2].counts["accounts_deleted"] == 24  # row 17 is given again at the end
    assert 0 < whole[2].counts["confirmed"] < whole[2].counts["pending"]
    assert whole[0].counts["fields_skipped"] >= 6  # the routes a person set
    assert not list((tmp_path / "streamed" / "state").glob(SPILL_PREFIX + "*"))


@pytest.mark.slow
def test_updates_taken_in_whole_batches_leave_what_answering_each_leaves(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update file takes every update: given whole batches (`accept`) instead of one
    `write` answer per record, its runs hand over, store and count the same."""
    taken = {
        mode: _three_steps(messy_export, tmp_path / mode, slice_rows)
        for mode, slice_rows in (("whole", 0), ("streamed", SLICE))
    }
    monkeypatch.setattr(CsvConnector, "takes_every_update", False)
    for mode, slice_rows in (("whole", 0), ("streamed", SLICE)):
        results, after = _three_steps(messy_export, tmp_path / f"{mode}-answered", slice_rows)
        assert after == taken[mode][1]
        assert [r.counts for r in results] == [r.counts for r in taken[mode][0]]
        assert [r.api_calls for r in results] == [r.api_calls for r in taken[mode][0]]


def test_a_streamed_run_failing_between_slices_keeps_the_state_and_file_before(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state's changes wait in one transaction and the file under a temporary name:
    a failure in the third slice leaves both as they were, and the rerun hands over
    what a clean run does."""
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(messy_export, export)
    first = _run(export, state, "backfill", SLICE, START)
    published = (export / "icp_updates.csv").read_bytes()
    before = _stored(state)
    header, rows = read_rows(export / "Account.csv")
    for row in rows[::5]:
        row["NumberOfEmployees"] = "75"
    write_rows(export / "Account.csv", header, rows)

    calls = {"scores": 0}
    original = StateStore.record_scores

    def fail_third(self: StateStore, *args: Any, **kwargs: Any) -> None:
        calls["scores"] += 1
        if calls["scores"] == 3:
            raise OSError("disk gone")
        original(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "record_scores", fail_third)
    with pytest.raises(OSError, match="disk gone"):
        _run(export, state, "backfill", SLICE, START + timedelta(days=1))
    assert (export / "icp_updates.csv").read_bytes() == published
    assert _stored(state) == before
    assert not [p.name for p in export.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(StateStore, "record_scores", original)

    again = _run(export, state, "backfill", SLICE, START + timedelta(days=1))
    clean_export, clean_state = tmp_path / "clean" / "export", tmp_path / "clean" / "state"
    shutil.copytree(messy_export, clean_export)
    _run(clean_export, clean_state, "backfill", SLICE, START)
    write_rows(clean_export / "Account.csv", header, rows)
    clean = _run(clean_export, clean_state, "backfill", SLICE, START + timedelta(days=1))
    assert again.counts == clean.counts
    assert again.counts["records_to_write"] > 0
    assert (export / "icp_updates.csv").read_bytes() == (
        clean_export / "icp_updates.csv"
    ).read_bytes()
    assert first.exit_code == again.exit_code == 0


def test_bad_slice_size_is_a_clear_error(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHUNK_ENV, "a lot")
    result = CliRunner().invoke(
        main,
        ["backfill", "--crm", "csv", "--source", str(messy_export), "--state", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "ICP_CHUNK_ACCOUNTS" in result.output + result.stderr
    assert "'a lot'" in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_a_spill_left_by_a_killed_run_is_cleared(messy_export: Path, tmp_path: Path) -> None:
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(messy_export, export)
    left = state / f"{SPILL_PREFIX}killed"
    (left / "account").mkdir(parents=True)
    (left / "account" / "000000.parquet").write_bytes(b"half a page")
    result = _run(export, state, "backfill", SLICE, START)
    assert result.exit_code == 0
    assert not list(state.glob(SPILL_PREFIX + "*"))


def _mirror_processes(monkeypatch: pytest.MonkeyPatch, kill: bool = False) -> list[MirrorAhead]:
    """Every `MirrorAhead` a run starts, listed; with `kill`, its process is killed as
    soon as it starts (as the kernel's OOM killer would), so it never answers."""
    started: list[MirrorAhead] = []
    original = MirrorAhead.__init__

    def recorded(self: MirrorAhead, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        started.append(self)
        if kill:
            os.kill(self.pid, signal.SIGKILL)

    monkeypatch.setattr(MirrorAhead, "__init__", recorded)
    return started


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_first_streamed_run_builds_the_mirror_in_a_second_process(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second process builds the mirror while the slices run, and the run stores what
    it built (the state equals a whole run's: the test above): whole parts into an empty
    mirror, encoded rows the run merges into one that holds rows."""
    started = _mirror_processes(monkeypatch)
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(messy_export, export)
    _run(export, state, "backfill", SLICE, START)
    assert len(started) == 1
    assert [(job.obj, job.new_table) for job in started[0].jobs] == [
        ("account", True),
        ("opportunity", True),
    ]
    assert _gone(started[0].pid)
    _run(export, state, "backfill", SLICE, START + timedelta(days=1))
    assert [job.new_table for job in started[1].jobs] == [False, False]
    assert _gone(started[1].pid)


def test_a_killed_mirror_process_leaves_the_same_state(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A mirror process that dies without an answer: the run encodes the mirror itself,
    says so, and leaves what a run whose process answered leaves."""
    clean_export, clean_state = tmp_path / "clean" / "export", tmp_path / "clean" / "state"
    shutil.copytree(messy_export, clean_export)
    _run(clean_export, clean_state, "backfill", SLICE, START)

    killed = _mirror_processes(monkeypatch, kill=True)
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(messy_export, export)
    with caplog.at_level(logging.WARNING, logger="icp_engine.sync.mirror_ahead"):
        result = _run(export, state, "backfill", SLICE, START)
    assert len(killed) == 1
    assert result.exit_code == 0
    assert "stopped (killed by signal 9) before it finished: saving it here instead" in caplog.text
    assert _stored(state) == _stored(clean_state)
    assert (export / "icp_updates.csv").read_bytes() == (
        clean_export / "icp_updates.csv"
    ).read_bytes()


def test_a_first_streamed_run_failing_stops_the_mirror_process(
    messy_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in a slice while the mirror is being built: the process is stopped and
    the state keeps no mirror, no watermark and no spill."""
    started = _mirror_processes(monkeypatch)

    def fail(self: StateStore, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(StateStore, "record_scores", fail)
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(messy_export, export)
    with pytest.raises(OSError, match="disk gone"):
        _run(export, state, "backfill", SLICE, START)
    assert len(started) == 1
    assert _gone(started[0].pid)
    stored = _stored(state)
    assert stored["records.account"] == stored["records.opportunity"] == []
    assert stored["watermarks"] == []
    assert not list(state.glob(SPILL_PREFIX + "*"))
