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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.connectors.mapping import CURRENT_PREFIX, OutputField, WritePolicy
from icp_engine.connectors.updates import RecordUpdates
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


CHANGE_COLUMNS = ("record_id", "key", "field", "current", "desired", "reason")
"""The columns of `Plan.change_frame`, in `FieldChange`'s order."""
SKIP_COLUMNS = ("record_id", "key", "field", "current", "desired", "last_written", "reason")
"""The columns of `Plan.skip_frame`, in `Skip`'s order."""
WRITTEN_COLUMNS = ("record_id", "field", "value", "written_at")
"""The columns of a last-written frame (`written_frame`)."""


def _columns(
    names: tuple[str, ...], parts: list[dict[str, np.ndarray]] | None = None
) -> pd.DataFrame:
    """A frame of object columns `names` from per-output parts (empty without parts)."""
    if not parts:
        return pd.DataFrame({name: np.empty(0, dtype=object) for name in names}, dtype=object)
    return pd.DataFrame(  # object columns as they are (pandas would infer text columns)
        {name: np.concatenate([part[name] for part in parts]) for name in names}, dtype=object
    )


@dataclass(eq=False)
class Plan:
    """Changes and skips as columns; `in_sync` counts fields already as desired.

    `change_frame` has `CHANGE_COLUMNS`, `skip_frame` `SKIP_COLUMNS`, one row per field,
    ordered by output then account. `changes` and `skips` are the same rows as typed
    objects, made when first read (a whole-org run plans a million fields).
    """

    change_frame: pd.DataFrame = field(default_factory=lambda: _columns(CHANGE_COLUMNS))
    skip_frame: pd.DataFrame = field(default_factory=lambda: _columns(SKIP_COLUMNS))
    in_sync: int = 0

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (self.changes, self.skips, self.in_sync) == (
            other.changes,
            other.skips,
            other.in_sync,
        )

    @cached_property
    def changes(self) -> list[FieldChange]:
        frame = self.change_frame
        return list(map(FieldChange, *(frame[name].tolist() for name in CHANGE_COLUMNS)))

    @cached_property
    def skips(self) -> list[Skip]:
        frame = self.skip_frame
        return list(map(Skip, *(frame[name].tolist() for name in SKIP_COLUMNS)))

    def record_updates(self) -> RecordUpdates:
        """One update per record, holding only the fields that change (records in the
        order they first change, fields in output order)."""
        frame = self.change_frame
        return RecordUpdates.group(
            frame["record_id"].to_numpy(), frame["field"].to_numpy(), frame["desired"].to_numpy()
        )


def kept_by_people(plan: Plan, outputs: Mapping[str, OutputField]) -> set[str]:
    """Accounts whose score or tier a person set (left alone): their scores are not the
    engine's, so they are not recorded as its predictions."""
    scored_fields = {spec.field for key, spec in outputs.items() if key in ("score", "tier")}
    skips = plan.skip_frame
    return set(skips["record_id"][skips["field"].isin(scored_fields)].tolist())


def written_frame(last_written: Mapping[tuple[str, str], Written]) -> pd.DataFrame:
    """`StateStore.last_written`'s answer as a frame of `WRITTEN_COLUMNS`."""
    count = len(last_written)
    columns: dict[str, Any] = {}
    for name, values in (
        ("record_id", (record_id for record_id, _ in last_written)),
        ("field", (name for _, name in last_written)),
        ("value", (written.value for written in last_written.values())),
    ):
        columns[name] = np.fromiter(values, dtype=object, count=count)
    stamps = [written.written_at for written in last_written.values()]
    columns["written_at"] = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True)
    return pd.DataFrame(columns)


def _instants(values: pd.Series) -> np.ndarray:
    """Moments as UTC datetime64[ns] (NaT for none), comparable without Python objects."""
    moments = pd.to_datetime(values, utc=True)
    return np.asarray(moments.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"))


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
    objects = values.to_numpy(dtype=object)
    out = np.full(len(objects), None, dtype=object)
    present = ~np.asarray(pd.isna(objects), dtype=bool)
    if present.any():
        codes, distinct = pd.factorize(objects[present])
        table = np.fromiter((convert(v, spec) for v in distinct), dtype=object, count=len(distinct))
        out[present] = table[codes]
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
    last_written: Mapping[tuple[str, str], Written] | pd.DataFrame,
    outputs: Mapping[str, OutputField],
) -> Plan:
    """Compare desired, current and last-written values for every account and output.

    Comparisons run column at a time, and the result stays in columns: no Python object
    per field (`Plan.changes` makes them when read).

    Args:
        desired: indexed by account id; a column per output key (score, tier...).
        current: indexed by account id; `current_<key>` columns and `modified_at` (when the
            CRM values were observed). Accounts missing here count as empty.
        last_written: (account id, CRM field) -> what the engine last wrote, and when; or
            the same as a frame of `WRITTEN_COLUMNS` (`written_frame`), where a later row
            for the same (account, field) wins.
        outputs: the output fields (CRM field, type, policy) by key.

    Returns:
        The plan: changes to write, skips with reasons, and the count already in sync.
    """
    last = last_written if isinstance(last_written, pd.DataFrame) else written_frame(last_written)
    current = current.reindex(desired.index)
    ids = desired.index.astype(str).to_numpy(dtype=object)  # (iterating Arrow text is slow)
    seen_at = _instants(
        current["modified_at"]
        if "modified_at" in current
        else pd.Series(pd.NaT, index=current.index)
    )
    last_ids = last["record_id"].to_numpy(dtype=object)
    last_values = last["value"].to_numpy(dtype=object)
    last_at = _instants(last["written_at"]) if len(last) else np.empty(0, "datetime64[ns]")
    by_field = positions_by(last["field"].to_numpy(dtype=object))
    account = locate(ids, last_ids)  # of every last-written row: its position in `ids`
    changes: list[dict[str, np.ndarray]] = []
    skips: list[dict[str, np.ndarray]] = []
    in_sync_count = 0
    for key, spec in outputs.items():
        if key not in desired:
            continue
        column = CURRENT_PREFIX + key
        observed = current[column] if column in current else pd.Series(None, index=current.index)
        want = _convert(desired[key], to_crm_value, spec)
        have = _convert(observed, normalise_current, spec)
        has_last = np.zeros(len(ids), dtype=bool)
        last_value = np.full(len(ids), None, dtype=object)
        written_at = np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[ns]")
        rows = by_field.get(spec.field)
        if rows is not None:
            latest = np.full(len(ids), -1, dtype=np.int64)
            mine = account[rows] >= 0
            np.maximum.at(latest, account[rows][mine], rows[mine])  # a later row wins
            has_last = latest >= 0
            found = latest[has_last]
            last_value[has_last] = last_values[found]
            written_at[has_last] = last_at[found]
        stale = has_last & (seen_at < written_at)  # NaT is never before
        have = np.where(stale, last_value, have)

        in_sync = _same(want, have, spec)
        in_sync_count += int(in_sync.sum())
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
        if skipped.any():
            skips.append(
                _part(
                    skipped,
                    record_id=ids,
                    key=key,
                    field=spec.field,
                    current=have,
                    desired=want,
                    last_written=last_value,
                    reason=skip,
                )
            )
        change = differ & ~skipped
        if change.any():
            reasons = np.empty(len(ids), dtype=object)
            reasons.fill(ChangeReason.DIFFERS)  # (np.full would store a plain str)
            reasons[edited] = ChangeReason.OVERWRITES_EDIT
            reasons[~have_set] = ChangeReason.NEW
            changes.append(
                _part(
                    change,
                    record_id=ids,
                    key=key,
                    field=spec.field,
                    current=have,
                    desired=want,
                    reason=reasons,
                )
            )
    return Plan(_columns(CHANGE_COLUMNS, changes), _columns(SKIP_COLUMNS, skips), in_sync_count)


def positions_by(values: np.ndarray) -> dict[Any, np.ndarray]:
    """Row positions per distinct value (ascending within each)."""
    codes, uniques = pd.factorize(values)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return {value: order[bounds[i] : bounds[i + 1]] for i, value in enumerate(uniques.tolist())}


def locate(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """For each of `needles`, its position in `haystack` (the last, if there twice), or -1.

    One hash pass over both (pandas' `get_indexer` on text is several times slower)."""
    if not len(haystack) or not len(needles):
        return np.full(len(needles), -1, dtype=np.int64)
    codes = pd.factorize(np.concatenate([haystack, needles]))[0]
    where = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(where, codes[: len(haystack)], np.arange(len(haystack)))  # the last wins
    return where[codes[len(haystack) :]]


def _part(mask: np.ndarray, **columns: Any) -> dict[str, np.ndarray]:
    """The rows of `mask` of per-account arrays; a plain value fills its column."""
    count = int(mask.sum())
    part: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray):
            part[name] = values[mask]
        else:
            part[name] = np.full(count, None, dtype=object)
            part[name].fill(values)
    return part


SKIPS_SHOWN = 20
"""Fields left alone that a run logs one by one (the rest are counted)."""


def log_skips(plan: Plan, tell: Callable[..., None], room: int) -> int:
    """Tell the first `room` fields the plan leaves alone, and why; how many were told."""
    shown = plan.skip_frame.head(max(room, 0))
    for record_id, name, reason, current, desired in zip(
        shown["record_id"],
        shown["field"],
        shown["reason"],
        shown["current"],
        shown["desired"],
        strict=True,
    ):
        tell(
            "left %s.%s alone (%s): CRM has %r, engine wants %r",
            record_id,
            name,
            reason.value,
            current,
            desired,
        )
    return len(shown)
