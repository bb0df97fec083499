"""Record updates held as columns: one row per (record, field), a record's rows together.

A whole-org run decides a million field values; a `RecordUpdate` (with its dict) is made
only when someone takes one out (`updates[i]`, a slice, iterating), so the writer builds
one batch at a time, and a connector that knows this class (the CSV update file) reads
the columns directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
from icp_engine.connectors.base import RecordUpdate


class RecordUpdates(Sequence[RecordUpdate]):
    """A sequence of `RecordUpdate`s stored as columns.

    Args:
        record_ids: one per record, in order.
        bounds: `len(record_ids) + 1` offsets: record i's rows are `bounds[i]:bounds[i + 1]`.
        fields: the CRM field of every row.
        values: the value of every row (None clears the field).
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, record_ids: np.ndarray, bounds: np.ndarray, fields: np.ndarray, values: np.ndarray
    ) -> None:
        self.record_ids = record_ids
        self.bounds = bounds
        self.fields = fields
        self.values = values

    @classmethod
    def empty(cls) -> RecordUpdates:
        nothing = np.empty(0, dtype=object)
        return cls(nothing, np.zeros(1, dtype=np.int64), nothing, nothing)

    @classmethod
    def group(
        cls, record_ids: Any, fields: Any, values: Any, *, sort: bool = False
    ) -> RecordUpdates:
        """Rows (record id, field, value) as one update per record.

        `sort=False`: records in order of first appearance, fields in the order given;
        `sort=True`: records by id, and a record's fields by name.
        """
        ids = np.asarray(record_ids, dtype=object)
        fields = np.asarray(fields, dtype=object)
        values = np.asarray(values, dtype=object)
        if not len(ids):
            return cls.empty()
        codes, uniques = pd.factorize(ids, sort=sort)
        if sort:
            field_codes = pd.factorize(fields, sort=True)[0]
            order = np.lexsort((field_codes, codes))
        else:
            order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(uniques))
        bounds = np.zeros(len(uniques) + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        return cls(np.asarray(uniques, dtype=object), bounds, fields[order], values[order])

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record position per row, field per row, value per row)."""
        counts = np.diff(self.bounds)
        return np.repeat(np.arange(len(self.record_ids)), counts), self.fields, self.values

    def __len__(self) -> int:
        return len(self.record_ids)

    def _one(self, index: int) -> RecordUpdate:
        start, end = int(self.bounds[index]), int(self.bounds[index + 1])
        return RecordUpdate(
            self.record_ids[index],
            dict(
                zip(self.fields[start:end].tolist(), self.values[start:end].tolist(), strict=True)
            ),
        )

    def _run(self, start: int, stop: int) -> list[RecordUpdate]:
        """Records `start:stop`, their rows taken out at once."""
        first = int(self.bounds[start])
        offsets = (self.bounds[start : stop + 1] - first).tolist()
        fields = self.fields[first : int(self.bounds[stop])].tolist()
        values = self.values[first : int(self.bounds[stop])].tolist()
        return [
            RecordUpdate(record_id, dict(zip(fields[a:b], values[a:b], strict=True)))
            for record_id, a, b in zip(
                self.record_ids[start:stop].tolist(), offsets[:-1], offsets[1:], strict=True
            )
        ]

    @overload
    def __getitem__(self, index: int) -> RecordUpdate: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordUpdate]: ...

    def __getitem__(self, index: int | slice) -> RecordUpdate | list[RecordUpdate]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self._one(i) for i in range(start, stop, step)]
            return self._run(start, max(start, stop))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._one(index)

    def __iter__(self) -> Iterator[RecordUpdate]:
        for start in range(0, len(self), 10_000):
            yield from self._run(start, min(len(self), start + 10_000))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordUpdates | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"RecordUpdates({list(self)!r})"
