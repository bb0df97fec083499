"""The pyarrow fast path reads exactly what the row-by-row reader reads, or stands aside."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from icp_engine.connectors import csv_fast, csvfiles
from icp_engine.connectors.base import ObjectKind, PullContext
from icp_engine.connectors.csv_fast import Older, fast_pages
from icp_engine.connectors.csv_rows import plan_encoding
from icp_engine.connectors.id_set import Ids
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.config import load_config

HEADER = "Id,Name,AccountId,Amount\n"
CLEAN = [
    "006000000000001AAA,Plain,001000000000001,10\n",
    '006000000000002AAA,"Quoted, with comma",001000000000001AAA,\n',
    '006000000000003,"Doubled ""quotes""",,3.5\n',
    "  006000000000004AAA  ,Spaced id,  001000000000002  ,\n",
    ",No id at all,001000000000002,1\n",
    '006000000000005AAA,"",   ,2\n',
    "006000000000006AAA,Ünïcödé name,001000000000002,7",
]
DAMAGED = {
    "wrong width": "006000000000009AAA,Short\n",
    "multi-line value": '006000000000009AAA,"two\nlines",001000000000001,1\n',
    "stray quote": '006000000000009AAA,ab"c,001000000000001,1\n',
    "blank line": "\n",
    "bare CR": "006000000000009AAA,x,001000000000001,1\r",
    "repeated id": "006000000000001AAA,Again,001000000000001,1\n",
    "15/18 repeat": "006000000000003,Again,001000000000001,1\n",
    "control char in id": "006000000\x01000009,x,001000000000001,1\n",
    "formula id": "=HYPERLINK(1),x,001000000000001,1\n",
    "spaced formula id": "  +SUM(1),x,001000000000001,1\n",
    "DEL in id": "006000000\x7f000009,x,001000000000001,1\n",
    "formula lookup": "006000000000009AAA,x,@SUM(1),1\n",
}


def read(path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, list]:
    if not fast:
        monkeypatch.setattr(csvfiles, "fast_pages", lambda *args: None)
    issues: list = []
    unreadable: set[str] = set()
    pages = list(
        csvfiles._read_pages(
            path, plan_encoding(path), ("Id", "AccountId"), issues, "opportunity", unreadable
        )
    )
    monkeypatch.undo()
    frame = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame()
    return frame, [*issues, *sorted(unreadable)]


def test_clean_file_reads_the_same_through_pyarrow(tmp_path, monkeypatch) -> None:
    path = tmp_path / "Opportunity.csv"
    path.write_text(HEADER + "".join(CLEAN), encoding="utf-8")
    assert fast_pages(path, HEADER.strip().split(","), 0, 2, True, 2) is not None
    fast, fast_issues = read(path, True, monkeypatch)
    slow, slow_issues = read(path, False, monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_issues == slow_issues == []
    assert fast.loc[2, "Id"] == "006000000000003AAA"  # the 18-character form
    assert fast.loc[3, "AccountId"] == "001000000000002AAA"
    assert fast["__line__"].tolist() == [2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_damaged_file_is_left_to_the_row_reader(tmp_path, monkeypatch, damage) -> None:
    path = tmp_path / "Opportunity.csv"
    rows = [*CLEAN[:-1], DAMAGED[damage], CLEAN[-1] + "\n"]
    path.write_text(HEADER + "".join(rows), encoding="utf-8", newline="")
    assert fast_pages(path, HEADER.strip().split(","), 0, 2, True, 2) is None
    fast, fast_issues = read(path, True, monkeypatch)
    slow, slow_issues = read(path, False, monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_issues == slow_issues


def test_sample_export_pages_equal(tmp_path, monkeypatch) -> None:
    write_sample_crm(tmp_path, 3000)
    for name in ("Account.csv", "Opportunity.csv"):
        fast, _ = read(tmp_path / name, True, monkeypatch)
        slow, _ = read(tmp_path / name, False, monkeypatch)
        pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize("kind", ["account", "opportunity"])
def test_incremental_pull_leaves_out_only_older_rows(tmp_path, monkeypatch, kind) -> None:
    """Rows stamped before the watermark are left out early; the pull yields the same
    frames and sees the same Ids (deletions) as the row-by-row reader."""
    write_sample_crm(tmp_path, 2000)
    path = tmp_path / ("Account.csv" if kind == "account" else "Opportunity.csv")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    stamps = frame["SystemModstamp"].copy()
    stamps.iloc[::7] = "2030-01-01T00:00:00.500Z"  # after the watermark
    stamps.iloc[1::7] = "2030-01-01T00:00:00Z"  # exactly on it: kept
    stamps.iloc[2::7] = "2029-12-31T23:59:59.999Z"  # just before
    stamps.iloc[3::7] = "01/02/2031 10:00"  # another layout: left to the parser
    stamps.iloc[4::7] = ""  # no stamp: the file's time (now), before the watermark
    stamps.iloc[5::7] = "1600-01-01T00:00:00Z"  # plain, but out of a nanosecond's range
    frame["SystemModstamp"] = stamps
    frame.to_csv(path, index=False, lineterminator="\n")
    since = datetime(2030, 1, 1, tzinfo=UTC)
    mapping = load_config("csv", None).mapping

    def pull(fast: bool) -> tuple[pd.DataFrame, set[str]]:
        if not fast:
            monkeypatch.setattr(csvfiles, "fast_pages", lambda *args: None)
        connector = csvfiles.CsvConnector(mapping, tmp_path)
        pulled = pd.concat(list(connector.pull(kind, PullContext(since))), ignore_index=True)
        monkeypatch.undo()
        return pulled, connector._present[kind].distinct()

    fast, fast_ids = pull(True)
    slow, slow_ids = pull(False)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_ids == slow_ids
    assert len(fast) == sum(1 for i in range(len(frame)) if i % 7 in (0, 1, 3))


def test_an_export_with_nothing_new_is_read_once_for_ids_and_stamps_only(
    tmp_path, monkeypatch
) -> None:
    """Every row stamped before the watermark: no page, the same Ids seen (deletions) as the
    row-by-row reader, and no second reading of every column."""
    write_sample_crm(tmp_path, 2000)
    context = PullContext(datetime(2100, 1, 1, tzinfo=UTC))
    monkeypatch.setattr("icp_engine.connectors.csv_fast._pages", _refuse)
    fast_pages_read, fast_ids = _pulled(tmp_path, "account", context, True, monkeypatch)
    slow_pages_read, slow_ids = _pulled(tmp_path, "account", context, False, monkeypatch)
    assert fast_pages_read == slow_pages_read == []
    assert fast_ids == slow_ids
    assert len(fast_ids) == 2000


@pytest.mark.parametrize("unread", [0, 1])
def test_rows_at_the_watermark_already_read_there_are_not_new(
    tmp_path, monkeypatch, unread
) -> None:
    """After a bulk load every row shares one stamp, the watermark: the Ids the last run
    read there are not new, so the file is read once; an Id it did not read is new."""
    write_sample_crm(tmp_path, 500)
    path = tmp_path / "Account.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["SystemModstamp"] = "2030-01-01T00:00:00.250Z"
    frame.to_csv(path, index=False, lineterminator="\n")
    since = datetime(2030, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    mapping = load_config("csv", None).mapping
    read_there = Ids(frame["Id"].iloc[unread:])

    def pull(fast: bool) -> list[pd.DataFrame]:
        if not fast:
            monkeypatch.setattr(csvfiles, "fast_pages", lambda *args: None)
        connector = csvfiles.CsvConnector(mapping, tmp_path)
        pages = list(connector.pull("account", PullContext(since, read_there)))
        monkeypatch.undo()
        return pages

    if not unread:
        monkeypatch.setattr("icp_engine.connectors.csv_fast._pages", _refuse)
    fast, slow = pull(True), pull(False)
    assert [len(page) for page in fast] == [len(page) for page in slow] == ([1] if unread else [])
    if unread:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[0]["account_id"].tolist() == [frame["Id"].iloc[0]]


def _pulled(
    directory: Path,
    kind: ObjectKind,
    context: PullContext,
    fast: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[pd.DataFrame], set[str]]:
    """The pages a CSV pull yields and the Ids it saw, read by the fast reader or (not
    `fast`) row by row; every patch is undone afterwards."""
    if not fast:
        monkeypatch.setattr(csvfiles, "fast_pages", lambda *args: None)
    connector = csvfiles.CsvConnector(load_config("csv", None).mapping, directory)
    pages = list(connector.pull(kind, context))
    monkeypatch.undo()
    return pages, connector._present[kind].distinct()


def _refuse(*args: object) -> None:
    raise AssertionError("every column read again although no row is new")


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_the_structure_scan_decides_the_same_whatever_its_block_size(
    tmp_path, monkeypatch, block
) -> None:
    """Damage that straddles two blocks is seen as in one block (a blank `\\r\\n` line
    right after a line end split from it included)."""
    files = {"clean": HEADER + "".join(CLEAN)}
    files |= {
        name: HEADER + "".join([*CLEAN[:-1], row, CLEAN[-1]]) for name, row in DAMAGED.items()
    }
    for name, text in files.items():
        path = tmp_path / f"{name.replace('/', ' of ')}.csv"
        path.write_text(text, encoding="utf-8", newline="")
        whole = csv_fast._structure(path)
        monkeypatch.setattr(csv_fast, "_SCAN", block)
        assert csv_fast._structure(path) == whole, name
        monkeypatch.undo()


@pytest.mark.parametrize("damage", ["repeated id", "15/18 repeat"])
def test_a_repeated_id_is_left_to_the_row_reader_when_nothing_is_new(tmp_path, damage) -> None:
    header = HEADER.strip() + ",SystemModstamp\n"
    rows = [*CLEAN[:-1], DAMAGED[damage], CLEAN[-1] + "\n"]
    path = tmp_path / "Opportunity.csv"
    path.write_text(
        header + "".join(r.rstrip("\n") + ",2020-01-01T00:00:00Z\n" for r in rows),
        encoding="utf-8",
        newline="",
    )
    older = Older("SystemModstamp", datetime(2030, 1, 1, tzinfo=UTC))
    assert fast_pages(path, header.strip().split(","), 0, 2, True, 2, older) is None


def test_pages_leave_out_rows_the_last_run_read_at_the_watermark(tmp_path) -> None:
    """After a bulk load most rows share the watermark's stamp: those the last run read
    there are not made into pages at all; older rows neither; the rest are."""
    write_sample_crm(tmp_path, 60)
    path = tmp_path / "Account.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    stamps = np.full(len(frame), "2030-01-01T00:00:00.250Z", dtype=object)
    stamps[::5] = "2029-06-01T00:00:00Z"  # older
    stamps[1::5] = "2030-02-01T00:00:00Z"  # newer
    frame["SystemModstamp"] = stamps
    frame.to_csv(path, index=False, lineterminator="\n")
    ids = frame["Id"].tolist()
    at = [i for i in range(len(ids)) if i % 5 not in (0, 1)]
    unread = set(at[::4])  # at the watermark, but not read there by the last run
    older = Older(
        "SystemModstamp",
        datetime(2030, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC),
        already_read=Ids(ids[i] for i in at if i not in unread),
    )
    header = list(frame.columns)
    pages = fast_pages(path, header, header.index("Id"), None, True, 7, older)
    assert pages is not None
    paged = [value for page in pages for value in page["Id"].tolist()]
    expected = [ids[i] for i in range(len(ids)) if i % 5 == 1 or i in unread]
    assert paged == expected
    assert older.ids.distinct() == set(ids)  # every Id is still seen (deletions)


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 18])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_few_new_rows_are_picked_out_by_line_as_the_row_reader_reads_them(
    tmp_path, monkeypatch, block, line_end
) -> None:
    """When few rows are new, the second reading takes only their lines: the same frames,
    line numbers and Ids as the row-by-row reader, whatever the block size, with CRLF line
    ends, the first and last rows new, and the last line without a line end."""
    write_sample_crm(tmp_path, 60)
    path = tmp_path / "Account.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    stamps = np.full(len(frame), "2029-06-01T00:00:00Z", dtype=object)
    new = [0, 1, 17, 18, 40, 59]
    stamps[new] = "2030-02-01T00:00:00Z"
    frame["SystemModstamp"] = stamps
    text = frame.to_csv(index=False, lineterminator=line_end)
    path.write_bytes(text.removesuffix(line_end).encode())
    context = PullContext(datetime(2030, 1, 1, tzinfo=UTC))
    slow, slow_ids = _pulled(tmp_path, "account", context, False, monkeypatch)
    monkeypatch.setattr(csv_fast, "_SCAN", block)
    monkeypatch.setattr(csv_fast, "_batches", _refuse_every_column)  # lines picked out
    monkeypatch.setattr(csvfiles, "PAGE_ROWS", 4)  # pages made as the one reading goes
    fast, fast_ids = _pulled(tmp_path, "account", context, True, monkeypatch)
    assert [len(page) for page in fast] == [4, 2]
    pd.testing.assert_frame_equal(
        pd.concat(fast, ignore_index=True), pd.concat(slow, ignore_index=True)
    )
    assert pd.concat(fast)["account_id"].tolist() == frame["Id"].iloc[new].tolist()
    assert fast_ids == slow_ids == set(frame["Id"])


_BATCHES = csv_fast._batches


def _refuse_every_column(path: Path, width: int, columns: list[int] | None) -> Iterator:
    if columns is None:
        raise AssertionError("every row parsed although few are new")
    return _BATCHES(path, width, columns)


@pytest.mark.parametrize("far", ["1600-01-01T00:00:00Z", "2026-01-02T24:00:00Z", None])
def test_a_stamp_is_certainly_before_the_watermark_only_when_plainly_a_second_before(
    far: str | None,
) -> None:
    """Stamps are read as nanoseconds when every plain one fits; one that does not (a far
    year, hour 24) sends the batch the slower way, with the same answers."""
    since = datetime(2030, 1, 1, 0, 0, 5, 500_000, tzinfo=UTC)
    cases = {
        "2030-01-01T00:00:04.999Z": True,  # a whole second before 00:00:05
        "2030-01-01T00:00:05.000Z": False,  # the same second: maybe new
        "2030-01-01T00:00:06Z": False,
        "2029-12-31T23:59:59.123456789Z": True,
        "01/01/2020 10:00": False,  # not plain: the parser decides
        "": False,
    }
    if far is not None:
        cases[far] = far.startswith("1600")  # hour 24: not a time strptime reads
    stamps = pa.array(list(cases), pa.string())
    assert csv_fast._certainly_before(stamps, since).to_pylist() == list(cases.values())
