"""The Ids a CSV pull saw, held as Arrow text: which known Ids the file lacks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from icp_engine.connectors import id_set
from icp_engine.connectors.id_set import Ids, IdSet, distinct_count


def test_missing_ids_are_the_known_ones_never_added() -> None:
    seen = IdSet()
    assert not seen and seen.missing({"a"}) == {"a"} and seen.missing(set()) == set()
    seen.add(pa.array(["a", "b"]))
    seen.add(pa.chunked_array([pa.array(["c"]), pa.array([], pa.string())], pa.string()))
    seen.add(pa.array(["d"], pa.large_string()))  # a cleaned Id column's type
    seen.add({"e"})  # unreadable rows' Ids, as Python strings
    other = IdSet()
    other.add(["f", "a"])  # rows a quick read left out
    seen.update(other)
    assert seen and len(seen) == 7
    assert seen.distinct() == {"a", "b", "c", "d", "e", "f"}
    assert seen.missing(["a", "x", "f", "y"]) == {"x", "y"}
    assert "c" in seen and "x" not in seen
    assert seen.missing(frozenset({"b", "z"})) == {"z"}  # asked again: the same answer


def test_known_ids_answer_as_a_collection_and_subtract_in_arrow() -> None:
    known = Ids(pa.chunked_array([pa.array(["a", "b"]), pa.array(["c"])]))
    assert len(known) == 3 and list(known) == ["a", "b", "c"]
    assert "b" in known and "z" not in known
    assert known.without(pa.array(["b", "x"])) == {"a", "c"}
    seen = IdSet()
    seen.add(pa.array(["c"]))
    assert seen.missing(known) == {"a", "b"}
    assert Ids(pa.array([], pa.string())).without(pa.array(["a"])) == set()


def test_ids_in_the_same_order_or_not_subtract_alike() -> None:
    """A file in Id order matches the known Ids position by position (one pass); any
    other order, or one Id in place of another, is answered by the hash lookup."""
    known = Ids(pa.array(["a1", "a2", "a3", "a4"]))
    assert known.without(pa.array(["a1", "a2", "a3", "a4"])) == set()
    assert known.without(pa.array(["a4", "a3", "a2", "a1"])) == set()
    assert known.without(pa.array(["a1", "a2", "zz", "a4"])) == {"a3"}
    assert known.without(pa.array(["a1", "a2", "a3"])) == {"a4"}
    assert known.without(pa.array(["a1", "a2", None, "a4"])) == {"a3"}


def test_distinct_ids_are_counted_whether_in_order_or_not() -> None:
    """Ids in ascending order across chunks are counted by comparing neighbours; any
    other order (or a repeat where chunks meet) by hashing: the same answer."""
    chunks = pa.chunked_array
    assert distinct_count(chunks([pa.array(["a", "b"]), pa.array(["c"])])) == 3
    assert distinct_count(chunks([pa.array(["a", "c"]), pa.array(["b"])])) == 3
    assert distinct_count(chunks([pa.array(["a", "b"]), pa.array(["b"])])) == 2
    empty = pa.array([], pa.string())
    assert distinct_count(chunks([pa.array(["a", "b"]), empty, pa.array(["b", "c"])])) == 3
    assert distinct_count(chunks([pa.array(["a", "a"])])) == 1
    assert distinct_count(pa.array(["a"])) == 1
    assert distinct_count(empty) == 0
    assert distinct_count(pa.array(["a", None, "b"])) == 2  # (a missing Id is none)


@settings(max_examples=200, deadline=None)
@given(
    held=st.lists(st.text(max_size=4), max_size=40),
    asked=st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=40),
    buckets=st.sampled_from([1, 3, 2**61]),
)
def test_ids_answer_membership_as_a_python_set(
    held: list[str], asked: list[str | None], buckets: int
) -> None:
    """Whatever the Ids (repeated, empty, non-ASCII) and however often their hashes clash
    (`buckets`: 1 makes every Id share one hash), a lookup says what a set says."""
    original = id_set._hashed
    id_set._hashed = lambda ids: original(ids) % buckets
    try:
        lookup = Ids(held)
        expected = set(held)
        assert len(lookup) == len(expected) and set(lookup) == expected and lookup == expected
        found = lookup.contains(np.array(asked, dtype=object))
        assert found.tolist() == [value in expected for value in asked]
        assert lookup.contains(pa.array(asked, pa.string())).tolist() == found.tolist()
        assert [value in lookup for value in asked] == found.tolist()
        assert (lookup | {"zz"}) == expected | {"zz"}
        assert lookup.sorted().to_pylist() == sorted(expected)
    finally:
        id_set._hashed = original


def test_ids_take_arrow_ids_as_they_are() -> None:
    chunks = pa.chunked_array([pa.array(["b", "a"]), pa.array(["a", None])], pa.string())
    lookup = Ids(chunks)
    assert lookup == {"a", "b"} and not Ids() and Ids() == frozenset()
    assert lookup | Ids(pa.array(["c"], pa.large_string())) == {"a", "b", "c"}
    assert 7 not in lookup and "a" in lookup
