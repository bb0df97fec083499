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
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from connectors.base import RecordUpdate
from connectors.mapping import CURRENT_PREFIX, OutputField, WritePolicy
from sync.state import Written


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

    @property
    def records(self) -> int:
        return len({c.record_id for c in self.changes})


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


def same(a: Any, b: Any, spec: OutputField) -> bool:
    """Equal as the CRM field would store them: numbers at the field's scale."""
    if a is None or b is None:
        return a is None and b is None
    if spec.type == "number" and isinstance(a, float) and isinstance(b, float):
        a, b = round(a, spec.scale), round(b, spec.scale)
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=10.0 ** -(spec.scale + 6))
    return str(a) == str(b)


def _round(value: float, scale: int) -> float:
    return float(round(value, scale))


def plan_changes(
    desired: pd.DataFrame,
    current: pd.DataFrame,
    last_written: Mapping[tuple[str, str], Written],
    outputs: Mapping[str, OutputField],
) -> Plan:
    """Compare desired, current and last-written values for every account and output.

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
    observed_at = (
        current["modified_at"] if "modified_at" in current else pd.Series(None, index=current.index)
    )
    for key, spec in outputs.items():
        if key not in desired:
            continue
        column = CURRENT_PREFIX + key
        now_values = current[column] if column in current else pd.Series(None, index=current.index)
        for label, want, have, seen_at in zip(
            desired.index, desired[key], now_values, observed_at, strict=True
        ):
            record_id = str(label)
            last = last_written.get((record_id, spec.field))
            want_value = to_crm_value(want, spec)
            have_value = normalise_current(have, spec)
            if last is not None and _before(seen_at, last.written_at):
                have_value = last.value
            _decide(plan, record_id, key, spec, want_value, have_value, last)
    return plan


def _before(seen_at: Any, written_at: datetime) -> bool:
    if seen_at is None or seen_at is pd.NaT or (isinstance(seen_at, float) and math.isnan(seen_at)):
        return False
    return bool(pd.Timestamp(seen_at) < pd.Timestamp(written_at))


def _decide(
    plan: Plan,
    record_id: str,
    key: str,
    spec: OutputField,
    want: Any,
    have: Any,
    last: Written | None,
) -> None:
    if same(want, have, spec):
        plan.in_sync += 1
        return
    edited = last is not None and not same(have, last.value, spec)
    skip = None
    if spec.policy is WritePolicy.IF_EMPTY and have is not None:
        skip = SkipReason.NOT_EMPTY
    elif spec.policy is WritePolicy.IF_UNCHANGED:
        if last is None and have is not None:
            skip = SkipReason.PRESET
        elif edited:  # cleared by a person counts as an edit too
            skip = SkipReason.EDITED
    if skip is not None:
        plan.skips.append(
            Skip(record_id, key, spec.field, have, want, last.value if last else None, skip)
        )
        return
    reason = (
        ChangeReason.NEW
        if have is None
        else ChangeReason.OVERWRITES_EDIT
        if edited
        else ChangeReason.DIFFERS
    )
    plan.changes.append(FieldChange(record_id, key, spec.field, have, want, reason))
