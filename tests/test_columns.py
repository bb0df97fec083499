"""The columnar plan, hand-over queue and update file agree with the per-record versions
they replaced (issue 14): same updates, same queue, same bytes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from icp_engine.connectors.base import RecordUpdate
from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.mapping import OutputField
from icp_engine.connectors.updates import RecordUpdates
from icp_engine.sync.config import load_config
from icp_engine.sync.handover import confirmed, handed_rows, next_pending
from icp_engine.sync.plan import locate
from icp_engine.sync.state.records import PENDING_COLUMNS, Pending, PendingChanges

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = ["ICP_Score__c", "ICP_Tier__c", "ICP_Route__c"]
Key = tuple[str, str]


def test_record_updates_group_in_first_appearance_or_sorted_order() -> None:
    ids = ["b", "a", "b", "c", "a"]
    fields = ["F2", "F2", "F1", "F1", "F1"]
    values = [1.0, None, "x", 3.0, "y"]

    updates = RecordUpdates.group(ids, fields, values)
    assert list(updates) == [
        RecordUpdate("b", {"F2": 1.0, "F1": "x"}),
        RecordUpdate("a", {"F2": None, "F1": "y"}),
        RecordUpdate("c", {"F1": 3.0}),
    ]
    assert updates[1:] == list(updates)[1:] and updates[-1] == RecordUpdate("c", {"F1": 3.0})
    assert updates[::2] == [updates[0], updates[2]]
    assert len(updates) == 3 and updates == list(updates) and updates != list(updates)[:2]

    ordered = RecordUpdates.group(ids, fields, values, sort=True)
    assert [(u.record_id, list(u.values)) for u in ordered] == [
        ("a", ["F1", "F2"]),
        ("b", ["F1", "F2"]),
        ("c", ["F1"]),
    ]
    assert RecordUpdates.group([], [], []) == [] and len(RecordUpdates.empty()) == 0
    with pytest.raises(IndexError):
        updates[3]


def test_locate_finds_the_last_of_duplicates() -> None:
    haystack = np.array(["a", "b", "a", "c"], dtype=object)
    needles = np.array(["a", "c", "z", "b"], dtype=object)
    assert locate(haystack, needles).tolist() == [2, 3, -1, 1]
    assert locate(haystack[:0], needles).tolist() == [-1] * 4


TEXTS = ["=1+2", "-5 employees", "plain", 'say "hi"', "two\nlines", "é ü", "@x", "", " ",
         "a, b", "cr\rhere", "\ttab", "+", '"', "'=quoted already"]  # fmt: skip


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("kinds", ["mixed", "text"])
def test_update_file_from_columns_is_byte_identical(tmp_path: Path, safe: bool, kinds: str) -> None:
    """Columns of text only are made cells in Arrow, others value by value: either way
    the file is byte for byte what `csv.writer` writes row by row."""
    mapping = load_config("csv", None).mapping
    if not safe:
        mapping = mapping.model_copy(update={"settings": {"spreadsheet_safe": False}})
    fields = [o.field for o in mapping.outputs.values()]
    cells: list[Any] = [None, *TEXTS]
    if kinds == "mixed":
        cells += [72.0, 72.5, 3, True, -4]
    rng = random.Random(14)
    updates = []
    for i in range(300):
        record = rng.choice([f"001{i:05d}", f"=00{i}", f"+{i}"])
        chosen = rng.sample([*fields, "Not_An_Output__c"], rng.randint(1, len(fields)))
        updates.append(RecordUpdate(record, {f: rng.choice(cells) for f in chosen}))
    rows = [(u.record_id, f, v) for u in updates for f, v in u.values.items()]
    columns = RecordUpdates.group(*zip(*rows, strict=True))
    assert columns == updates

    (tmp_path / "rows").mkdir()
    (tmp_path / "columns").mkdir()
    CsvConnector(mapping, tmp_path / "rows").hand_over(updates, 1)
    CsvConnector(mapping, tmp_path / "columns").hand_over(columns, 1)
    expected = (tmp_path / "rows" / "icp_updates.csv").read_bytes()
    assert (tmp_path / "columns" / "icp_updates.csv").read_bytes() == expected
    assert expected.count(b"\n") > 300


# -- the queue, against the per-key version it replaced --------------------------------


def _reference_confirmed(
    pending: dict[Key, Pending], current: pd.DataFrame, outputs: dict[str, OutputField]
) -> set[Key]:
    from icp_engine.sync.plan import _convert, _same, normalise_current

    found = set()
    for key, spec in outputs.items():
        keys = [k for k in pending if k[1] == spec.field and k[0] in set(current.index)]
        if not keys or f"current_{key}" not in current:
            continue
        have = _convert(
            current.loc[[r for r, _ in keys], f"current_{key}"], normalise_current, spec
        )
        want = np.empty(len(keys), dtype=object)
        want[:] = [pending[k].value for k in keys]
        found |= {keys[i] for i in np.flatnonzero(_same(want, have, spec))}
    return found


def _reference_next(
    pending: dict[Key, Pending],
    seen: set[Key],
    decided: set[str],
    handed: dict[Key, Any],
    gone: set[str],
    run_id: int,
    now: datetime,
) -> tuple[dict[Key, Pending], set[Key], dict[Key, Pending]]:
    drop = {k for k in pending if k[0] in decided or k[0] in gone or k in seen}
    put: dict[Key, Pending] = {}
    for key, value in handed.items():
        if key[0] in gone:
            continue
        before = pending.get(key)
        put[key] = (
            before if before is not None and before.value == value else Pending(value, run_id, now)
        )
    drop -= set(put)
    after = {k: v for k, v in pending.items() if k not in drop}
    after.update(put)
    return {k: v for k, v in put.items() if pending.get(k) != v}, drop, after


def _frame(pending: dict[Key, Pending]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "record_id": [k[0] for k in pending],
            "field": [k[1] for k in pending],
            "value": [p.value for p in pending.values()],
            "since": [p.since for p in pending.values()],
        },
        dtype=object,
    )
    frame.insert(3, "run_id", np.array([p.run_id for p in pending.values()], dtype=np.int64))
    return frame


def _as_dict(frame: pd.DataFrame) -> dict[Key, Pending]:
    return dict(PendingChanges(frame[list(PENDING_COLUMNS)].reset_index(drop=True)).items())


@pytest.mark.parametrize("seed", range(25))
def test_queue_matches_the_per_key_version(seed: int) -> None:
    rng = random.Random(seed)
    records = [f"001{i:03d}" for i in range(rng.randint(0, 40))]
    choices: list[Any] = ["A", "B", None, 10.0, 20.0]
    pending = {
        (r, f): Pending(
            rng.choice(choices), rng.randint(1, 3), T0 + timedelta(days=rng.randint(0, 2))
        )
        for r in records
        for f in FIELDS
        if rng.random() < 0.5
    }
    outputs = {
        "score": OutputField(field="ICP_Score__c", type="number", scale=0),
        "tier": OutputField(field="ICP_Tier__c"),
        "route": OutputField(field="ICP_Route__c"),
    }
    shown = [r for r in records if rng.random() < 0.7]
    current = pd.DataFrame(
        {
            f"current_{k}": [rng.choice(choices) for _ in shown]
            for k in outputs
            if rng.random() < 0.9
        },
        index=pd.Index(shown, dtype=object),
    )
    frame = _frame(pending)

    seen = confirmed(frame, current, outputs)
    expected_seen = _reference_confirmed(pending, current, outputs)
    assert set(zip(seen["record_id"], seen["field"], strict=True)) == expected_seen

    decided = {r for r in records if rng.random() < 0.6}
    gone = {r for r in records if rng.random() < 0.1}
    handed = {(r, f): rng.choice(choices) for r in decided for f in FIELDS if rng.random() < 0.5}
    now = T0 + timedelta(days=9)
    queue = next_pending(
        frame,
        seen,
        sorted(decided),
        handed_rows([k[0] for k in handed], [k[1] for k in handed], list(handed.values())),
        sorted(gone),
        7,
        now,
    )
    put, drop, after = _reference_next(pending, expected_seen, decided, handed, gone, 7, now)
    assert _as_dict(queue.put) == put
    assert _as_dict(queue.pending) == after
    if queue.drop is None:
        assert drop == set(pending) and pending
    else:
        assert set(zip(queue.drop["record_id"], queue.drop["field"], strict=True)) == drop
    assert list(queue.updates()) == [
        RecordUpdate(
            record,
            {f: after[(record, f)].value for f in sorted(f for r, f in after if r == record)},
        )
        for record in sorted({r for r, _ in after})
    ]
