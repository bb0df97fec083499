"""Handed-over writes as a queue: what is still pending after a run. Pure: no I/O.

A connector that `hands_over` its writes (an update file for Data Loader) cannot say
whether they landed. Every change the engine decided therefore stays pending, keyed by
(record, CRM field), until a later pull shows the CRM holding that value (`confirmed`),
or a newer decision replaces it (`next_pending`). Each run hands over every pending
change again, so loading only the latest update file is always enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.connectors.mapping import CURRENT_PREFIX, OutputField
from icp_engine.connectors.updates import RecordUpdates
from icp_engine.sync.plan import _convert, _same, locate, normalise_current, positions_by
from icp_engine.sync.state.records import PENDING_COLUMNS

KEY = ["record_id", "field"]
"""A pending change's key: (record id, CRM field)."""


def confirmed(
    pending: pd.DataFrame,
    current: pd.DataFrame,
    outputs: Mapping[str, OutputField],
) -> pd.DataFrame:
    """The rows of `pending` (`PENDING_COLUMNS`) that `current` (indexed by account id,
    `current_<key>` columns: the CRM as last pulled) shows as made."""
    by_field = {spec.field: (key, spec) for key, spec in outputs.items()}
    found = np.zeros(len(pending), dtype=bool)
    if not len(pending) or not len(current):
        return pending[found]
    records = pending["record_id"].to_numpy(dtype=object)
    values = pending["value"].to_numpy(dtype=object)
    account = locate(current.index.to_numpy(dtype=object), records)
    for field_name, rows in positions_by(pending["field"].to_numpy(dtype=object)).items():
        if field_name not in by_field:
            continue
        key, spec = by_field[field_name]
        column = CURRENT_PREFIX + key
        if column not in current:
            continue
        at = account[rows]
        shown, at = rows[at >= 0], at[at >= 0]
        have = _convert(current[column].iloc[at], normalise_current, spec)
        found[shown[_same(values[shown], have, spec)]] = True
    return pending[found]


def _locate(table: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """For each row of `keys`, the position of the row of `table` with the same
    (record id, field), or -1; (record id, field) is unique in `table`."""
    where = np.full(len(keys), -1, dtype=np.int64)
    if not len(table) or not len(keys):
        return where
    table_ids = table["record_id"].to_numpy(dtype=object)
    key_ids = keys["record_id"].to_numpy(dtype=object)
    in_table = positions_by(table["field"].to_numpy(dtype=object))
    for field_name, rows in positions_by(keys["field"].to_numpy(dtype=object)).items():
        if field_name not in in_table:
            continue
        candidates = in_table[field_name]
        at = locate(table_ids[candidates], key_ids[rows])
        where[rows[at >= 0]] = candidates[at[at >= 0]]
    return where


@dataclass
class Queue:
    """What a run changes in the pending queue (frames of `PENDING_COLUMNS`)."""

    put: pd.DataFrame
    """Added or replaced (a value kept from an earlier run keeps its `since`)."""
    drop: pd.DataFrame | None
    """Removed (`record_id`, `field`): confirmed, replaced by a newer decision, or of a
    deleted account; None: every change pending before the run."""
    pending: pd.DataFrame
    """Everything pending after the run: what its update file holds."""

    def updates(self) -> RecordUpdates:
        """The pending changes as one update per record, ordered by record id (and a
        record's fields by name)."""
        return RecordUpdates.group(
            self.pending["record_id"].to_numpy(dtype=object),
            self.pending["field"].to_numpy(dtype=object),
            self.pending["value"].to_numpy(dtype=object),
            sort=True,
        )


def _ids(values: Iterable[str]) -> pd.Index:
    if isinstance(values, pd.Index | np.ndarray | pd.Series):
        return pd.Index(np.asarray(values, dtype=object), dtype=object)
    return pd.Index(np.fromiter(values, dtype=object), dtype=object)


def next_pending(
    pending: pd.DataFrame,
    seen: pd.DataFrame,
    decided: Iterable[str],
    handed: pd.DataFrame,
    gone: Iterable[str],
    run_id: int,
    now: datetime,
) -> Queue:
    """The queue after a run.

    Args:
        pending: the queue before the run (`PENDING_COLUMNS`).
        seen: the rows of `pending` the CRM now shows (`confirmed`).
        decided: records whose values this run decided afresh: their earlier pending
            changes are replaced by what this run handed over for them.
        handed: what this run handed over: `record_id`, `field`, `value`.
        gone: records deleted (their changes can never land).
        run_id: this run.
        now: when this run decided.
    """
    gone_ids = _ids(gone)
    records = pending["record_id"]
    drop = np.array(records.isin(_ids(decided)), dtype=bool)  # a copy: written below
    drop |= np.asarray(records.isin(gone_ids), dtype=bool)
    drop |= pending.index.isin(seen.index)
    handed = handed[~handed["record_id"].isin(gone_ids).to_numpy(dtype=bool)]
    before = _locate(pending, handed)
    known = before >= 0
    values = handed["value"].to_numpy(dtype=object)
    earlier = pending["value"].to_numpy(dtype=object)
    same = known.copy()
    same[known] = np.fromiter(
        (bool(a == b) for a, b in zip(earlier[before[known]], values[known], strict=True)),
        dtype=bool,
        count=int(known.sum()),
    )
    run_ids = np.full(len(handed), run_id, dtype=np.int64)
    run_ids[same] = pending["run_id"].to_numpy(dtype=np.int64)[before[same]]
    since = np.full(len(handed), None, dtype=object)
    since.fill(now)
    since[same] = pending["since"].to_numpy(dtype=object)[before[same]]
    put = pd.DataFrame(
        {
            "record_id": handed["record_id"].to_numpy(dtype=object),
            "field": handed["field"].to_numpy(dtype=object),
            "value": values,
            "since": since,
        },
        dtype=object,
    )
    put.insert(3, "run_id", run_ids)
    drop[before[known]] = False  # handed again: replaced (or kept), not dropped
    replaced = np.zeros(len(pending), dtype=bool)
    replaced[before[known]] = True
    if len(pending):
        kept = pending[~drop & ~replaced]
        after = pd.concat([kept, put], ignore_index=True)[list(PENDING_COLUMNS)]
    else:  # a first run: no copy of a million rows
        after = put
    changed = put[~same].reset_index(drop=True) if same.any() else put
    everything = len(pending) > 0 and bool(drop.all())
    return Queue(changed, None if everything else pending.loc[drop, KEY], after)


def handed_rows(record_ids: Any, fields: Any, values: Any) -> pd.DataFrame:
    """What a run handed over, as `next_pending` takes it."""
    return pd.DataFrame({"record_id": record_ids, "field": fields, "value": values}, dtype=object)
