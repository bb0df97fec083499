"""The records mirror's compact rows: names once per layout, kept in compressed parts;
older object rows (and rows of a state from before the parts) still read."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from icp_engine.connectors.canonical import TEXT
from icp_engine.sync.state.mirror import column_values, json_literals, to_jsonable
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


def test_rows_encoded_in_arrow_are_the_texts_orjson_writes() -> None:
    """The mirror builds each row's JSON from column literals made in Arrow; every value
    kind a canonical frame holds gives exactly orjson's text of `column_values`."""
    rng = np.random.default_rng(5)
    count = 400
    floats = rng.normal(0, 1e4, count)
    floats[::7] = np.round(floats[::7])  # integral: orjson writes 12.0
    floats[1::11] = np.nan
    floats[2::13] = np.inf
    floats[3] = -0.0
    floats[4], floats[5], floats[6] = 1e16, 1.5e-7, 123456789012345678.0
    texts = np.array(
        ["plain", 'quo"te', "back\\slash", "tab\there", "new\nline", "ünïcödé ✓", "", "\x01"],
        dtype=object,
    )[rng.integers(0, 8, count)]
    texts[::9] = None
    frame = pd.DataFrame(
        {
            "id": [f"a{i:04d}" for i in range(count)],
            "float": floats,
            "float32": floats.astype(np.float32),
            "int": rng.integers(-(10**12), 10**12, count),
            "bool": rng.random(count) > 0.5,
            "nullable_int": pd.array([None if i % 5 == 0 else i for i in range(count)], "Int64"),
            "nullable_bool": pd.array(
                [None if i % 3 == 0 else i % 2 == 0 for i in range(count)], "boolean"
            ),
            "arrow_text": pd.array(texts, dtype=TEXT),
            "object_text": pd.Series(texts, dtype=object),
            "mixed": pd.Series([1, "x", 2.5, None] * (count // 4), dtype=object),
            "when": pd.to_datetime(rng.integers(0, 2 * 10**9, count), unit="s", utc=True),
            "naive": pd.to_datetime(rng.integers(0, 2 * 10**9, count), unit="s"),
            "category": pd.Categorical(["A", "B", None, "A"] * (count // 4)),
        }
    )
    frame.loc[frame.index[::17], "when"] = pd.NaT
    frame["string"] = pd.Series(texts, dtype="string[pyarrow]")  # Arrow text, not large
    for rows in (frame, frame.iloc[37:251]):  # a slice: Arrow arrays at an offset
        for name in rows.columns:
            expected = [orjson.dumps(value).decode() for value in column_values(rows[name])]
            assert json_literals(rows[name]).to_pylist() == expected, name
