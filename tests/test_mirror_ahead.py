"""The records mirror built by a second process (`sync.mirror_ahead`): an error it meets
is the run's own, and what it builds is what the run would store itself."""

from __future__ import annotations

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
