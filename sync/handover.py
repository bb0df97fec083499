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
from icp_engine.connectors.base import RecordUpdate
from icp_engine.connectors.mapping import CURRENT_PREFIX, OutputField
from icp_engine.sync.plan import _convert, _same, normalise_current
from icp_engine.sync.state.records import Pending

Key = tuple[str, str]
"""(record id, CRM field)."""


def confirmed(
    pending: Mapping[Key, Pending],
    current: pd.DataFrame,
    outputs: Mapping[str, OutputField],
) -> dict[Key, Pending]:
    """The pending changes that `current` (indexed by account id, `current_<key>` columns:
    the CRM as last pulled) shows as made."""
    by_field = {spec.field: (key, spec) for key, spec in outputs.items()}
    found: dict[Key, Pending] = {}
    grouped: dict[str, list[Key]] = {}
    known = set(current.index)
    for record_field in pending:
        if record_field[1] in by_field and record_field[0] in known:
            grouped.setdefault(record_field[1], []).append(record_field)
    for field_name, keys in grouped.items():
        key, spec = by_field[field_name]
        column = CURRENT_PREFIX + key
        if column not in current:
            continue
        ids = [record for record, _ in keys]
        have = _convert(current.loc[ids, column], normalise_current, spec)
        want = np.empty(len(keys), dtype=object)
        want[:] = [pending[k].value for k in keys]
        for index in np.flatnonzero(_same(want, have, spec)):
            found[keys[index]] = pending[keys[index]]
    return found


@dataclass
class Queue:
    """What a run changes in the pending queue."""

    put: dict[Key, Pending]
    """Added or replaced (a value kept from an earlier run keeps its `since`)."""
    drop: set[Key]
    """Removed: confirmed, replaced by a newer decision, or of a deleted account."""
    pending: dict[Key, Pending]
    """Everything pending after the run: what its update file holds."""

    def updates(self) -> list[RecordUpdate]:
        """The pending changes as one update per record, ordered by record id."""
        grouped: dict[str, dict[str, Any]] = {}
        for (record, field), change in sorted(self.pending.items()):
            grouped.setdefault(record, {})[field] = change.value
        return [RecordUpdate(record, values) for record, values in grouped.items()]


def next_pending(
    pending: Mapping[Key, Pending],
    seen: Iterable[Key],
    decided: Iterable[str],
    handed: Mapping[Key, Any],
    gone: Iterable[str],
    run_id: int,
    now: datetime,
) -> Queue:
    """The queue after a run.

    Args:
        pending: the queue before the run.
        seen: pending changes the CRM now shows (`confirmed`).
        decided: records whose values this run decided afresh: their earlier pending
            changes are replaced by what this run handed over for them.
        handed: (record, field) -> value this run handed over.
        gone: records deleted (their changes can never land).
        run_id: this run.
        now: when this run decided.
    """
    decided_ids, gone_ids, seen_keys = set(decided), set(gone), set(seen)
    drop = {
        key for key in pending if key[0] in decided_ids or key[0] in gone_ids or key in seen_keys
    }
    put: dict[Key, Pending] = {}
    for key, value in handed.items():
        if key[0] in gone_ids:
            continue
        before = pending.get(key)
        if before is not None and before.value == value:
            put[key] = before
        else:
            put[key] = Pending(value, run_id, now)
    drop -= set(put)
    after = {key: change for key, change in pending.items() if key not in drop}
    after.update(put)
    unchanged = {key for key, change in put.items() if pending.get(key) == change}
    return Queue({k: v for k, v in put.items() if k not in unchanged}, drop, after)
