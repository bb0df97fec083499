"""CSV exports in the layout of Salesforce's Data Export, and a Data Loader file back.

Reads `Account.csv` and `Opportunity.csv` (API field names as headers; UTF-8 with or
without BOM, or Windows-1252/Latin-1, decided per file with a per-row fallback; rows are
read by `connectors.csv_rows`, so a damaged row costs only itself) and writes
`icp_updates.csv`: `Id` plus the output fields, one row per account whose values
changed. Text cells that a spreadsheet would run as a formula are neutralised
(`connectors.spreadsheet_safety`). A blank cell in that
file leaves the CRM value alone (Data Loader's default); `#N/A` clears it.

Writes are handed over, not made: a row in the update file is a change the CRM does
not show yet. The engine keeps every such change pending (in its state) until a later
export shows it, and each run's file holds every pending change, so loading the latest
file is always enough. `hand_over` writes it under a temporary name, fsyncs and renames
it into place as `icp_updates-run-000042.csv` (one per run, the last `keep_runs` kept),
then the same way as `icp_updates.csv`: a crash leaves the previous file or the new one,
never half of one.

An export read is checked for structure before anything is taken as deleted: an empty
file, a missing `Id` column or a file cut off mid-row stops the run (`SourceError`);
a row that cannot be told apart from the next keeps every record as it was.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from icp_engine.connectors.arrow_memory import release_memory
from icp_engine.connectors.base import (
    Connector,
    FieldInfo,
    ObjectKind,
    PullContext,
    PullReport,
    RecordUpdate,
    WritePlan,
    WriteResult,
)
from icp_engine.connectors.canonical import (
    LINE_COLUMN,
    TEXT,
    WHITESPACE,
    RowIssue,
    parse_column,
    to_canonical,
)
from icp_engine.connectors.csv_cells import csv_rows, neutralised
from icp_engine.connectors.csv_fast import Older, fast_pages
from icp_engine.connectors.csv_rows import (
    Damaged,
    EncodingPlan,
    clean_id,
    guess_id,
    physical_lines,
    plan_encoding,
    records,
)
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.id_set import Ids, IdSet
from icp_engine.connectors.mapping import CURRENT_PREFIX, ID_FIELDS, CrmMapping
from icp_engine.connectors.spreadsheet_safety import QUOTE, TRIGGERS, neutralise, restore
from icp_engine.connectors.updates import RecordUpdates
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
PAGE_ROWS = 50_000
NULL_MARKER = "#N/A"
"""Data Loader's way of saying 'set this field to null' in an update file."""
UPDATES_FILE = "icp_updates.csv"


RUN_FILE = "{stem}-run-{run:06d}{suffix}"


class CsvSettings(BaseModel):
    """`settings:` in csv.yaml."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=10_000, gt=0, le=1_000_000)
    """Rows handed over per batch."""
    keep_runs: int = Field(default=30, ge=1, le=100_000)
    """Update files of past runs kept beside the latest (`icp_updates-run-NNNNNN.csv`)."""
    salesforce_ids: bool = True
    """Read 15-character Salesforce Ids (Id and lookups such as AccountId) as their
    18-character form, so both forms of one record are one record."""
    spreadsheet_safe: bool = True
    """Quote text cells of the update file that a spreadsheet would run as a formula."""


class CsvConnector(Connector):
    """A directory of CSV exports standing in for the CRM.

    Args:
        mapping: the `csv` mapping.
        source: directory holding `<Object>.csv` files named after the mapped objects.
        out: the update file to write (default `source/icp_updates.csv`).
    """

    name = "csv"
    hands_over = True
    takes_every_update = True
    deletes_by_absence = True

    def __init__(self, mapping: CrmMapping, source: Path, out: Path | None = None) -> None:
        super().__init__(mapping)
        self.settings = CsvSettings.model_validate(mapping.settings)
        self.source = Path(source)
        self.out = Path(out) if out else self.source / UPDATES_FILE
        self.keep_runs = self.settings.keep_runs
        self._encodings: dict[Path, EncodingPlan] = {}
        self._present: dict[str, IdSet] = {}
        """Every id a finished pull saw (read or not), so deletions need no second read."""
        self._complete: dict[str, bool] = {}
        """Per kind, False once a read met rows it could not tell apart."""

    def _encoding(self, path: Path) -> EncodingPlan:
        if path not in self._encodings:
            plan = self._encodings[path] = plan_encoding(path)
            if (warning := plan.describe(path.name)) is not None:
                log.warning("%s", warning)
        return self._encodings[path]

    def _id_columns(self, kind: ObjectKind) -> tuple[str, str | None]:
        """The record's Id column, and for opportunities the account lookup column."""
        fields = getattr(self.mapping.objects, kind).fields
        lookup = fields["account_id"].field if kind == "opportunity" else None
        return fields[ID_FIELDS[kind]].field, lookup

    def path(self, kind: ObjectKind) -> Path:
        return self.source / f"{getattr(self.mapping.objects, kind).object}.csv"

    def connect(self) -> None:
        if not self.source.is_dir():
            msg = f"--source {self.source}: no such directory"
            raise SourceError(msg)
        for kind in ("account", "opportunity"):
            path = self.path(kind)
            if not path.is_file():
                msg = f"{path}: file not found (expected a Data Export CSV with API field names)"
                raise SourceError(msg)
            if _same_file(path, self.out):
                msg = (
                    f"--out {self.out} is the export's own {path.name}: the update file must "
                    "be another file (default: SOURCE/icp_updates.csv)"
                )
                raise SourceError(msg)
        if self.out.exists() and self.out.is_dir():
            msg = f"--out {self.out} is a directory; give the update file's path"
            raise SourceError(msg)

    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        """Read the whole file; only rows stamped at or after `since` are parsed and yielded."""
        path = self.path(kind)
        since, stats = context.since, report
        try:
            mtime = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
        except OSError as exc:
            msg = f"{path}: {exc.strerror or exc}"
            raise SourceError(msg) from exc
        object_map = getattr(self.mapping.objects, kind)
        id_column = object_map.fields[ID_FIELDS[kind]].field
        stamp_column = (
            object_map.fields["modified_at"].field if "modified_at" in object_map.fields else None
        )
        present = IdSet()
        older = (
            Older(stamp_column, since, already_read=context.already_read)
            if since is not None and stamp_column
            else None
        )
        pages = _read_pages(
            path,
            self._encoding(path),
            self._id_columns(kind),
            stats.issues,
            kind,
            stats.unreadable_ids,
            self.settings.salesforce_ids,
            stats,
            older,
        )
        for number, raw in enumerate(pages):
            if number == 0:
                self._warn_missing_columns(path, kind, raw.columns)
            if older is None or not older.ids:  # (the fast reader has them all already)
                present.add(_ids(raw[id_column]))
            page = raw
            if since is not None and stamp_column is not None and stamp_column in raw:
                # Without SystemModstamp, the file's own time is the best we know.
                stamps = parse_column(raw[stamp_column], "datetime", {}).fillna(mtime)
                keep = (stamps >= since).to_numpy()
                if context.already_read:  # the sync drops them: spare converting them
                    keep = keep & ~_already_read(
                        raw[id_column], stamps, since, context.already_read
                    )
                page = raw.loc[keep]
            if not len(page):
                continue
            frame, issues = to_canonical(page, self.mapping, kind)
            stats.issues.extend(issues)
            if self.settings.spreadsheet_safe:  # values loaded from our quoted cells
                for column in [c for c in frame.columns if c.startswith(CURRENT_PREFIX)]:
                    if frame[column].dtype == TEXT:
                        frame[column] = _restore(frame[column])
                    else:
                        frame[column] = frame[column].map(restore, na_action="ignore")
            if "modified_at" in frame:
                frame["modified_at"] = frame["modified_at"].fillna(mtime)
            stats.rows += len(frame)
            yield frame
        if older is not None and older.ids:  # the fast reader saw every Id, in file order
            present = older.ids  # (the pages' among them): a file in Id order matching
            # the state's Ids is then told complete by one comparison, not a hash
        present.add(stats.unreadable_ids)
        self._present[kind] = present
        self._complete[kind] = stats.complete
        release_memory()

    def _warn_missing_columns(self, path: Path, kind: ObjectKind, columns: pd.Index) -> None:
        for name, spec in getattr(self.mapping.objects, kind).fields.items():
            if spec.field not in columns:
                log.warning(
                    "%s has no column %s (mapped to %s): read as empty", path.name, spec.field, name
                )

    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        if not known:
            return set()
        if kind not in self._present:  # no finished pull to go by: read the ids
            path = self.path(kind)
            id_column = getattr(self.mapping.objects, kind).fields[ID_FIELDS[kind]].field
            stats = PullReport()
            present, unreadable = IdSet(), set[str]()
            columns, fix = self._id_columns(kind), self.settings.salesforce_ids
            for page in _read_pages(
                path, self._encoding(path), columns, [], kind, unreadable, fix, stats
            ):
                present.add(_ids(page[id_column]))
            present.add(unreadable | stats.unreadable_ids)
            self._present[kind] = present
            self._complete[kind] = self._complete.get(kind, True) and stats.complete
        if not self._complete.get(kind, True):
            return set()  # rows that could not be told apart: no evidence of any deletion
        return self._present[kind].missing(known)

    # -- write-back ---------------------------------------------------------------------

    def _columns(self) -> list[str]:
        id_field = self.mapping.objects.account.fields["account_id"].field
        return [id_field, *(o.field for o in self.mapping.outputs.values())]

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Accept a batch into this run's hand-over; `hand_over` publishes it (with every
        change still pending) when the run's state is ready to record it."""
        self._calls.add("write")
        return [WriteResult(u.record_id, ok=True) for u in batch]

    def accept(self, batches: int) -> None:
        self._calls.add("write", batches)

    def hand_over(
        self, updates: Sequence[RecordUpdate] | Iterator[Sequence[RecordUpdate]], run_id: int
    ) -> None:
        """Write every pending change as `icp_updates-run-NNNNNN.csv`, then as the update
        file itself; each lands whole (temporary name, fsync, rename) or not at all."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        run_file = self.run_file(run_id)
        _atomic_write(run_file, lambda handle: self._write_rows(handle, updates))
        _atomic_write(self.out, lambda handle: _copy_into(run_file, handle))
        self._prune(run_id)

    def run_file(self, run_id: int) -> Path:
        """Where run `run_id`'s update file is kept."""
        name = RUN_FILE.format(stem=self.out.stem, run=run_id, suffix=self.out.suffix)
        return self.out.with_name(name)

    def run_files(self) -> list[Path]:
        """The kept update files of past runs, oldest first."""
        pattern = re.compile(
            re.escape(self.out.stem) + r"-run-(\d{6,})" + re.escape(self.out.suffix) + "$"
        )
        found = [
            (int(match.group(1)), path)
            for path in self.out.parent.glob(f"{self.out.stem}-run-*")
            if (match := pattern.match(path.name))
        ]
        return [path for _, path in sorted(found)]

    def _prune(self, run_id: int) -> None:
        keep = self.run_file(run_id)
        old = [path for path in self.run_files() if path != keep]
        for path in old[: max(0, len(old) - (self.keep_runs - 1))]:
            path.unlink(missing_ok=True)

    def _write_rows(
        self, handle: IO[str], updates: Sequence[RecordUpdate] | Iterator[Sequence[RecordUpdate]]
    ) -> None:
        columns = self._columns()
        writer = csv.writer(handle)
        writer.writerow(columns)
        parts = updates if isinstance(updates, Iterator) else iter([updates])
        for part in parts:  # (a streamed run's slices, one after another)
            if isinstance(part, RecordUpdates):
                handle.write(csv_rows(self._cells(part, columns[1:])))
            else:
                self._write_part(writer, part, columns[1:])

    def _write_part(self, writer: Any, updates: Sequence[RecordUpdate], fields: list[str]) -> None:
        for update in updates:
            values = update.values
            writer.writerow(
                [
                    self._safe(update.record_id),
                    *(
                        ""
                        if name not in values
                        else NULL_MARKER
                        if values[name] is None
                        else self._safe(_cell(values[name]), values[name])
                        for name in fields
                    ),
                ]
            )

    def _cells(self, updates: RecordUpdates, fields: list[str]) -> list[list[str]]:
        """The update file's cells, a list per column, from the columns: the same cells as
        the row-by-row path (blank where a record has no value, `#N/A` to clear). Text
        values are checked for formulas together; others (numbers: a few distinct) are
        made one distinct value at a time."""
        safe = self.settings.spreadsheet_safe
        ids = [str(record_id) for record_id in updates.record_ids.tolist()]
        cells = [neutralised(ids) if safe else ids]
        known: dict[tuple[type, object], str] = {}

        def cell(value: object) -> str | None:
            if value is None:
                return None  # (`#N/A` below)
            try:
                key = (type(value), value)  # 1, 1.0 and True: equal keys, not one cell
                if key not in known:
                    known[key] = self._safe(_cell(value), value)
                return known[key]
            except TypeError:  # unhashable
                return self._safe(_cell(value), value)

        rows, names, values = updates.rows()
        for name in fields:
            mine = np.flatnonzero(names == name)
            given = values[mine]
            if pd.api.types.infer_dtype(given, skipna=True) in ("string", "empty"):
                texts = neutralised(given.tolist()) if safe else given.tolist()
            else:
                texts = list(map(cell, given.tolist()))
            column = np.full(len(updates), "", dtype=object)
            placed = np.empty(len(texts), dtype=object)
            placed[:] = [NULL_MARKER if text is None else text for text in texts]
            column[rows[mine]] = placed
            cells.append(column.tolist())
        return cells

    def output_lock(self) -> tuple[Path, Path] | None:
        return self.out.parent, Path(f".{self.out.name}.lock")

    def _safe(self, text: str, value: object = "") -> str:
        """`text` as a spreadsheet will show it: text cells that are formulas, quoted."""
        if not self.settings.spreadsheet_safe or isinstance(value, int | float):
            return text
        return neutralise(text)

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        described: dict[str, dict[str, FieldInfo]] = {}
        self.connect()
        for kind in ("account", "opportunity"):
            path = self.path(kind)
            header = _header(path, self._encoding(path))
            described[kind] = {name: FieldInfo(name=name, type="string") for name in header}
        return described

    def begin_write(self, records: int) -> WritePlan:
        """Batches of `batch_size` into this run's hand-over file: no API call."""
        return WritePlan(
            records, self.settings.batch_size, 0, "file", note=f"{records} rows to {self.out}"
        )

    def describe_target(self) -> str:
        return str(self.out)


def _atomic_write(path: Path, fill: Callable[[IO[str]], None]) -> None:
    """Write a file under a temporary name, fsync it, rename it over `path`, fsync the folder."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_into(source: Path, handle: IO[str]) -> None:
    with source.open(newline="", encoding="utf-8") as original:
        shutil.copyfileobj(original, handle, 1 << 20)


def _already_read(ids: pd.Series, stamps: pd.Series, since: datetime, already: Ids) -> np.ndarray:
    """Rows stamped exactly at the watermark whose Id the last run read there (after a bulk
    load, 100,000s of rows share one stamp: re-converting them was most of a quiet run)."""
    at = (stamps == since).to_numpy(dtype=bool, na_value=False)
    seen = np.zeros(len(ids), dtype=bool)
    if at.any():
        stripped = [
            value.strip() if isinstance(value, str) else None
            for value in ids.to_numpy(dtype=object)[at]
        ]
        seen[at] = already.contains(np.array(stripped, dtype=object))
    return seen


def _same_file(a: Path, b: Path) -> bool:
    try:
        return (a.exists() and b.exists() and os.path.samefile(a, b)) or a.resolve() == b.resolve()
    except OSError:
        return False


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _detect_encoding(path: Path) -> str:
    """One codec that decodes the whole file, for readers that take a single one (the
    mapping editor's profile): UTF-8 when every line is, else Windows-1252 or Latin-1.
    The connector itself reads mixed files row by row (`csv_rows.plan_encoding`)."""
    plan = plan_encoding(path)
    if plan.encoding == "utf-8" and not plan.exceptions:
        return "utf-8-sig"
    try:
        with path.open(encoding="cp1252", newline="") as handle:
            while handle.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _header(path: Path, plan: EncodingPlan) -> list[str]:
    for record in records(physical_lines(path, plan)):
        return [] if isinstance(record, Damaged) else [h.strip() for h in record[1]]
    return []


def _read_pages(
    path: Path,
    plan: EncodingPlan,
    id_columns: tuple[str, str | None],
    issues: list[RowIssue],
    kind: str,
    unreadable_ids: set[str],
    salesforce_ids: bool = True,
    stats: PullReport | None = None,
    older: Older | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield raw pages (Arrow strings, `TEXT`; missing for empty) with their line numbers.

    `older`: the fast reader may leave out rows stamped certainly before its `since`
    (their Ids go to `older.ids`); the row-by-row reader yields every row.

    Rows that cannot be read go to `issues`; their id, when it can be made out, goes to
    `unreadable_ids`, so a damaged row is never mistaken for a deleted record. Ids are
    checked and normalised (`csv_rows.clean_id`), the account lookup too; an Id seen
    twice keeps its first copy and reports the others with both lines.
    """
    id_column, lookup_column = id_columns
    stats = stats or PullReport()
    try:
        size = path.stat().st_size
    except OSError as exc:
        msg = f"{path}: {exc.strerror or exc}"
        raise SourceError(msg) from exc
    if size == 0:  # issue 10: an empty file is damage, not an export with no rows
        msg = f"{path}: the file is empty (0 bytes), not an export: not even a header line"
        raise SourceError(msg)
    reader = records(physical_lines(path, plan))
    try:
        first = next(reader)
    except StopIteration:
        return
    if isinstance(first, Damaged):
        msg = f"{path}, line 1: unreadable header ({first.problem})"
        raise SourceError(msg)
    header = [h.strip() for h in first[1]]
    if id_column not in header:
        msg = (
            f"{path}, line 1: no {id_column!r} column. The mapping reads the record id "
            f"from it; found columns: {', '.join(header[:12])}"
        )
        raise SourceError(msg)
    repeated = sorted({name for name in header if header.count(name) > 1 and name})
    if repeated:
        msg = f"{path}, line 1: the header names {', '.join(repeated)} more than once"
        raise SourceError(msg)
    width = len(header)
    id_index = header.index(id_column)
    lookup_index = header.index(lookup_column) if lookup_column in header else None
    if first[0] == 1 and plan.encoding == "utf-8" and not plan.exceptions:
        fast = fast_pages(path, header, id_index, lookup_index, salesforce_ids, PAGE_ROWS, older)
        if fast is not None:  # a clean file: read by pyarrow, same rows and line numbers
            yield from fast
            return
    seen: dict[str, int] = {}
    rows: list[list[str]] = []
    lines: list[int] = []
    ends_cleanly = _tail(path).endswith((b"\n", b"\r"))
    last: Damaged | None = None
    for record in records(_after_header(path, plan, first[0]), width):
        last = record if isinstance(record, Damaged) else None
        if isinstance(record, Damaged):
            if (guessed := guess_id(record.text, id_index)) is not None:
                unreadable_ids.add(clean_id(guessed, salesforce_ids)[0] or guessed)
                unreadable_ids.add(guessed)
            else:
                stats.complete = False  # its id is unknown: no deletion can be told
            if "\n" in record.text.strip("\r\n"):  # spans lines: ids may hide in it
                stats.complete = False
            issues.append(RowIssue(kind, record.line, guessed, None, None, record.problem))
            continue
        start, row = record
        if len(row) == 1 and not row[0].strip():
            continue
        record_id, problem = clean_id(row[id_index], salesforce_ids)
        if problem is not None:
            issues.append(RowIssue(kind, start, None, None, None, problem))
            continue
        if record_id is not None:
            if record_id in seen:
                issues.append(
                    RowIssue(
                        kind,
                        start,
                        record_id,
                        None,
                        None,
                        f"repeats the Id of line {seen[record_id]}; the first copy "
                        f"(line {seen[record_id]}) is used, this one skipped",
                    )
                )
                continue
            seen[record_id] = start
            row[id_index] = record_id
        if lookup_index is not None and row[lookup_index].strip():
            lookup, problem = clean_id(row[lookup_index], salesforce_ids)
            if problem is not None:
                issues.append(
                    RowIssue(kind, start, record_id, None, None, f"{lookup_column}: {problem}")
                )
            row[lookup_index] = lookup or ""
        rows.append(row)
        lines.append(start)
        if len(rows) >= PAGE_ROWS:
            yield _page(header, rows, lines)
            rows, lines = [], []
    if last is not None and not ends_cleanly:
        msg = (
            f"{path}, line {last.line}: the file ends in the middle of a row ({last.problem}; "
            "no line end): the export is cut off"
        )
        raise SourceError(msg)
    if rows:
        yield _page(header, rows, lines)


def _tail(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 2))
        return handle.read()


def _after_header(path: Path, plan: EncodingPlan, header_line: int) -> Iterator[tuple[int, str]]:
    """The file's lines after the header record (which may itself span lines)."""
    for number, text in physical_lines(path, plan):
        if number > header_line:
            yield number, text


def _page(header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    """A raw page as the fast reader gives it: Arrow strings (`TEXT`), missing for empty."""
    table = np.array(rows, dtype=object).reshape(len(rows), len(header))
    data = {
        name: pd.array(np.where(table[:, i] == "", np.array(None), table[:, i]), dtype=TEXT)
        for i, name in enumerate(header)
    }
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    frame[LINE_COLUMN] = lines
    return frame


def _ids(column: pd.Series) -> pa.Array:
    """The stripped Ids of a raw page's Id column (blank ones as ''), without a Python
    loop over the rows."""
    values = pa.array(column.array).cast(pa.large_string())
    return pc.utf8_trim(values, WHITESPACE).drop_null()


def _restore(column: pd.Series) -> pd.Series:
    """`spreadsheet_safety.restore` over a text column (Python only for the quoted cells)."""
    values = pa.array(column.array).cast(pa.large_string())
    second = pc.utf8_slice_codeunits(values, 1, 2)
    quoted = pc.fill_null(
        pc.and_(pc.starts_with(values, QUOTE), pc.is_in(second, pa.array(TRIGGERS))), False
    )
    if not pc.any(quoted).as_py():
        return column
    restored = pc.if_else(quoted, pc.utf8_slice_codeunits(values, 1), values)
    return pd.Series(pd.array(restored, dtype=TEXT), index=column.index)
