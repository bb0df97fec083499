"""CSV exports in the layout of Salesforce's Data Export, and a Data Loader file back.

Reads `Account.csv` and `Opportunity.csv` (API field names as headers; UTF-8 with or
without BOM, falling back to Windows-1252/Latin-1) and writes `icp_updates.csv`: `Id`
plus the output fields, one row per account whose values changed. A blank cell in that
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
from typing import IO

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from connectors.base import (
    CallEstimate,
    Connector,
    FieldInfo,
    ObjectKind,
    PullStats,
    RecordUpdate,
    WriteResult,
)
from connectors.canonical import LINE_COLUMN, RowIssue, parse_column, to_canonical
from connectors.errors import SourceError
from connectors.mapping import ID_FIELDS, CrmMapping

log = logging.getLogger(__name__)
PAGE_ROWS = 50_000
NULL_MARKER = "#N/A"
"""Data Loader's way of saying 'set this field to null' in an update file."""
UPDATES_FILE = "icp_updates.csv"
_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


RUN_FILE = "{stem}-run-{run:06d}{suffix}"


class CsvSettings(BaseModel):
    """`settings:` in csv.yaml."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=10_000, gt=0, le=1_000_000)
    """Rows handed over per batch."""
    keep_runs: int = Field(default=30, ge=1, le=100_000)
    """Update files of past runs kept beside the latest (`icp_updates-run-NNNNNN.csv`)."""


class CsvConnector(Connector):
    """A directory of CSV exports standing in for the CRM.

    Args:
        mapping: the `csv` mapping.
        source: directory holding `<Object>.csv` files named after the mapped objects.
        out: the update file to write (default `source/icp_updates.csv`).
    """

    name = "csv"
    hands_over = True
    deletes_by_absence = True

    def __init__(self, mapping: CrmMapping, source: Path, out: Path | None = None) -> None:
        super().__init__(mapping)
        settings = CsvSettings.model_validate(mapping.settings)
        self.max_batch_size = settings.batch_size
        self.keep_runs = settings.keep_runs
        self.source = Path(source)
        self.out = Path(out) if out else self.source / UPDATES_FILE
        self._encodings: dict[Path, str] = {}
        self._present: dict[str, set[str]] = {}
        """Every id a finished pull saw (read or not), so deletions need no second read."""

    def _encoding(self, path: Path) -> str:
        if path not in self._encodings:
            self._encodings[path] = _detect_encoding(path)
        return self._encodings[path]

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
        pages = _read_pages(path, self._encoding(path), id_column, stats, kind)
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
            stats = PullStats()
            present: set[str] = set()
            for page in _read_pages(path, self._encoding(path), id_column, stats, kind):
                present.update(page[id_column].dropna().str.strip())
            self._present[kind] = present | stats.unreadable_ids
            self.stats[kind].complete &= stats.complete
        if not self.stats[kind].complete:
            return set()  # rows that could not be told apart: no evidence of any deletion
        return set(known) - self._present[kind]

    # -- write-back ---------------------------------------------------------------------

    def _columns(self) -> list[str]:
        id_field = self.mapping.objects.account.fields["account_id"].field
        return [id_field, *(o.field for o in self.mapping.outputs.values())]

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Accept a batch into this run's hand-over; `hand_over` publishes it (with every
        change still pending) when the run's state is ready to record it."""
        self.write_calls += 1
        return [WriteResult(u.record_id, ok=True) for u in batch]

    def hand_over(self, updates: Sequence[RecordUpdate], run_id: int) -> None:
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

    def _write_rows(self, handle: IO[str], updates: Sequence[RecordUpdate]) -> None:
        columns = self._columns()
        writer = csv.writer(handle)
        writer.writerow(columns)
        fields = columns[1:]
        for update in updates:
            values = update.values
            writer.writerow(
                [
                    update.record_id,
                    *(
                        ""
                        if name not in values
                        else NULL_MARKER
                        if values[name] is None
                        else _cell(values[name])
                        for name in fields
                    ),
                ]
            )

    def output_lock(self) -> tuple[Path, Path] | None:
        return self.out.parent, Path(f".{self.out.name}.lock")

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
    """The first of UTF-8 (BOM or not), Windows-1252, Latin-1 that decodes the whole file."""
    for encoding in _ENCODINGS:
        try:
            with path.open(encoding=encoding, newline="") as handle:
                while handle.read(1 << 20):
                    pass
        except UnicodeDecodeError:
            continue
        except OSError as exc:
            msg = f"{path}: {exc.strerror or exc}"
            raise SourceError(msg) from exc
        return encoding
    msg = f"{path}: cannot be decoded"  # latin-1 decodes anything: unreachable in practice
    raise SourceError(msg)


def _header(path: Path, encoding: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as handle:
        return [h.strip() for h in next(csv.reader(handle), [])]


def _read_pages(
    path: Path, encoding: str, id_column: str, stats: PullStats, kind: str
) -> Iterator[pd.DataFrame]:
    """Yield raw pages (all strings, `None` for empty) with their line numbers.

    Rows that cannot be read go to `stats.issues`; their id, when it can be made out, goes
    to `stats.unreadable_ids`, so a damaged row is never mistaken for a deleted record; a
    row whose id cannot be made out marks the read incomplete (`stats.complete`).

    Raises:
        SourceError: the file is not a whole export: empty, no id column, or cut off
            (its last row ends early, or a quote opened on some line is never closed).
    """
    issues, unreadable_ids = stats.issues, stats.unreadable_ids
    try:
        handle = path.open(encoding=encoding, newline="")
        size = path.stat().st_size
    except OSError as exc:
        msg = f"{path}: {exc.strerror or exc}"
        raise SourceError(msg) from exc
    if size == 0:
        msg = f"{path}: the file is empty (0 bytes), not an export: not even a header line"
        raise SourceError(msg)
    ends_cleanly = _tail(path).endswith((b"\n", b"\r"))
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            msg = f"{path}, line 1: unreadable header ({exc})"
            raise SourceError(msg) from exc
        if id_column not in header:
            msg = (
                f"{path}, line 1: no {id_column!r} column. The mapping reads the record id "
                f"from it; found columns: {', '.join(header[:12])}"
            )
            raise SourceError(msg)
        width = len(header)
        id_index = header.index(id_column)
        rows: list[list[str]] = []
        lines: list[int] = []
        previous = reader.line_num
        last: tuple[int, list[str]] = (1, header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                issues.append(RowIssue(kind, previous + 1, None, None, None, f"unreadable: {exc}"))
                stats.complete = False  # its id is unknown: no deletion can be told
                previous = reader.line_num
                continue
            start, previous = previous + 1, reader.line_num
            last = (start, row)
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                if len(row) > id_index and row[id_index].strip():
                    unreadable_ids.add(row[id_index].strip())
                else:
                    stats.complete = False
                if reader.line_num != start:  # a stray quote ran over rows: ids hidden in it
                    stats.complete = False
                issues.append(
                    RowIssue(
                        kind,
                        start,
                        None,
                        None,
                        None,
                        f"has {len(row)} fields, the header has {width}; skipped",
                    )
                )
                continue
            rows.append(row)
            lines.append(start)
            if len(rows) >= PAGE_ROWS:
                yield _page(header, rows, lines)
                rows, lines = [], []
        _check_end(path, last, width, ends_cleanly)
        if rows:
            yield _page(header, rows, lines)


def _tail(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 2))
        return handle.read()


def _check_end(path: Path, last: tuple[int, list[str]], width: int, ends_cleanly: bool) -> None:
    """A file cut off mid-row, or a quote never closed, is not a whole export."""
    start, row = last
    if row and "\n" in row[-1] and not _tail(path).rstrip(b"\r\n").endswith(b'"'):
        msg = (
            f"{path}, line {start}: a quoted value opened on this line is never closed; "
            "everything after it would be read as one value (a damaged or cut-off export)"
        )
        raise SourceError(msg)
    if not ends_cleanly and len(row) < width:
        msg = (
            f"{path}, line {start}: the file ends in the middle of a row ({len(row)} of "
            f"{width} fields, no line end): the export is cut off"
        )
        raise SourceError(msg)


def _page(header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=header).astype(object)
    frame = frame.where(frame != "", None)
    frame[LINE_COLUMN] = lines
    return frame
