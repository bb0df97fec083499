"""The per-record tables of the state in compressed parts (`sync.state.parts`): merges keep
exactly what a plain key-value table would, whichever parts they touch, on SQLite and on
PostgreSQL; a state from before the parts is read and folded into them; the rows a run
records batch by batch are folded when it closes."""

from __future__ import annotations

import itertools
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from icp_engine.sync.state import parts
from icp_engine.sync.state.parts import LAST_WRITTEN, SCORES, KeyRange, Layout, records_layout
from icp_engine.sync.state.records import Pending, ScoreRecord
from icp_engine.sync.state.store import StateStore

from tests.state_helpers import state_backend  # noqa: F401 (fixture `backend`)

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _rows(layout: Layout, items: dict[str, str]) -> pa.Table:
    return pa.table(
        {"record_id": list(items), "account_id": [None] * len(items), "data": list(items.values())},
        schema=layout.schema,
    )


def _stored(store: StateStore, layout: Layout) -> dict[str, str]:
    table = store.mirror.parts.read("sf", layout)
    ids = table.column("record_id").to_pylist()
    assert ids == sorted(ids)  # parts in key order, each sorted
    return dict(zip(ids, table.column("data").to_pylist(), strict=True))


def _catalog(store: StateStore, layout: Layout) -> list[tuple[str, str, int]]:
    with store._transaction(write=False) as db:
        found = store.mirror.parts._catalog(db, "sf", layout)
    return [(part.first, part.last, part.rows) for part in found]


def test_merges_and_deletes_keep_what_a_key_value_table_would(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts, "PART_ROWS", 7)  # many small parts: every path is taken
    layout = records_layout("account")
    expected: dict[str, str] = {}
    rng = random.Random(4)
    with StateStore(tmp_path) as store:
        for step in range(40):
            keys = [f"a{rng.randrange(120):03d}" for _ in range(rng.randrange(1, 30))]
            if step % 3 == 2:
                store.mirror.parts.merge("sf", layout, drop=keys)
                for key in keys:
                    expected.pop(key, None)
            elif step % 5 == 4:  # after every stored key (a streamed run's next slice)
                after = {f"b{step:02d}{i}": f"new@{step}" for i in range(rng.randrange(1, 12))}
                store.mirror.parts.merge("sf", layout, _rows(layout, after), drop=keys[:3])
                for key in keys[:3]:
                    expected.pop(key, None)
                expected.update(after)
            else:
                batch = {key: f"{key}@{step}:{index}" for index, key in enumerate(keys)}
                store.mirror.parts.merge("sf", layout, _rows(layout, batch))
                expected.update(batch)  # a key given twice in one merge: the last one
            assert _stored(store, layout) == dict(sorted(expected.items()))
            catalog = _catalog(store, layout)
            assert all(rows <= 2 * 7 + 1 for _, _, rows in catalog)
            ranges = [(first, last) for first, last, _ in catalog]
            assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
        some = [*sorted(rng.sample(sorted(expected), 5)), "a999", "zzz"]
        read = store.mirror.parts.read("sf", layout, some).column("record_id").to_pylist()
        assert read == [key for key in some if key in expected]
    with StateStore(tmp_path) as store:  # reopened: the same
        assert _stored(store, layout) == dict(sorted(expected.items()))


def test_rows_merged_in_sorted_pieces_keep_what_a_key_value_table_would(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror's write: pieces in key order, into a new table (parts written as they
    fill) and over stored parts (each rewritten once), end as `merge` would leave them."""
    monkeypatch.setattr(parts, "PART_ROWS", 6)
    layout = records_layout("account")
    expected: dict[str, str] = {}
    rng = random.Random(11)
    with StateStore(tmp_path) as store:
        for step in range(12):
            keys = sorted({f"a{rng.randrange(90):03d}" for _ in range(rng.randrange(1, 40))})
            batch = {key: f"{key}@{step}" for key in keys}
            cuts = sorted(rng.sample(range(len(keys) + 1), min(3, len(keys) + 1)))
            pieces = [
                _rows(layout, dict(list(batch.items())[begin:end]))
                for begin, end in itertools.pairwise([0, *cuts, len(keys)])
            ]
            store.mirror.parts.merge_sorted("sf", layout, pieces)
            expected.update(batch)
            assert _stored(store, layout) == dict(sorted(expected.items()))
            catalog = _catalog(store, layout)
            assert all(rows <= 2 * 6 + 1 for _, _, rows in catalog)
            ranges = [(first, last) for first, last, _ in catalog]
            assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
        with pytest.raises(ValueError, match="not sorted"):
            store.mirror.parts.merge_sorted(
                "sf", layout, [_rows(layout, {"b2": "x"}), _rows(layout, {"b1": "y"})]
            )
        assert _stored(store, layout) == dict(sorted(expected.items()))  # nothing half-done


def test_the_mirror_keeps_the_last_row_of_an_id_given_twice(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"account_id": ["b", "a", "b", "c", "a"], "name": ["B1", "A1", "B2", "C", "A2"]}
    )
    with StateStore(tmp_path) as store:
        store.upsert_records("sf", "account", frame, "account_id")
        stored = store.load_records("sf", "account")
    assert stored.to_dict("list") == {"account_id": ["a", "b", "c"], "name": ["A2", "B2", "C"]}


def test_written_values_given_as_a_frame_keep_their_json_form(tmp_path: Path) -> None:
    """A confirming run records millions of written values as columns: each field's
    values keep their type (a field mixing 1 and 1.0 too), and a later row wins."""
    count = 12_000  # past the row journal: straight into the parts
    frame = pd.DataFrame(
        {
            "record_id": [f"a{i:05d}" for i in range(count)] * 3,
            "field": ["Score__c"] * count + ["Tier__c"] * count + ["Count__c"] * count,
            "value": [float(i % 100) + 0.5 for i in range(count)]
            + [None if i % 7 == 0 else "AB"[i % 2] for i in range(count)]
            + [1 if i % 2 else 1.0 for i in range(count)],
        },
        dtype=object,
    )
    with StateStore(tmp_path) as store:
        store.record_written("sf", 1, [("a00003", "Tier__c", "Z")], AT)  # older: replaced
        store.record_written("sf", 2, frame, AT)
        written = store.last_written("sf")
    assert len(written) == 3 * count
    assert written[("a00003", "Score__c")].value == 3.5
    assert written[("a00003", "Tier__c")].value == "B"
    assert written[("a00007", "Tier__c")].value is None
    assert [type(written[(f"a0000{i}", "Count__c")].value) for i in (1, 2)] == [int, float]


def test_the_pending_queue_drops_one_field_of_a_record_and_keeps_its_others(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue is keyed by (record, field): dropping a confirmed field leaves the record's
    other pending fields, in whichever part they are, like a plain key-value table."""
    monkeypatch.setattr(parts, "PART_ROWS", 5)
    fields = ("ICP_Score__c", "ICP_Tier__c", "ICP_Route__c")
    expected: dict[tuple[str, str], Pending] = {}
    rng = random.Random(9)
    with StateStore(tmp_path) as store:
        for step in range(30):
            keys = [
                (f"a{rng.randrange(40):03d}", rng.choice(fields))
                for _ in range(rng.randrange(1, 12))
            ]
            if step % 3 == 2:
                store.drop_pending("csv", keys)
                for key in keys:
                    expected.pop(key, None)
            else:
                items = [(rid, field, Pending(f"{rid}@{step}", step, AT)) for rid, field in keys]
                store.put_pending("csv", items)
                expected.update({(rid, field): pending for rid, field, pending in items})
            pending = store.pending("csv")
            assert {key: pending[key] for key in pending} == expected
            assert list(pending) == sorted(expected)  # read in key order
            after, upto = sorted(f"a{rng.randrange(40):03d}" for _ in range(2))
            for bounds in (KeyRange(None, upto), KeyRange(after, upto), KeyRange(after, None)):
                inside = store.pending("csv", bounds)  # a streamed run's slice
                assert list(inside) == [
                    key
                    for key in sorted(expected)
                    if (bounds.after is None or key[0] > bounds.after)
                    and (bounds.upto is None or key[0] <= bounds.upto)
                ]
    with StateStore(tmp_path) as store:  # reopened: the same
        assert set(store.pending("csv")) == set(expected)


def test_pending_values_keep_their_json_type(tmp_path: Path) -> None:
    """1, 1.0 and True are equal Python keys, but not one value to hand over."""
    items = [
        ("a1", "Count__c", Pending(1, 1, AT)),
        ("a2", "Count__c", Pending(1.0, 1, AT)),
        ("a3", "Flag__c", Pending(True, 1, AT)),
        ("a4", "Tier__c", Pending(None, 1, AT)),
        ("a5", "Score__c", Pending(float("nan"), 1, AT)),
    ]
    with StateStore(tmp_path) as store:
        store.put_pending("csv", items)
        values = {key: store.pending("csv")[key].value for key in store.pending("csv")}
    assert values == {
        ("a1", "Count__c"): 1,
        ("a2", "Count__c"): 1.0,
        ("a3", "Flag__c"): True,
        ("a4", "Tier__c"): None,
        ("a5", "Score__c"): None,
    }
    assert [type(values[("a1", "Count__c")]), type(values[("a2", "Count__c")])] == [int, float]


def test_scores_keep_the_first_score_of_a_version_wherever_it_is_kept(
    tmp_path: Path, backend: str
) -> None:
    many = [ScoreRecord(f"a{i:05d}", float(i % 100), "A", "v1", "fp1") for i in range(12_000)]
    with StateStore(tmp_path) as store:
        store.acquire_lock()
        store.record_scores("sf", 1, [ScoreRecord("a00007", 99.0, "A", "v1", "fp1")], AT)
        store.record_scores("sf", 2, many, AT)  # straight into the parts, rows folded first
        store.record_scores("sf", 3, [ScoreRecord("a00008", 1.0, "D", "v1", "fp1")], AT)
        scores = store.scores("sf").set_index("account_id")
        assert len(scores) == 12_000
        assert scores.loc["a00007", "score"] == 99.0  # the first, from run 1
        assert scores.loc["a00008", "score"] == 8.0  # run 3's later score is not kept
    with StateStore(tmp_path) as store:  # run 3's row stays a row (too few to fold)
        store.acquire_lock()
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 1
        store.record_scores(  # 5% of the parts: folded when the run closes
            "sf", 4, [ScoreRecord(f"b{i:04d}", 5.0, "C", "v1", "fp1") for i in range(700)], AT
        )
    with StateStore(tmp_path) as store:
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0
        folded = store.scores("sf").set_index("account_id")
        assert len(folded) == 12_700
        assert folded.loc["a00007", "score"] == 99.0
        assert folded.loc["a00008", "score"] == 8.0
        assert folded.loc[scores.index, "run_id"].tolist() == scores["run_id"].tolist()


def test_values_written_batch_by_batch_are_folded_once_worth_it_when_the_run_closes(
    tmp_path: Path, backend: str
) -> None:
    with StateStore(tmp_path) as store:
        store.acquire_lock()
        store.record_written("sf", 1, [(f"a{i}", "ICP_Tier__c", "B") for i in range(20_000)], AT)
        store.record_batch("sf", 2, [("a1", "ICP_Tier__c", "A")], [], ["a1"], AT)
        found = store.last_written("sf", ["a1", "a2"])
        assert {key: written.value for key, written in found.items()} == {
            ("a1", "ICP_Tier__c"): "A",  # the batch's row, over the parts' older value
            ("a2", "ICP_Tier__c"): "B",
        }
        assert store.counts()["last_written"] == 20_001  # one row for a1 in each place
    with StateStore(tmp_path) as store:  # one row is not worth rewriting the parts for
        store.acquire_lock()
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM last_written").fetchone()[0] == 1
        assert store.last_written("sf", ["a1"])[("a1", "ICP_Tier__c")].value == "A"
        more = [(f"c{i}", "ICP_Tier__c", "C") for i in range(999)]  # with a1: 5% of the parts
        store.record_batch("sf", 3, more, [], [], AT)
    with StateStore(tmp_path) as store:
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM last_written").fetchone()[0] == 0
        assert store.counts()["last_written"] == 20_999
        assert store.last_written("sf", ["a1"])[("a1", "ICP_Tier__c")].value == "A"
        assert store.last_written("sf", ["a2"])[("a2", "ICP_Tier__c")].value == "B"
        store.forget_accounts("sf", ["a2"])
        assert store.last_written("sf", ["a2"]) == {}
    assert LAST_WRITTEN.unique == ("record_id", "field") and SCORES.keep == "old"


def test_a_state_from_before_the_parts_is_read_and_folded(tmp_path: Path) -> None:
    """Schema 2 kept the mirror, last-written values and scores as SQL rows."""
    frame = pd.DataFrame({"account_id": ["a1", "a2"], "name": ["One", "Two"]})
    with StateStore(tmp_path) as store:
        store.upsert_records("sf", "account", frame, "account_id")
        rows = store.mirror.parts.read("sf", records_layout("account"))
        store.record_batch("sf", 1, [("a1", "ICP_Tier__c", "A")], [], ["a1"], AT)
        store.record_scores("sf", 1, [ScoreRecord("a1", 90.0, "A", "v1", "fp")], AT)
    with sqlite3.connect(tmp_path / StateStore.FILE_NAME) as db:  # as schema 2 kept them
        db.executemany(
            "INSERT INTO records (crm, object, record_id, account_id, data) VALUES"
            " ('sf', 'account', ?, NULL, ?)",
            list(
                zip(
                    rows.column("record_id").to_pylist(),
                    rows.column("data").to_pylist(),
                    strict=True,
                )
            ),
        )
        db.execute("DROP TABLE parts")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.close()
    with StateStore(tmp_path) as store:
        assert store.load_records("sf", "account").to_dict("records") == [
            {"account_id": "a1", "name": "One"},
            {"account_id": "a2", "name": "Two"},
        ]
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0  # folded
        assert store.last_written("sf")[("a1", "ICP_Tier__c")].value == "A"
        assert store.scores("sf")["score"].tolist() == [90.0]


def test_a_pending_queue_kept_as_rows_is_folded_into_parts(tmp_path: Path) -> None:
    """Schema 3 kept the queue as SQL rows: opened by this engine, they move into parts,
    and an older engine then refuses the state instead of missing its queue."""
    with StateStore(tmp_path):
        pass
    with sqlite3.connect(tmp_path / StateStore.FILE_NAME) as db:  # as schema 3 kept them
        db.executemany(
            "INSERT INTO pending (crm, record_id, field, value, run_id, since) VALUES"
            " ('csv', ?, ?, ?, 2, '2026-12-01T09:30:00.000000+00:00')",
            [("a2", "ICP_Tier__c", '"B"'), ("a1", "ICP_Score__c", "81.5")],
        )
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.close()
    with StateStore(tmp_path) as store:
        assert dict(store.pending("csv")) == {
            ("a1", "ICP_Score__c"): Pending(81.5, 2, AT),
            ("a2", "ICP_Tier__c"): Pending("B", 2, AT),
        }
        with store._transaction(write=False) as db:
            assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0  # folded
        assert store.get_meta("schema_version") == "4"
        assert store.counts()["pending"] == 2


def test_rows_folded_into_parts_give_their_space_back_when_the_state_closes(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    with StateStore(tmp_path) as store:
        store.acquire_lock()
        for batch in range(10):  # written batch by batch: rows, until the run closes
            values = [
                (f"a{batch}-{i}", "ICP_Reasons__c", f"{rng.getrandbits(64):x}")
                for i in range(5_000)
            ]
            store.record_batch("sf", 1, values, [], [], AT)
    db = sqlite3.connect(tmp_path / StateStore.FILE_NAME)
    try:
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (rows,) = db.execute("SELECT COUNT(*) FROM last_written").fetchone()
    finally:
        db.close()
    assert rows == 0  # folded into the parts
    assert free == 0
    assert pages * 4096 < 2_000_000  # the parts (about 1 MB), not the rows (about 6 MB) too


@pytest.mark.parametrize("keep", ["new", "old"])
def test_a_few_rows_combined_into_a_part_land_where_sorting_would_put_them(
    monkeypatch: pytest.MonkeyPatch, keep: str
) -> None:
    """An incremental run's few changed records are sliced in among a stored part's rows
    (no sort of the part): the same table as sorting them all, clashes decided by `keep`,
    rows before, between and after the stored ones included."""
    layout = Layout("t", records_layout("account").schema, ("record_id",), keep=keep)  # type: ignore[arg-type]
    rng = random.Random(7)
    for trial in range(30):
        stored = sorted(rng.sample(range(10, 990), 400))
        new = sorted(rng.sample(range(1000), rng.randrange(0, 25)))
        old = _rows(layout, {f"k{n:03d}": f"old{n}" for n in stored})
        given = _rows(layout, {f"k{n:03d}": f"new{n}@{trial}" for n in new})
        sliced = parts._combine(old, given, layout)
        monkeypatch.setattr(parts, "_FEW_NEW", 10**9)  # the sorting path
        sorted_ = parts._combine(old, given, layout)
        monkeypatch.undo()
        assert sliced.equals(sorted_), trial
        wins = set(new) if keep == "new" else set(new) - set(stored)
        expected = {n: (f"new{n}@{trial}" if n in wins else f"old{n}") for n in {*stored, *new}}
        assert sliced.column("data").to_pylist() == [expected[n] for n in sorted(expected)]
