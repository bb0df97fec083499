"""Pulled pages kept on disk (`sync.spill`): sorted by DuckDB within its memory limit,
read back with the dtypes a pull gave, a range of keys at a time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from icp_engine.sync.spill import SPILL_PREFIX, Spill, to_frame
from icp_engine.sync.state.parts import KeyRange


def _page(ids: list[str], accounts: list[str | None], amounts: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": pd.array(ids, dtype="str"),
            "account_id": pd.array(accounts, dtype="str"),
            "is_won": pd.array([i % 2 == 0 for i in range(len(ids))], dtype="boolean"),
            "amount": amounts,
            "closed_at": pd.to_datetime(
                [f"2026-01-{i + 1:02d}T10:00:00Z" for i in range(len(ids))], utc=True
            ),
        }
    )


@pytest.fixture
def spill(tmp_path: Path) -> Spill:
    spill = Spill(tmp_path)
    spill.add("opportunity", _page(["o3", "o1", "o2"], ["a2", "a1", None], [3.0, 1.0, 2.0]))
    spill.add("opportunity", _page(["o5", "o1", "o4"], ["a1", "a3", "a2"], [5.0, 10.0, 4.0]))
    return spill


def test_sorted_rows_keep_the_last_of_a_repeated_id_and_their_dtypes(spill: Spill) -> None:
    assert spill.rows("opportunity") == 6
    by_id = spill.sort("opportunity", "opportunity_id", "opportunity_id", "by-id")
    frame = pd.concat([to_frame(t) for t in by_id.batches(2)], ignore_index=True)
    assert frame["opportunity_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]
    assert frame.loc[0, "amount"] == 10.0 and frame.loc[0, "account_id"] == "a3"  # the last o1
    given = _page(["o1"], ["a1"], [1.0])
    assert frame.dtypes.to_dict() == given.dtypes.to_dict()
    assert frame.loc[1, "closed_at"] == pd.Timestamp("2026-01-03T10:00:00Z")


def test_a_range_of_keys_reads_only_its_rows(spill: Spill) -> None:
    by_account = spill.sort("opportunity", "account_id", "opportunity_id", "by-account")
    assert by_account.rows == 5
    read = {
        bounds: to_frame(by_account.between(bounds))["opportunity_id"].tolist()
        for bounds in (KeyRange(None, "a1"), KeyRange("a1", "a2"), KeyRange("a2", None))
    }
    assert read == {
        KeyRange(None, "a1"): ["o5"],
        KeyRange("a1", "a2"): ["o3", "o4"],
        KeyRange("a2", None): ["o1"],  # (o2 has no account: in no range)
    }


def test_ids_are_counted_and_looked_up_on_disk(spill: Spill) -> None:
    assert spill.distinct("opportunity", "opportunity_id") == 5  # o1 twice
    assert spill.distinct("opportunity", "account_id") == 3  # (no account: not one)
    known = pa.array(["o1", "o4", "o9", "o0"])
    assert spill.missing("opportunity", "opportunity_id", known) == {"o9", "o0"}
    assert spill.missing("opportunity", "opportunity_id", known.slice(0, 0)) == set()


def test_pages_said_to_hold_each_id_once_are_only_sorted(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    spill.add("opportunity", _page(["o2", "o1"], ["a1", "a1"], [2.0, 1.0]))
    by_id = spill.sort("opportunity", "opportunity_id", "opportunity_id", repeats=False)
    assert to_frame(next(by_id.batches(10)))["opportunity_id"].tolist() == ["o1", "o2"]


def test_close_removes_the_folder_and_a_new_spill_clears_old_ones(tmp_path: Path) -> None:
    first = Spill(tmp_path)
    first.add("account", pd.DataFrame({"account_id": ["a1"]}))
    second = Spill(tmp_path)  # the first one's run was killed
    assert not first.directory.exists() and second.directory.exists()
    second.close()
    assert not list(tmp_path.glob(SPILL_PREFIX + "*"))
    Spill(tmp_path).close()  # a run that kept nothing made no folder
    assert not list(tmp_path.glob(SPILL_PREFIX + "*"))
