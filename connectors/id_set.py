"""Sets of record Ids held as Arrow text: what a whole-file read saw, for deletions, and the
Ids a run read at its watermark's stamp, for the next run.

A CSV pull remembers every Id in the file, so that the records the state knows and the
file lacks can be told deleted. At a million accounts and 1.6 million opportunities a
Python set of them held about 270 MB for the whole run (a str object and a hash slot per
Id); as Arrow text they are about 60 MB, and the one question asked of them (which known
Ids are missing) is a single hash lookup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Set
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_AS_PYTHON_AT_ONCE = 1_000_000
"""Ids made Python strings at a time, to hash or iterate them (never all of them at once)."""


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


class Ids(Set[str]):
    """Distinct Ids as Arrow text, read-only: the records the state knows (a million of
    them without a Python string each, until someone iterates them), or the Ids a run
    read at its watermark's stamp, which the next run skips when it meets them there.

    After a bulk load every record of the org carries that one stamp: ten million Ids as
    a Python frozenset held about 1 GB. Here they are Arrow text (220 MB for ten million
    Salesforce Ids) and, once a lookup is asked, a sorted 64-bit hash of each and the Ids
    in that order (520 MB in all) to search; a hash found is confirmed against the Id
    itself, so a lookup is exact.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, ids: pa.Array | pa.ChunkedArray | Iterable[str] = (), *, distinct: bool = False
    ) -> None:
        """`distinct`: the caller knows each Id is given once (no pass to drop repeats)."""
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
        if not isinstance(ids, pa.Array):
            ids = pa.array([None if value is None else str(value) for value in ids], pa.string())
        ids = ids.cast(pa.string()).drop_null()
        self.array: pa.Array = ids if distinct else pc.unique(ids)
        """Every Id once, in the order first given."""
        self._hashes: np.ndarray | None = None
        self._by_hash: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.array)

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self.array), _AS_PYTHON_AT_ONCE):
            yield from self.array.slice(start, _AS_PYTHON_AT_ONCE).to_pylist()

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str) or not len(self.array):
            return False
        return bool(self.contains(np.array([record_id], dtype=object))[0])

    def __or__(self, other: Set[Any]) -> Ids:
        more = other.array if isinstance(other, Ids) else Ids(other).array
        return Ids(pa.chunked_array([self.array, more], pa.string()))

    def sorted(self) -> pa.Array:
        """The Ids in ascending (code point) order."""
        return self.array.take(pc.array_sort_indices(self.array))

    def contains(self, ids: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """For each of `ids` (an Id or None), whether it is one of these."""
        if isinstance(ids, pa.Array | pa.ChunkedArray):
            ids = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
        found = np.zeros(len(ids), dtype=bool)
        if not len(ids) or not len(self.array):
            return found
        hashes, by_hash = self._index()
        asked = _hashed(ids)
        first = np.searchsorted(hashes, asked)
        inside = first < len(hashes)
        hit = np.flatnonzero(inside)[hashes[first[inside]] == asked[inside]]
        if len(hit):
            candidates = by_hash.take(pa.array(first[hit])).to_numpy(zero_copy_only=False)
            found[hit] = candidates == ids[hit]
        shared = first[hit] + 1 < len(hashes)
        shared[shared] = hashes[first[hit][shared] + 1] == asked[hit][shared]
        for row in hit[shared & ~found[hit]]:  # two Ids share the hash: rare
            end = int(np.searchsorted(hashes, asked[row], side="right"))
            start = int(first[row])
            found[row] = ids[row] in by_hash.slice(start, end - start).to_pylist()
        return found

    def _index(self) -> tuple[np.ndarray, pa.Array]:
        if self._hashes is None or self._by_hash is None:
            hashes = np.concatenate(
                [np.empty(0, dtype=np.int64)]
                + [
                    _hashed(self.array.slice(start, _AS_PYTHON_AT_ONCE).to_pylist())
                    for start in range(0, len(self.array), _AS_PYTHON_AT_ONCE)
                ]
            )
            order = np.argsort(hashes)
            self._hashes, self._by_hash = hashes[order], self.array.take(pa.array(order))
        return self._hashes, self._by_hash

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


def _hashed(ids: np.ndarray | list[Any]) -> np.ndarray:
    """Python's own hash of each Id (SipHash, salted per process: the index lives in
    memory only; None hashes too)."""
    return np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
