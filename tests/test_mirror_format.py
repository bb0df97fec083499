"""The records mirror's compact rows: names once per layout, kept in compressed parts;
older object rows (and rows of a state from before the parts) still read."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from icp_engine.sync.state.mirror import column_values, to_jsonable
from icp_engine.sync.state.store import StateStore


def test_rows_store_values_not_names_and_read_back(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "industry_of_the_account": ["Retail", None],
            "employees": [120.0, float("nan")],
            "created_at": pd.to_datetime(["2024-05-01T12:00:00Z", None], utc=True),
        }
    )
    with StateStore(tmp_path) as store:
        store.upsert_records("csv", "account", frame, "account_id")
        stored = store.load_records("csv", "account")
    assert stored.to_dict("records") == [
        {
            "account_id": "a1",
            "industry_of_the_account": "Retail",
            "employees": 120.0,
            "created_at": "2024-05-01T12:00:00.000000+00:00",
        },
        {"account_id": "a2", "industry_of_the_account": None, "employees": None,
         "created_at": None},
    ]  # fmt: skip
    db = sqlite3.connect(tmp_path / "state.sqlite")
    (blob,) = db.execute("SELECT data FROM parts WHERE name = 'records.account'").fetchone()
    db.close()
    data = pq.read_table(pa.BufferReader(blob)).column("data").to_pylist()
    assert all("industry_of_the_account" not in text for text in data)
    assert json.loads(data[1])[1:] == ["a2", None, None, None]


def test_rows_of_older_layouts_and_json_objects_read_together(tmp_path) -> None:
    with StateStore(tmp_path) as store:
        store.upsert_records("csv", "account", pd.DataFrame({"account_id": ["a1"]}), "account_id")
    db = sqlite3.connect(tmp_path / "state.sqlite")
    db.execute(
        "INSERT INTO records (crm, object, record_id, account_id, data) VALUES"
        " ('csv', 'account', 'a0', NULL, ?)",
        (json.dumps({"account_id": "a0", "name": "Old row"}),),
    )
    db.commit()
    db.close()
    with StateStore(tmp_path) as store:
        store.upsert_records(
            "csv", "account", pd.DataFrame({"account_id": ["a2"], "name": ["New"]}), "account_id"
        )
        stored = store.load_records("csv", "account")
    assert stored.to_dict("records") == [
        {"account_id": "a0", "name": "Old row"},
        {"account_id": "a1", "name": None},
        {"account_id": "a2", "name": "New"},
    ]


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_timestamps_are_stored_as_to_jsonable_spells_them(tz: str | None) -> None:
    rng = np.random.default_rng(3)
    micros = rng.integers(-2_000_000_000_000_000, 4_000_000_000_000_000, 2_000)
    stamps = pd.Series(pd.to_datetime(micros, unit="us"))
    stamps.iloc[::7] = pd.NaT
    if tz is not None:
        stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(tz)
    assert column_values(stamps) == [None if pd.isna(v) else to_jsonable(v) for v in stamps]
