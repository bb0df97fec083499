"""A set of record Ids held as Arrow text: what a whole-file read saw, for deletions.

A CSV pull remembers every Id in the file, so that the records the state knows and the
file lacks can be told deleted. At a million accounts and 1.6 million opportunities a
Python set of them held about 270 MB for the whole run (a str object and a hash slot per
Id); as Arrow text they are about 60 MB, and the one question asked of them (which known
Ids are missing) is a single hash lookup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc


def distinct_count(ids: pa.Array | pa.ChunkedArray) -> int:
    """How many different Ids. Ids in ascending order (an export in Id order, as
    Salesforce's usually are) show they are all different by comparing neighbours;
    otherwise a hash of every Id tells. No copy of the Ids is made."""
    chunks = [c for c in (ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]) if len(c)]
    count = sum(len(chunk) for chunk in chunks)
    ascending = all(
        chunk.null_count == 0 and pc.all(pc.greater(chunk[1:], chunk[:-1])).as_py() is not False
        for chunk in chunks
    ) and all(before[-1].as_py() < after[0].as_py() for before, after in pairwise(chunks))
    if ascending:
        return count
    return int(pc.count_distinct(ids).as_py())


class Ids(Collection[str]):
    """Distinct Ids as Arrow text, read-only (the records the state knows): a million of
    them without a Python string each, until someone iterates them."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        self.array: pa.Array = ids.cast(pa.string())
        self._set: frozenset[str] | None = None

    def __len__(self) -> int:
        return len(self.array)

    def __iter__(self) -> Iterator[str]:
        return iter(self.array.to_pylist())

    def __contains__(self, record_id: object) -> bool:
        if self._set is None:
            self._set = frozenset(self.array.to_pylist())
        return record_id in self._set

    def without(self, others: pa.Array | pa.ChunkedArray) -> set[str]:
        """These Ids, less `others`."""
        if not len(self.array):
            return set()
        if isinstance(others, pa.ChunkedArray):
            others = others.combine_chunks()
        others = others.cast(pa.string())
        same_order = (
            len(others) == len(self.array)
            and pc.all(pc.equal(self.array, others), skip_nulls=False).as_py()
        )
        if same_order:  # the same Ids in the same order (a file in Id order): one pass
            return set()
        found = pc.is_in(self.array, value_set=others)
        return set(self.array.filter(pc.invert(found)).to_pylist())


class IdSet:
    """Ids added as Arrow arrays (or any strings); asked which of some Ids it lacks."""

    def __init__(self) -> None:
        self._chunks: list[pa.Array] = []
        self._count = 0

    def add(self, ids: pa.Array | pa.ChunkedArray | Iterable[str]) -> None:
        if isinstance(ids, pa.ChunkedArray):
            chunks = [chunk.cast(pa.string()) for chunk in ids.chunks]
        elif isinstance(ids, pa.Array):
            chunks = [ids.cast(pa.string())]
        else:
            chunks = [pa.array([str(value) for value in ids], pa.string())]
        chunks = [chunk for chunk in chunks if len(chunk)]
        self._chunks += chunks
        self._count += sum(len(chunk) for chunk in chunks)

    def update(self, other: IdSet) -> None:
        self._chunks += other._chunks
        self._count += other._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __len__(self) -> int:
        """Ids added, a repeated one counted each time."""
        return self._count

    def __contains__(self, record_id: object) -> bool:
        return bool(self.missing([str(record_id)]) == set())

    def distinct(self) -> set[str]:
        """Every Id added, once."""
        return {str(record_id) for chunk in self._chunks for record_id in chunk.to_pylist()}

    def missing(self, ids: Collection[str]) -> set[str]:
        """The ones of `ids` never added."""
        if not ids:
            return set()
        asked = ids if isinstance(ids, Ids) else Ids(pa.array(list(ids), pa.string()))
        if not self._chunks:
            return set(asked)
        present = pa.chunked_array(self._chunks, pa.string()).combine_chunks()
        self._chunks = [present]  # asked once per pull, but combined only once
        return asked.without(present)
