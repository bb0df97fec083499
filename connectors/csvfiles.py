"""CSV exports in the layout of Salesforce's Data Export, and a Data Loader file back.

Reads `Account.csv` and `Opportunity.csv` (API field names as headers; UTF-8 with or
without BOM, or Windows-1252/Latin-1, decided per file with a per-row fallback; rows are
read by `connectors.csv_rows`, so a damaged row costs only itself) and writes
`icp_updates.csv`: `Id` plus the output fields, one row per account whose values
changed. Text cells that a spreadsheet would run as a formula are neutralised
(`connectors.spreadsheet_safety`). A blank cell in that
file leaves the CRM value alone (Data Loader's default); `#N/A` clears it.

The update file is built as `icp_updates.csv.partial` batch by batch, flushed to disk
before each batch is reported written, and renamed into place when the run finishes.
A run killed half-way leaves the `.partial` behind; the next run carries its rows
over, so nothing the state already counts as written is lost from the file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from connectors.base import (
    CallEstimate,
    Connector,
    FieldInfo,
    ObjectKind,
    RecordUpdate,
    WriteResult,
)
from connectors.canonical import LINE_COLUMN, RowIssue, parse_column, to_canonical
from connectors.csv_rows import (
    Damaged,
    EncodingPlan,
    clean_id,
    guess_id,
    physical_lines,
    plan_encoding,
    records,
)
from connectors.errors import SourceError
from connectors.mapping import CURRENT_PREFIX, ID_FIELDS, CrmMapping
from connectors.spreadsheet_safety import neutralise, restore

log = logging.getLogger(__name__)
PAGE_ROWS = 50_000
NULL_MARKER = "#N/A"
"""Data Loader's way of saying 'set this field to null' in an update file."""
UPDATES_FILE = "icp_updates.csv"


class CsvSettings(BaseModel):
    """`settings:` in csv.yaml."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=10_000, gt=0, le=1_000_000)
    """Rows written (and flushed to disk) per batch."""
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

    def __init__(self, mapping: CrmMapping, source: Path, out: Path | None = None) -> None:
        super().__init__(mapping)
        self.settings = CsvSettings.model_validate(mapping.settings)
        self.max_batch_size = self.settings.batch_size
        self.source = Path(source)
        self.out = Path(out) if out else self.source / UPDATES_FILE
        self._partial = self.out.with_name(self.out.name + ".partial")
        self._handle: io.TextIOWrapper | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._carried = False
        self._encodings: dict[Path, EncodingPlan] = {}
        self._present: dict[str, set[str]] = {}
        """Every id a finished pull saw (read or not), so deletions need no second read."""

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

    def pull(self, kind: ObjectKind, since: datetime | None) -> Iterator[pd.DataFrame]:
        """Read the whole file; only rows stamped at or after `since` are parsed and yielded."""
        path = self.path(kind)
        stats = self.stats[kind]
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
        present: set[str] = set()
        pages = _read_pages(
            path,
            self._encoding(path),
            self._id_columns(kind),
            stats.issues,
            kind,
            stats.unreadable_ids,
            self.settings.salesforce_ids,
        )
        for number, raw in enumerate(pages):
            if number == 0:
                self._warn_missing_columns(path, kind, raw.columns)
            present.update(raw[id_column].dropna().str.strip())
            page = raw
            if since is not None and stamp_column is not None and stamp_column in raw:
                # Without SystemModstamp, the file's own time is the best we know.
                stamps = parse_column(raw[stamp_column], "datetime", {}).fillna(mtime)
                page = raw.loc[(stamps >= since).to_numpy()]
            if not len(page):
                continue
            frame, issues = to_canonical(page, self.mapping, kind)
            stats.issues.extend(issues)
            if self.settings.spreadsheet_safe:  # values loaded from our quoted cells
                for column in [c for c in frame.columns if c.startswith(CURRENT_PREFIX)]:
                    frame[column] = frame[column].map(restore, na_action="ignore")
            if "modified_at" in frame:
                frame["modified_at"] = frame["modified_at"].fillna(mtime)
            stats.rows += len(frame)
            yield frame
        self._present[kind] = present | stats.unreadable_ids

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
            present: set[str] = set()
            columns, fix = self._id_columns(kind), self.settings.salesforce_ids
            for page in _read_pages(path, self._encoding(path), columns, [], kind, present, fix):
                present.update(page[id_column].dropna().str.strip())
            self._present[kind] = present
        return set(known) - self._present[kind]

    # -- write-back ---------------------------------------------------------------------

    def _columns(self) -> list[str]:
        id_field = self.mapping.objects.account.fields["account_id"].field
        return [id_field, *(o.field for o in self.mapping.outputs.values())]

    def begin_write(self, records: int = 0) -> None:
        """Start `icp_updates.csv.partial`, keeping the rows of a killed run's partial file."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        carried = _read_update_rows(self._partial) if self._partial.exists() else []
        self._carried = bool(carried)
        fresh = self._partial.with_name(self._partial.name + ".new")
        handle = fresh.open("w", newline="", encoding="utf-8")
        writer = csv.DictWriter(handle, fieldnames=self._columns(), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(carried)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(fresh, self._partial)  # the old rows are never only in memory
        self._handle, self._writer = handle, writer

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        if self._writer is None:
            self.begin_write()
        assert self._writer is not None
        id_field = self._columns()[0]
        for update in batch:
            row = {id_field: self._safe(update.record_id)}
            for name, value in update.values.items():
                row[name] = NULL_MARKER if value is None else self._safe(_cell(value), value)
            self._writer.writerow(row)
        self._flush()
        self.write_calls += 1
        return [WriteResult(u.record_id, ok=True) for u in batch]

    def _safe(self, text: str, value: object = "") -> str:
        """`text` as a spreadsheet will show it: text cells that are formulas, quoted."""
        if not self.settings.spreadsheet_safe or isinstance(value, int | float):
            return text
        return neutralise(text)

    def end_write(self) -> None:
        """Merge rows per record (later values win) into the update file, atomically."""
        if self._writer is None:
            self.begin_write()
        assert self._handle is not None
        self._handle.close()
        self._handle = self._writer = None
        if not self._carried:  # one row per record already: the partial file is the file
            os.replace(self._partial, self.out)
            return
        id_field = self._columns()[0]
        merged: dict[str, dict[str, str]] = {}
        for row in _read_update_rows(self._partial):
            target = merged.setdefault(row[id_field], {})
            target.update({k: v for k, v in row.items() if v})
        final = self.out.with_name(self.out.name + ".new")
        with final.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns(), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(merged.values())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(final, self.out)
        self._partial.unlink()

    def _flush(self) -> None:
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        described: dict[str, dict[str, FieldInfo]] = {}
        self.connect()
        for kind in ("account", "opportunity"):
            path = self.path(kind)
            header = _header(path, self._encoding(path))
            described[kind] = {name: FieldInfo(name=name, type="string") for name in header}
        return described

    def estimate_calls(self, records_to_write: int, full_pull: bool) -> CallEstimate:
        return CallEstimate(0, 0, "file", f"{records_to_write} rows to {self.out}")

    def describe_target(self) -> str:
        return str(self.out)


def _read_update_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if any(row.values())]


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
) -> Iterator[pd.DataFrame]:
    """Yield raw pages (all strings, `None` for empty) with their line numbers.

    Rows that cannot be read go to `issues`; their id, when it can be made out, goes to
    `unreadable_ids`, so a damaged row is never mistaken for a deleted record. Ids are
    checked and normalised (`csv_rows.clean_id`), the account lookup too; an Id seen
    twice keeps its first copy and reports the others with both lines.
    """
    id_column, lookup_column = id_columns
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
    seen: dict[str, int] = {}
    rows: list[list[str]] = []
    lines: list[int] = []
    for record in records(_after_header(path, plan, first[0]), width):
        if isinstance(record, Damaged):
            if (guessed := guess_id(record.text, id_index)) is not None:
                unreadable_ids.add(clean_id(guessed, salesforce_ids)[0] or guessed)
                unreadable_ids.add(guessed)
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
    if rows:
        yield _page(header, rows, lines)


def _after_header(path: Path, plan: EncodingPlan, header_line: int) -> Iterator[tuple[int, str]]:
    """The file's lines after the header record (which may itself span lines)."""
    for number, text in physical_lines(path, plan):
        if number > header_line:
            yield number, text


def _page(header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=header).astype(object)
    frame = frame.where(frame != "", None)
    frame[LINE_COLUMN] = lines
    return frame
