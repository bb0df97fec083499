"""The records mirror built by a second process (`sync.mirror_ahead`): an error it meets
is the run's own, and what it builds is what the run would store itself."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from icp_engine.sync.mirror_ahead import MirrorAhead, MirrorJob
from icp_engine.sync.spill import SortedFile
from icp_engine.sync.state.store import StateStore


def _accounts(path: Path, rows: int, name: str = "Account") -> SortedFile:
    frame = pd.DataFrame(
        {
            "account_id": [f"001{n:012d}AAA" for n in range(rows)],
            "name": [f"{name} {n}" if n % 7 else None for n in range(rows)],
            "employees": pd.array([n * 3 if n % 5 else None for n in range(rows)], "Int64"),
            "created_at": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path)
    return SortedFile(path, "account_id", table.schema, rows)


def test_the_second_process_stores_what_the_run_would(tmp_path: Path) -> None:
    rows = _accounts(tmp_path / "accounts.parquet", 1_000)
    job = MirrorJob("account", rows, "account_id", None, 300, tmp_path / "new", new_table=True)
    with StateStore(tmp_path / "ahead") as ahead, StateStore(tmp_path / "here") as here:
        assert MirrorAhead([job], tmp_path / "mirror.log").store(ahead, "csv")
        frames = (table.to_pandas() for table in rows.batches(300))
        here.upsert_records("csv", "account", frames, "account_id")
        built = ahead.load_records("csv", "account")
        assert len(built) == 1_000
        pd.testing.assert_frame_equal(built, here.load_records("csv", "account"))

        changed = _accounts(tmp_path / "changed.parquet", 1_500, name="Renamed")
        job = replace(job, rows=changed, out=tmp_path / "merged", new_table=False)
        assert MirrorAhead([job], tmp_path / "mirror.log").store(ahead, "csv")
        frames = (table.to_pandas() for table in changed.batches(300))
        here.upsert_records("csv", "account", frames, "account_id")
        merged = ahead.load_records("csv", "account")
        assert len(merged) == 1_500
        assert merged["name"].str.startswith("Renamed").sum() == len(merged) - 215
        pd.testing.assert_frame_equal(merged, here.load_records("csv", "account"))


def test_an_error_in_the_second_process_is_raised_as_the_runs_own(tmp_path: Path) -> None:
    missing = SortedFile(tmp_path / "gone.parquet", "account_id", pa.schema([]), 10)
    job = MirrorJob("account", missing, "account_id", None, 100, tmp_path / "new", True)
    with StateStore(tmp_path / "state") as state:
        ahead = MirrorAhead([job], tmp_path / "mirror.log")
        with pytest.raises(FileNotFoundError, match=r"gone\.parquet"):
            ahead.store(state, "csv")
        assert state.mirror.is_empty("csv", "account")


def test_a_full_mirror_is_not_replaced_by_built_parts(tmp_path: Path) -> None:
    rows = _accounts(tmp_path / "accounts.parquet", 10)
    job = MirrorJob("account", rows, "account_id", None, 100, tmp_path / "new", new_table=True)
    with StateStore(tmp_path / "state") as state:
        state.upsert_records("csv", "account", next(rows.batches(100)).to_pandas(), "account_id")
        with pytest.raises(ValueError, match=r"records\.account: built parts make a new table"):
            MirrorAhead([job], tmp_path / "mirror.log").store(state, "csv")
        assert len(state.load_records("csv", "account")) == 10


def test_a_process_whose_run_died_stops_before_writing(tmp_path: Path) -> None:
    """A run killed with `kill -9` cannot stop its mirror process; the process sees its
    parent gone and exits before it writes a part nobody will store."""
    rows = _accounts(tmp_path / "accounts.parquet", 100)
    job = MirrorJob("account", rows, "account_id", None, 100, tmp_path / "new", new_table=True)
    (tmp_path / "job.pickle").write_bytes(pickle.dumps(job))
    run = (
        "import os, pickle, sys\n"
        "from pathlib import Path\n"
        "from icp_engine.sync.mirror_ahead import MirrorAhead\n"
        f"job = pickle.loads(Path({str(tmp_path / 'job.pickle')!r}).read_bytes())\n"
        f"ahead = MirrorAhead([job], Path({str(tmp_path / 'mirror.log')!r}))\n"
        "print(ahead.pid, flush=True)\n"
        "os._exit(0)  # as if killed: nothing stops the process\n"
    )
    started = subprocess.run(
        [sys.executable, "-c", run], capture_output=True, text=True, check=True
    )
    pid = int(started.stdout)
    deadline = time.monotonic() + 60
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)
    # It left at its first part: the file holds no part (not even flushed headers).
    assert job.out.stat().st_size < 1_000
    assert "Traceback" not in (tmp_path / "mirror.log").read_text()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
