"""The three-way diff: what to write, what to leave alone, and why. Pure: no I/O.

For every account and output field the plan weighs three values:

- desired: what the engine computed now (in the CRM's terms: picklist value mapped,
  number rounded to the field's scale, text cut to the field's length);
- current: what the CRM holds. An observation older than the engine's last write
  (a CSV export made before the update file was loaded) cannot show that write, so
  the last-written value stands in for it;
- last written: what the engine wrote before (from state).

The field's policy decides: `overwrite` writes whenever desired differs from current;
`if_unchanged` leaves a value someone changed since the engine last wrote it (or that
was there before the engine ever wrote) and reports it; `if_empty` only fills blanks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.connectors.base import RecordUpdate
from icp_engine.connectors.mapping import CURRENT_PREFIX, OutputField, WritePolicy
from icp_engine.sync.state.records import Written


class ChangeReason(StrEnum):
    NEW = "empty in the CRM"
    DIFFERS = "differs"
    OVERWRITES_EDIT = "overwrites an edit made in the CRM"


class SkipReason(StrEnum):
    EDITED = "edited in the CRM since the engine last wrote it"
    PRESET = "set in the CRM before the engine first wrote it"
    NOT_EMPTY = "not empty (policy if_empty)"


@dataclass(frozen=True)
class FieldChange:
    record_id: str
    key: str
    field: str
    current: Any
    desired: Any
    reason: ChangeReason


@dataclass(frozen=True)
class Skip:
    record_id: str
    key: str
    field: str
    current: Any
    desired: Any
    last_written: Any
    reason: SkipReason


@dataclass
class Plan:
    """Typed changes and skips; `in_sync` counts fields already as desired."""

    changes: list[FieldChange] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    in_sync: int = 0

    def record_updates(self) -> list[RecordUpdate]:
        """One update per record, holding only the fields that change."""
        grouped: dict[str, dict[str, Any]] = {}
        for change in self.changes:
            grouped.setdefault(change.record_id, {})[change.field] = change.desired
        return [RecordUpdate(record_id, values) for record_id, values in grouped.items()]


def to_crm_value(value: Any, spec: OutputField) -> Any:
    """An engine value as the CRM field will store it (None for empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if spec.type == "number":
        return _round(float(value), spec.scale)
    text = spec.values.get(str(value), str(value))
    if spec.length is not None:
        text = text[: spec.length]
    return text if text.strip() else None


def normalise_current(value: Any, spec: OutputField) -> Any:
    """A value read from the CRM, with empty strings and NaN read as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if spec.type == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _round(value: float, scale: int) -> float:
    return float(round(value, scale))


def _convert(values: pd.Series, convert: Any, spec: OutputField) -> np.ndarray:
    """`convert(value, spec)` once per distinct value; nulls become None."""
    objects = values.astype(object)
    out = np.full(len(objects), None, dtype=object)
    present = objects.notna().to_numpy()
    if present.any():
        table = {v: convert(v, spec) for v in pd.unique(objects[present])}
        out[present] = objects[present].map(table).to_numpy()
    return out


def _null(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def _same(a: np.ndarray, b: np.ndarray, spec: OutputField) -> np.ndarray:
    """Equal as the CRM field would store them: numbers at the field's scale, else as text.

    Both empty is equal; one empty is not.
    """
    a_null, b_null = _null(a), _null(b)
    equal = a_null & b_null
    both = ~a_null & ~b_null
    text = both
    if spec.type == "number":
        a_num = pd.to_numeric(pd.Series(a, dtype=object), errors="coerce").to_numpy(float)
        b_num = pd.to_numeric(pd.Series(b, dtype=object), errors="coerce").to_numpy(float)
        numeric = both & ~np.isnan(a_num) & ~np.isnan(b_num)
        equal[numeric] = np.isclose(
            np.round(a_num[numeric], spec.scale),
            np.round(b_num[numeric], spec.scale),
            rtol=1e-12,
            atol=10.0 ** -(spec.scale + 6),
        )
        text = both & ~numeric
    if text.any():
        equal[text] = _text(a[text]) == _text(b[text])
    return equal


def plan_changes(
    desired: pd.DataFrame,
    current: pd.DataFrame,
    last_written: Mapping[tuple[str, str], Written],
    outputs: Mapping[str, OutputField],
) -> Plan:
    """Compare desired, current and last-written values for every account and output.

    Comparisons run column at a time; Python only touches the fields that differ.

    Args:
        desired: indexed by account id; a column per output key (score, tier...).
        current: indexed by account id; `current_<key>` columns and `modified_at` (when the
            CRM values were observed). Accounts missing here count as empty.
        last_written: (account id, CRM field) -> what the engine last wrote, and when.
        outputs: the output fields (CRM field, type, policy) by key.

    Returns:
        The plan: changes to write, skips with reasons, and the count already in sync.
    """
    plan = Plan()
    current = current.reindex(desired.index)
    ids = [str(label) for label in desired.index]
    label_array = np.array(ids, dtype=object)
    seen_at = pd.to_datetime(
        current["modified_at"]
        if "modified_at" in current
        else pd.Series(pd.NaT, index=current.index),
        utc=True,
    )
    for key, spec in outputs.items():
        if key not in desired:
            continue
        column = CURRENT_PREFIX + key
        observed = current[column] if column in current else pd.Series(None, index=current.index)
        want = _convert(desired[key], to_crm_value, spec)
        have = _convert(observed, normalise_current, spec)
        lasts = [last_written.get((record_id, spec.field)) for record_id in ids]
        has_last = np.array([last is not None for last in lasts], dtype=bool)
        last_value = np.empty(len(ids), dtype=object)
        last_value[:] = [last.value if last else None for last in lasts]
        written_at = pd.to_datetime(
            pd.Series([last.written_at if last else None for last in lasts]), utc=True
        ).to_numpy()
        stale = has_last & np.asarray(seen_at < written_at, dtype=bool)  # NaT is never before
        have = np.where(stale, last_value, have)

        in_sync = _same(want, have, spec)
        plan.in_sync += int(in_sync.sum())
        have_set = ~_null(have)
        edited = has_last & ~_same(have, last_value, spec)
        skip = np.full(len(ids), None, dtype=object)
        if spec.policy is WritePolicy.IF_EMPTY:
            skip[have_set] = SkipReason.NOT_EMPTY
        elif spec.policy is WritePolicy.IF_UNCHANGED:
            skip[edited] = SkipReason.EDITED  # a person clearing it counts as an edit too
            skip[~has_last & have_set] = SkipReason.PRESET
        differ = ~in_sync
        skipped = differ & skip.astype(bool)  # a SkipReason is never an empty string
        for i in np.flatnonzero(skipped):
            plan.skips.append(
                Skip(ids[i], key, spec.field, have[i], want[i], last_value[i], skip[i])
            )
        change = np.flatnonzero(differ & ~skipped)  # one object per change, no branching
        reasons = np.empty(len(ids), dtype=object)
        reasons.fill(ChangeReason.DIFFERS)  # (np.full would store a plain str)
        reasons[edited] = ChangeReason.OVERWRITES_EDIT
        reasons[~have_set] = ChangeReason.NEW
        plan.changes.extend(
            map(
                FieldChange,
                label_array[change].tolist(),
                repeat(key, len(change)),
                repeat(spec.field, len(change)),
                have[change].tolist(),
                want[change].tolist(),
                reasons[change].tolist(),
            )
        )
    return plan
