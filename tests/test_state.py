"""The state store: what a run remembers survives reopening, and runs exclude each other."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icp_engine.connectors.id_set import Ids
from icp_engine.sync.state.lock import LockedError
from icp_engine.sync.state.mirror import to_jsonable
from icp_engine.sync.state.records import (
    Failure,
    Pending,
    StateError,
    StateVersionError,
    Watermark,
    Written,
)
from icp_engine.sync.state.store import SCHEMA_VERSION, StateStore, _closed_cleanly, state_location

from tests.state_helpers import (
    reset_records,
    reset_watermarks,
    state_backend,  # noqa: F401 (fixture `backend`: SQLite, then PostgreSQL)
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

TRY_LOCK = """
import sys
from icp_engine.sync.state.lock import LockedError
from icp_engine.sync.state.store import StateStore
with StateStore(sys.argv[1]) as store:
    try:
        store.acquire_lock()
    except LockedError as error:
        print(error)
        sys.exit(3)
    print("acquired")
"""

HOLD_LOCK = """
import sys
from icp_engine.sync.state.store import StateStore
store = StateStore(sys.argv[1])
store.acquire_lock()
print("locked", flush=True)
sys.stdin.read()  # hold it until killed
"""


def _python(script: str, directory: Path) -> list[str]:
    return [sys.executable, "-c", script, str(directory)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def try_lock_elsewhere(directory: Path) -> subprocess.CompletedProcess[str]:
    """Try to take the lock from another process: exit 0 if it got it, 3 if locked."""
    return subprocess.run(
        _python(TRY_LOCK, directory),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path, backend: str):
    with StateStore(tmp_path / "state") as opened:
        yield opened


def acquire_when_free(directory: Path) -> StateStore:
    """A store holding the lock, once the lock is free (a dead holder's PostgreSQL session
    ends when the server notices; the directory lock is free at once)."""
    deadline = time.monotonic() + 30
    while True:
        store = StateStore(directory)
        try:
            store.acquire_lock()
            return store
        except LockedError:
            store.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# files and reopening


def test_creates_directory_and_file(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    with StateStore(directory) as store:
        assert store.path == directory / "state.sqlite"
    assert (directory / StateStore.FILE_NAME).is_file()
    with sqlite3.connect(directory / StateStore.FILE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_everything(tmp_path: Path, backend: str) -> None:
    with StateStore(tmp_path) as store:
        run = store.start_run("sf", "incremental", started_at=T0)
        store.finish_run(run, "ok", 0, {"written": 3}, api_calls=7, message="done")
        store.set_watermark("sf", "account", T0, ["a1"], run_started_at=T0)
        store.record_written("sf", run, [("a1", "ICP_Score__c", 81.5)], T0)
        store.record_failures("sf", run, [Failure("a2", "X", "bad", False, {"f": 1})], T0)
        store.upsert_records("sf", "account", pd.DataFrame({"account_id": ["a1"]}), "account_id")
        store.set_meta("fingerprint", "abc")
    with StateStore(tmp_path) as store:
        [record] = store.runs()
        assert (record.id, record.outcome, record.counts, record.api_calls) == (
            run,
            "ok",
            {"written": 3},
            7,
        )
        assert store.watermark("sf", "account") == Watermark(T0, frozenset({"a1"}))
        assert store.last_written("sf")[("a1", "ICP_Score__c")].value == 81.5
        assert [f.record_id for f in store.failures()] == ["a2"]
        assert store.record_ids("sf", "account") == {"a1"}
        assert store.get_meta("fingerprint") == "abc"
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_file_from_a_newer_engine_is_refused(tmp_path: Path) -> None:
    StateStore(tmp_path).close()
    with sqlite3.connect(tmp_path / StateStore.FILE_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StateVersionError, match="schema version 99"):
        StateStore(tmp_path)


def test_two_stores_on_one_directory_see_each_others_writes(tmp_path: Path, backend: str) -> None:
    with StateStore(tmp_path) as writer, StateStore(tmp_path) as reader:
        writer.set_meta("k", "v1")
        assert reader.get_meta("k") == "v1"


def test_schema_version_key_is_reserved(store: StateStore) -> None:
    with pytest.raises(ValueError, match="reserved"):
        store.set_meta("schema_version", "2")
    assert store.get_meta("missing") is None
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2"


def test_a_failing_write_changes_nothing(store: StateStore) -> None:
    items = [("a1", "Score", 1.0), ("a2", "Score", object())]  # the second cannot be stored
    with pytest.raises(TypeError):
        store.record_written("sf", 1, iter(items), T0)
    assert store.last_written("sf") == {}


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.record_written("sf", 1, [("a1", "Score", 1)], datetime(2024, 5, 1))


# the lock


def test_lock_excludes_another_process_until_released(tmp_path: Path, backend: str) -> None:
    with StateStore(tmp_path) as store:
        store.acquire_lock()
        blocked = try_lock_elsewhere(tmp_path)
        assert blocked.returncode == 3, blocked.stderr
        assert f"pid {os.getpid()}" in blocked.stdout
        assert state_location(tmp_path).split(" (schema")[0] in blocked.stdout
        assert re.search(r"since \d{4}-\d\d-\d\dT", blocked.stdout)
        store.release_lock()
        free = try_lock_elsewhere(tmp_path)
        assert (free.returncode, free.stdout.strip()) == (0, "acquired"), free.stderr


def test_closing_the_store_releases_the_lock(tmp_path: Path, backend: str) -> None:
    with StateStore(tmp_path) as store:
        store.acquire_lock()
        store.acquire_lock()  # holding it already: a no-op
    with StateStore(tmp_path) as store:
        store.acquire_lock()


def test_second_store_in_the_same_process_is_locked_out(tmp_path: Path, backend: str) -> None:
    with StateStore(tmp_path) as first, StateStore(tmp_path) as second:
        first.acquire_lock()
        with pytest.raises(LockedError) as raised:
            second.acquire_lock()
        assert raised.value.pid == os.getpid()
        assert str(raised.value.directory) == state_location(tmp_path).split(" (schema")[0]
        first.release_lock()
        second.acquire_lock()


def test_lock_taken_by_a_process_still_starting(tmp_path: Path) -> None:
    with (tmp_path / StateStore.LOCK_NAME).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # locked, nothing written yet
        with StateStore(tmp_path) as store, pytest.raises(LockedError, match="still starting"):
            store.acquire_lock()


def test_lock_of_a_killed_process_is_free(tmp_path: Path, backend: str) -> None:
    holder = subprocess.Popen(
        _python(HOLD_LOCK, tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        blocked = try_lock_elsewhere(tmp_path)
        assert blocked.returncode == 3, blocked.stderr
        assert f"pid {holder.pid}" in blocked.stdout
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
        acquire_when_free(tmp_path).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# runs


def test_runs_newest_first_with_counts(store: StateStore) -> None:
    first = store.start_run("sf", "full", started_at=T0)
    store.finish_run(first, "ok", 0, {"scored": 10, "written": 4}, 12, finished_at=T0)
    second = store.start_run("hubspot", "incremental", dry_run=True)
    store.finish_run(second, "partial", 2, {"failed": 1}, 3, "1 record failed")
    killed = store.start_run("sf", "incremental")

    runs = store.runs()
    assert [r.id for r in runs] == [killed, second, first]
    latest, middle, oldest = runs
    assert (latest.finished_at, latest.outcome, latest.exit_code) == (None, None, None)
    assert latest.counts == {}
    assert (middle.dry_run, middle.outcome, middle.exit_code, middle.message) == (
        True,
        "partial",
        2,
        "1 record failed",
    )
    assert middle.counts == {"failed": 1}
    assert oldest.counts == {"scored": 10, "written": 4}
    assert oldest.started_at == T0
    assert oldest.started_at.tzinfo is not None
    assert middle.finished_at is not None
    assert middle.finished_at.utcoffset() == timedelta(0)
    assert [r.id for r in store.runs("sf")] == [killed, first]
    assert [r.id for r in store.runs(limit=1)] == [killed]


def test_finishing_an_unknown_run_raises(store: StateStore) -> None:
    with pytest.raises(KeyError):
        store.finish_run(42, "ok", 0, {}, 0)


# watermarks


def test_watermark_capped_at_run_start(store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    future = T0 + timedelta(days=3)
    with caplog.at_level(logging.WARNING, logger="icp_engine.sync.state.store"):
        mark = store.set_watermark("sf", "account", future, ["a1"], run_started_at=T0)
    assert mark == Watermark(T0, frozenset())
    assert store.watermark("sf", "account") == mark
    assert "capped" in caplog.text


def test_watermark_never_moves_back(store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    store.set_watermark("sf", "account", T0, ["a1"], run_started_at=T0)
    with caplog.at_level(logging.WARNING, logger="icp_engine.sync.state.store"):
        kept = store.set_watermark("sf", "account", T0 - timedelta(hours=1), ["a9"], T0)
    assert kept == Watermark(T0, frozenset({"a1"}))
    assert store.watermark("sf", "account") == kept
    assert "back" in caplog.text


def test_watermark_at_the_same_time_unions_boundary_ids(store: StateStore) -> None:
    start = T0 + timedelta(hours=1)
    store.set_watermark("sf", "account", T0, ["a1", "a2"], start)
    same = T0.astimezone(timezone(timedelta(hours=2)))  # the same instant, another offset
    assert store.set_watermark("sf", "account", same, ["a3"], start).boundary_ids == {
        "a1",
        "a2",
        "a3",
    }
    later = store.set_watermark("sf", "account", pd.Timestamp(start), {"a4"}, start)
    assert later == Watermark(start, frozenset({"a4"}))
    assert later.value.tzinfo is not None


def test_the_boundary_of_a_bulk_load_is_kept_in_parts_not_in_the_row(store: StateStore) -> None:
    """After a bulk load every record carries one stamp: its Ids go to a part table (more
    than one part here), read back whole, added to at the same stamp, replaced after."""
    ids = [f"001{i:012d}" for i in range(300_000)]
    store.set_watermark("sf", "account", T0, Ids(pa.array(ids)), T0)
    rows = store._db.execute("SELECT boundary_ids FROM watermarks").fetchall()
    assert [text for (text,) in rows] == ["[]"]
    mark = store.watermark("sf", "account")
    assert mark is not None and len(mark.boundary_ids) == len(ids)
    asked = np.array([*ids[::1000], "0010", None], dtype=object)
    assert mark.boundary_ids.contains(asked).tolist() == [True] * 300 + [False, False]
    assert store.watermark_values("sf") == {("sf", "account"): T0}  # (the ids left unread)
    store.set_watermark("sf", "account", T0, ["another"], T0)
    assert len(store.watermarks()[("sf", "account")].boundary_ids) == len(ids) + 1
    later = T0 + timedelta(seconds=1)
    store.set_watermark("sf", "account", later, ["last"], later)
    assert store.watermark("sf", "account") == Watermark(later, frozenset({"last"}))


def test_boundary_ids_kept_in_the_row_by_an_earlier_engine_are_still_read(
    store: StateStore,
) -> None:
    store.set_watermark("sf", "account", T0, ["a1"], T0)
    store._db.execute("UPDATE watermarks SET boundary_ids = ?", ('["a0"]',))
    assert store.watermark("sf", "account") == Watermark(T0, frozenset({"a0", "a1"}))
    store.set_watermark("sf", "account", T0, ["a2"], T0)
    assert store.watermark("sf", "account") == Watermark(T0, frozenset({"a0", "a1", "a2"}))
    rows = store._db.execute("SELECT boundary_ids FROM watermarks").fetchall()
    assert [text for (text,) in rows] == ["[]"]


def test_watermarks_per_crm_and_object_and_reset(store: StateStore) -> None:
    assert store.watermark("sf", "account") is None
    store.set_watermark("sf", "account", T0, [], T0)
    store.set_watermark("sf", "opportunity", T0 - timedelta(days=1), ["o1"], T0)
    store.set_watermark("hubspot", "account", T0, [], T0)
    assert set(store.watermarks()) == {
        ("sf", "account"),
        ("sf", "opportunity"),
        ("hubspot", "account"),
    }
    assert store.watermarks("sf")[("sf", "opportunity")].boundary_ids == {"o1"}
    reset_watermarks(store, "sf")
    assert set(store.watermarks()) == {("hubspot", "account")}


_STEPS = st.lists(
    st.tuples(
        st.integers(0, 12).map(lambda m: T0 + timedelta(minutes=m)),
        st.frozensets(st.sampled_from(["a", "b", "c", "d"])),
        st.integers(0, 12).map(lambda m: T0 + timedelta(minutes=m)),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(_STEPS)
def test_watermark_never_decreases(steps: list[tuple[datetime, frozenset[str], datetime]]) -> None:
    logging.getLogger("icp_engine.sync.state.store").disabled = True
    try:
        with tempfile.TemporaryDirectory() as directory, StateStore(Path(directory)) as store:
            expected: Watermark | None = None
            for value, ids, start in steps:
                capped = Watermark(value, ids) if value <= start else Watermark(start, frozenset())
                if expected is None or capped.value > expected.value:
                    expected = capped
                elif capped.value == expected.value:
                    expected = Watermark(
                        expected.value, expected.boundary_ids | capped.boundary_ids
                    )
                previous = store.watermark("sf", "account")
                result = store.set_watermark("sf", "account", value, ids, start)
                assert result == expected
                assert store.watermark("sf", "account") == result
                assert previous is None or result.value >= previous.value
                assert result.value <= max(s for _, _, s in steps)
    finally:
        logging.getLogger("icp_engine.sync.state.store").disabled = False


# last written values


def test_last_written_round_trip(store: StateStore) -> None:
    items = [
        ("a1", "ICP_Score__c", 81.25),
        ("a1", "ICP_Tier__c", "A"),
        ("a1", "ICP_Reasons__c", None),
        ("a2", "ICP_Score__c", np.float64(12.5)),
        ("a2", "ICP_Rank__c", np.int64(3)),
        ("a3", "ICP_Score__c", float("nan")),
    ]
    store.record_written("sf", 1, items, T0)
    written = store.last_written("sf")
    assert {key: w.value for key, w in written.items()} == {
        ("a1", "ICP_Score__c"): 81.25,
        ("a1", "ICP_Tier__c"): "A",
        ("a1", "ICP_Reasons__c"): None,
        ("a2", "ICP_Score__c"): 12.5,
        ("a2", "ICP_Rank__c"): 3,
        ("a3", "ICP_Score__c"): None,
    }
    assert type(written[("a2", "ICP_Rank__c")].value) is int
    assert {w.written_at for w in written.values()} == {T0}
    assert store.last_written("hubspot") == {}


@pytest.mark.slow
def test_last_written_for_100k_ids(store: StateStore) -> None:
    if store.backend == "sqlite":
        store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as SQLite before 3.32
    ids = [f"001{i:012d}" for i in range(100_000)]
    store.record_written("sf", 1, ((i, "ICP_Tier__c", "B") for i in ids), T0)
    written = store.last_written("sf", ids)
    assert len(written) == 100_000
    assert written[(ids[-1], "ICP_Tier__c")] == Written("B", T0)


def test_last_written_overwrites_and_filters_by_many_ids(store: StateStore) -> None:
    ids = [f"a{i:05d}" for i in range(3000)]
    store.record_written("sf", 1, [(i, "Score", 1.0) for i in ids], T0)
    later = T0 + timedelta(days=1)
    store.record_written("sf", 2, [("a00001", "Score", 2.0)], later)
    wanted = [*ids[:1500], "missing", "a00001"]  # > 1000 ids, an unknown one, a duplicate
    written = store.last_written("sf", wanted)
    assert set(written) == {(i, "Score") for i in ids[:1500]}
    assert written[("a00001", "Score")] == store.last_written("sf", ["a00001"])[("a00001", "Score")]
    assert written[("a00001", "Score")].value == 2.0
    assert written[("a00001", "Score")].written_at == later
    assert written[("a00002", "Score")].written_at == T0
    assert store.last_written("sf", []) == {}
    assert len(store.last_written("sf")) == 3000
    with pytest.raises(TypeError, match="string"):
        store.last_written("sf", "a00001")


# failures


def test_failures_count_attempts_and_clear(store: StateStore) -> None:
    later = T0 + timedelta(hours=1)
    lock = Failure("a2", "UNABLE_TO_LOCK_ROW", "row locked", True, {"ICP_Score__c": 81.5})
    too_long = Failure("a1", "STRING_TOO_LONG", "too long", False, {"ICP_Reasons__c": "x" * 300})
    store.record_failures("sf", 1, [lock, too_long], T0)
    again = Failure("a2", "UNABLE_TO_LOCK_ROW", "still locked", True, {"ICP_Score__c": 82.0})
    store.record_failures("sf", 2, [again], later)

    first, second = store.failures("sf")
    assert first.record_id == "a1"
    assert (first.attempts, first.first_failed_at, first.last_failed_at) == (1, T0, T0)
    assert first.values == {"ICP_Reasons__c": "x" * 300}
    assert not first.transient
    assert second.record_id == "a2"
    assert (second.attempts, second.first_failed_at, second.last_failed_at) == (2, T0, later)
    assert (second.message, second.values, second.transient) == (
        "still locked",
        {"ICP_Score__c": 82.0},
        True,
    )
    assert store.failures("hubspot") == []

    store.clear_failures("sf", ["a2", "unknown"])
    assert [f.record_id for f in store.failures()] == ["a1"]


def test_failures_of_all_crms(store: StateStore) -> None:
    store.record_failures("sf", 1, [Failure("b", None, None, True, {})], T0)
    store.record_failures("hubspot", 2, [Failure("a", None, None, True, {})], T0)
    assert [f.record_id for f in store.failures()] == ["a", "b"]


# the records mirror


def _opportunities() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3"],
            "account_id": ["a1", "a1", "a2"],
            "amount": [1200.5, np.nan, 3.0],
            "stage": pd.Series(["Won", None, "Lost"], dtype="str"),
            "is_won": [True, False, True],
            "is_closed": pd.array([True, None, False], dtype="boolean"),
            "seats": pd.array([5, None, 7], dtype="Int64"),
            "closed_at": pd.to_datetime(
                pd.Series(["2024-05-01T12:00:00+02:00", None, "2024-05-02T00:00:00.123456Z"]),
                utc=True,
                format="ISO8601",
            ),
            "created_at": pd.Series(
                [pd.Timestamp("2024-01-01 09:30", tz="America/New_York"), pd.NaT, pd.NaT]
            ),
            "notes": [None, np.nan, pd.NA],
        }
    )


def test_mirror_round_trip(store: StateStore) -> None:
    frame = _opportunities()
    store.upsert_records("sf", "opportunity", frame, "opportunity_id", "account_id")
    loaded = store.load_records("sf", "opportunity")
    assert list(loaded.columns) == list(frame.columns)
    assert set(loaded.dtypes) == {np.dtype(object)}
    assert loaded.to_dict("records") == [
        {
            "opportunity_id": "o1",
            "account_id": "a1",
            "amount": 1200.5,
            "stage": "Won",
            "is_won": True,
            "is_closed": True,
            "seats": 5,
            "closed_at": "2024-05-01T10:00:00.000000+00:00",
            "created_at": "2024-01-01T14:30:00.000000+00:00",
            "notes": None,
        },
        {
            "opportunity_id": "o2",
            "account_id": "a1",
            "amount": None,
            "stage": None,
            "is_won": False,
            "is_closed": None,
            "seats": None,
            "closed_at": None,
            "created_at": None,
            "notes": None,
        },
        {
            "opportunity_id": "o3",
            "account_id": "a2",
            "amount": 3.0,
            "stage": "Lost",
            "is_won": True,
            "is_closed": False,
            "seats": 7,
            "closed_at": "2024-05-02T00:00:00.123456+00:00",
            "created_at": None,
            "notes": None,
        },
    ]
    # the caller re-types: the timestamps come back as the same instants
    closed = pd.to_datetime(loaded["closed_at"], utc=True, format="ISO8601")
    pd.testing.assert_series_equal(closed, frame["closed_at"], check_dtype=False)
    assert type(loaded.loc[0, "is_won"]) is bool
    assert type(loaded.loc[0, "seats"]) is int


def test_mirror_object_columns_of_mixed_python_and_numpy_values(store: StateStore) -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a4"],
            "mixed": [
                np.int64(3),
                np.bool_(True),
                datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
                pd.Timestamp("2024-05-01"),  # naive: taken as UTC
            ],
        }
    )
    store.upsert_records("sf", "account", frame, "account_id")
    assert store.load_records("sf", "account")["mixed"].tolist() == [
        3,
        True,
        "2024-05-01T12:00:00.000000+00:00",
        "2024-05-01T00:00:00.000000+00:00",
    ]
    bad = pd.DataFrame({"account_id": ["a1"], "age": [timedelta(days=1)]})
    with pytest.raises(TypeError, match=r"(?i)timedelta"):
        store.upsert_records("sf", "account", bad, "account_id")


def test_mirror_filters_by_ids_and_accounts(store: StateStore) -> None:
    store.upsert_records("sf", "opportunity", _opportunities(), "opportunity_id", "account_id")
    by_account = store.load_records("sf", "opportunity", account_ids=["a1", "zz"])
    assert by_account["opportunity_id"].tolist() == ["o1", "o2"]
    by_id = store.load_records("sf", "opportunity", ids=["o3", "o1"])
    assert by_id["opportunity_id"].tolist() == ["o1", "o3"]
    both = store.load_records("sf", "opportunity", ids=["o2", "o3"], account_ids=["a1"])
    assert both["opportunity_id"].tolist() == ["o2"]
    none = store.load_records("sf", "opportunity", ids=["missing"])
    assert none.empty
    assert isinstance(none, pd.DataFrame)
    assert store.load_records("sf", "opportunity", account_ids=[]).empty
    assert store.load_records("hubspot", "opportunity").empty


def test_mirror_upsert_replaces_and_moves_rows_between_accounts(store: StateStore) -> None:
    store.upsert_records("sf", "opportunity", _opportunities(), "opportunity_id", "account_id")
    moved = pd.DataFrame({"opportunity_id": ["o1"], "account_id": ["a2"], "amount": [5.0]})
    store.upsert_records("sf", "opportunity", moved, "opportunity_id", "account_id")
    a2 = store.load_records("sf", "opportunity", account_ids=["a2"])
    assert a2["opportunity_id"].tolist() == ["o1", "o3"]
    assert a2.loc[0, "amount"] == 5.0
    assert a2.loc[0, "stage"] is None  # not in the new row: replaced, not merged


def test_mirror_delete_record_ids_and_reset(store: StateStore) -> None:
    store.upsert_records("sf", "opportunity", _opportunities(), "opportunity_id", "account_id")
    store.record_written("sf", 1, [("a1", "Score", 1.0)], T0)
    store.delete_records("sf", "opportunity", ["o2", "missing"])
    assert store.record_ids("sf", "opportunity") == {"o1", "o3"}
    reset_records(store, "sf")
    assert store.record_ids("sf", "opportunity") == set()
    assert store.last_written("sf") != {}  # only the mirror goes


def test_mirror_refuses_rows_without_id(store: StateStore) -> None:
    frame = pd.DataFrame({"account_id": ["a1", None]})
    with pytest.raises(ValueError, match="without an id"):
        store.upsert_records("sf", "account", frame, "account_id")
    with pytest.raises(KeyError):
        store.upsert_records("sf", "account", frame, "id")
    store.upsert_records("sf", "account", frame.iloc[:0], "account_id")  # empty: nothing to do
    assert store.record_ids("sf", "account") == set()


@pytest.mark.slow
def test_mirror_handles_many_rows(store: StateStore) -> None:
    n = 20_000
    frame = pd.DataFrame(
        {
            "opportunity_id": [f"o{i}" for i in range(n)],
            "account_id": [f"a{i % 1000}" for i in range(n)],
            "amount": np.arange(n, dtype=float),
            "modified_at": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
        }
    )
    store.upsert_records("sf", "opportunity", frame, "opportunity_id", "account_id")
    accounts = [f"a{i}" for i in range(0, 1000, 2)] + [f"x{i}" for i in range(1000)]
    loaded = store.load_records("sf", "opportunity", account_ids=accounts)
    assert len(loaded) == n // 2
    assert len(store.load_records("sf", "opportunity", ids=frame["opportunity_id"])) == n


# deleted accounts


def test_forget_accounts_removes_all_traces(store: StateStore) -> None:
    accounts = pd.DataFrame({"account_id": ["a1", "a2"], "name": ["Acme", "Globex"]})
    store.upsert_records("sf", "account", accounts, "account_id")
    store.upsert_records("sf", "opportunity", _opportunities(), "opportunity_id", "account_id")
    store.upsert_records("hubspot", "account", accounts, "account_id")
    store.record_written(
        "sf", 1, [("a1", "Score", 1.0), ("a1", "Tier", "A"), ("a2", "Score", 2)], T0
    )
    store.record_failures(
        "sf", 1, [Failure("a1", "X", "no", False, {}), Failure("a2", None, None, True, {})], T0
    )

    store.forget_accounts("sf", ["a1"])

    assert set(store.last_written("sf")) == {("a2", "Score")}
    assert [f.record_id for f in store.failures("sf")] == ["a2"]
    assert store.record_ids("sf", "account") == {"a2"}
    assert store.record_ids("sf", "opportunity") == {"o1", "o2", "o3"}  # opportunities stay
    assert store.record_ids("hubspot", "account") == {"a1", "a2"}  # other CRMs untouched


def test_to_jsonable_matches_what_last_written_returns() -> None:
    assert to_jsonable(np.float64(1.5)) == 1.5
    assert to_jsonable(pd.NA) is None
    assert to_jsonable({"a": [np.int64(1), float("inf")]}) == {"a": [1, None]}


# handed-over changes and one-transaction commits (issue 10)


def test_pending_summary_groups_by_run(store: StateStore) -> None:
    later = T0.replace(hour=13)
    store.put_pending(
        "csv",
        [
            ("a1", "ICP_Score__c", Pending(81.5, 3, T0)),
            ("a1", "ICP_Tier__c", Pending("A", 3, T0)),
            ("a2", "ICP_Route__c", Pending(None, 4, later)),
        ],
    )
    assert store.pending("csv")[("a2", "ICP_Route__c")] == Pending(None, 4, later)
    assert store.pending_summary() == [
        {"crm": "csv", "run_id": 3, "records": 1, "fields": 2, "since": T0},
        {"crm": "csv", "run_id": 4, "records": 1, "fields": 1, "since": later},
    ]
    store.drop_pending("csv", [("a1", "ICP_Tier__c")])
    store.forget_accounts("csv", ["a2"])
    assert list(store.pending("csv")) == [("a1", "ICP_Score__c")]


def test_pending_as_frames_in_statements_of_many_rows(store: StateStore) -> None:
    """put_pending/drop_pending take frames (issue 14): a key given twice keeps its last
    value, dropped keys go whatever their order, None drops a crm's queue."""
    later = T0.replace(hour=13)
    keys = [(f"a{i:03d}", f) for i in range(125) for f in ("ICP_Tier__c", "ICP_Score__c")]
    frame = pd.DataFrame(
        {
            "record_id": [r for r, _ in keys] + ["a000"],
            "field": [f for _, f in keys] + ["ICP_Tier__c"],
            "value": [f"v{i}" for i in range(len(keys))] + ["again"],
            "since": [T0] * len(keys) + [later],
        },
        dtype=object,
    )
    frame.insert(3, "run_id", [3] * len(keys) + [4])
    store.put_pending("csv", pd.concat([frame.iloc[-2::-1], frame.iloc[-1:]]))  # any order
    store.put_pending("other", frame.iloc[:1])
    pending = store.pending("csv")
    assert len(pending) == 250 and set(pending) == set(keys)
    assert pending[("a000", "ICP_Tier__c")] == Pending("again", 4, later)
    assert pending[("a124", "ICP_Score__c")] == Pending("v249", 3, T0)
    assert list(pending.frame.columns) == ["record_id", "field", "value", "run_id", "since"]

    store.drop_pending("csv", frame.iloc[:200])
    assert set(store.pending("csv")) == set(keys[200:])
    store.drop_pending("csv", None)
    assert store.pending("csv") == {} and len(store.pending("other")) == 1


def test_atomic_lands_all_or_nothing(store: StateStore) -> None:
    run = store.start_run("csv", "sync")

    def half_way() -> None:
        with store.atomic():
            store.put_pending("csv", [("a1", "ICP_Tier__c", Pending("A", run, T0))])
            store.set_meta("k", "v")
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        half_way()
    assert store.pending("csv") == {} and store.get_meta("k") is None
    with store.atomic():
        store.put_pending("csv", [("a1", "ICP_Tier__c", Pending("A", run, T0))])
        store.set_meta("k", "v")
    assert store.get_meta("k") == "v" and len(store.pending("csv")) == 1


def test_an_empty_state_file_is_damage_not_new(tmp_path: Path) -> None:
    (tmp_path / StateStore.FILE_NAME).write_bytes(b"")
    with pytest.raises(StateError, match=r"is empty \(0 bytes\).*icp state reset"):
        StateStore(tmp_path)
    assert (tmp_path / StateStore.FILE_NAME).read_bytes() == b""


def test_a_new_state_leaves_no_temporary_file(tmp_path: Path) -> None:
    StateStore(tmp_path / "s").close()
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if not p.name.startswith("lock")) == [
        StateStore.FILE_NAME,
        f"{StateStore.FILE_NAME}.clean",  # the clean-close marker (no page check next open)
        *(
            [f"{StateStore.FILE_NAME}-shm", f"{StateStore.FILE_NAME}-wal"]
            if (tmp_path / "s" / f"{StateStore.FILE_NAME}-wal").exists()
            else []
        ),
    ]


def test_a_version_1_state_is_migrated_with_its_data(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        store.set_meta("kept", "yes")
    with sqlite3.connect(tmp_path / StateStore.FILE_NAME) as db:
        db.execute("DROP TABLE pending")
        db.execute("DROP TABLE parts")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    with StateStore(tmp_path) as store:
        assert store.get_meta("kept") == "yes"
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert store.pending("csv") == {}


# the page check (`PRAGMA quick_check` reads the whole file) runs unless a clean close vouches


def _a_state_with_many_pages(directory: Path) -> Path:
    n = 5_000
    frame = pd.DataFrame(
        {
            "opportunity_id": [f"o{i}" for i in range(n)],
            "account_id": [f"a{i % 500}" for i in range(n)],
            "amount": np.arange(n, dtype=float),
        }
    )
    with StateStore(directory) as store:
        store.upsert_records("sf", "opportunity", frame, "opportunity_id", "account_id")
    return directory / StateStore.FILE_NAME


def test_a_clean_close_vouches_for_the_file_until_anything_else_touches_it(tmp_path: Path) -> None:
    path = _a_state_with_many_pages(tmp_path)
    marker = tmp_path / f"{StateStore.FILE_NAME}.clean"
    assert _closed_cleanly(path)
    with StateStore(tmp_path) as store:
        assert not marker.exists()  # open: a crash from here leaves no marker
        store.set_meta("k", "v")
    assert _closed_cleanly(path)
    db = sqlite3.connect(path)  # another program writes to the file
    db.execute("CREATE TABLE other (a)")
    db.commit()
    db.close()
    assert not _closed_cleanly(path)


def test_a_process_killed_with_the_state_open_leaves_it_unvouched(tmp_path: Path) -> None:
    path = _a_state_with_many_pages(tmp_path)
    script = (
        "import os, sys; from icp_engine.sync.state.store import StateStore; "
        "s = StateStore(sys.argv[1]); s.set_meta('k', 'v'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    assert not _closed_cleanly(path)
    with StateStore(tmp_path) as store:  # checked, then vouched for again
        assert store.get_meta("k") == "v"
    assert _closed_cleanly(path)


def test_pages_damaged_after_a_clean_close_are_refused(tmp_path: Path) -> None:
    path = _a_state_with_many_pages(tmp_path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 8192] = os.urandom(8192)
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"damaged.*icp state reset"):
        StateStore(tmp_path)
