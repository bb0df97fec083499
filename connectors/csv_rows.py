"""Reading the rows of a CSV export so that damage costs only the damaged rows.

Three things a real export gets wrong, handled here for `connectors.csvfiles`:

- **Encoding, per file and per row.** The file's encoding is the one most of its
  non-ASCII lines are written in (UTF-8, else Windows-1252); a line that is not in it
  is read in the other (Latin-1 as the last resort, which decodes anything), and those
  lines are named in a warning. One pasted Latin-1 row no longer garbles every accented
  name of a UTF-8 file.
- **Quotes.** A record may span several lines only inside a quoted field. A stray quote
  would otherwise swallow every following line into one field. A record is accepted only
  when it closes within `MAX_SPAN` lines, has exactly the header's number of fields, and
  swallows no line that is a whole row on its own (balanced quotes, the header's width,
  a first field); otherwise its first line is reported
  as damaged and reading starts again on the next line. So a stray quote costs one row.
- **Ids.** An Id with a control character (NUL, tab, CR...) is refused with its line.
  Salesforce 15-character Ids become their 18-character form (`salesforce_ids`). An Id
  seen twice: the first copy (lowest line) is used and every later copy is reported with
  both lines, so the result never depends on anything but the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.salesforce.ids import to_18

MAX_SPAN = 200
"""Lines one record may span (a long multi-line Description); beyond, a quote is damage."""
BOM = b"\xef\xbb\xbf"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMES = {"utf-8": "UTF-8", "cp1252": "Windows-1252", "latin-1": "Latin-1"}


@dataclass
class EncodingPlan:
    """How to decode one file: its encoding, and the lines written in another."""

    encoding: str
    exceptions: dict[int, str] = field(default_factory=dict)
    """Line number -> the encoding that line is read in instead."""

    def describe(self, name: str, shown: int = 10) -> str | None:
        """A warning naming the lines read in another encoding, or None."""
        if not self.exceptions:
            return None
        lines = sorted(self.exceptions)
        listed = ", ".join(str(n) for n in lines[:shown])
        more = f" and {len(lines) - shown} more" if len(lines) > shown else ""
        others = sorted({_NAMES[e] for e in self.exceptions.values()})
        return (
            f"{name} is {_NAMES[self.encoding]}, but line(s) {listed}{more} are not: "
            f"read as {' or '.join(others)}; check those rows' accented names"
        )


def _decode_other(raw: bytes, file_encoding: str) -> tuple[str, str]:
    """Decode a line that is not in the file's encoding: (text, encoding used)."""
    order = ("cp1252", "latin-1") if file_encoding == "utf-8" else ("utf-8", "latin-1")
    for encoding in order:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 decodes anything


_ENCODING_BLOCK = 1 << 24
"""Bytes read at a time by `plan_encoding` (then up to the end of that line)."""


def plan_encoding(path: Path) -> EncodingPlan:
    """Read `path` once and decide its encoding from all its non-ASCII lines.

    The file is read in blocks of whole lines; a block that is all ASCII (almost every
    block of almost every export) is only checked, the others are looked at line by line.
    Lines are counted only to number those others: the line ends before such a block
    are counted then (an all-ASCII export is never counted; counting was most of the
    time of this pass).
    """
    utf8_lines: list[int] = []
    other_lines: list[int] = []
    lines = 0  # the line ends in the file's first `counted` bytes
    counted = 0
    offset = 0  # the block's first byte
    try:
        with path.open("rb") as handle:
            while block := handle.read(_ENCODING_BLOCK):
                block += handle.readline()  # up to the end of the line it stopped in
                start, offset = offset, offset + len(block)
                if block.isascii():
                    continue
                lines += _line_ends(path, counted, start)
                counted = offset
                pieces = block.split(b"\n")
                if pieces[-1] == b"":
                    pieces.pop()  # the block ends with a line end
                for number, line in enumerate(pieces, lines + 1):
                    raw = line[len(BOM) :] if number == 1 and line.startswith(BOM) else line
                    if raw.isascii():
                        continue
                    try:
                        raw.decode("utf-8")
                        utf8_lines.append(number)
                    except UnicodeDecodeError:
                        other_lines.append(number)
                lines += len(pieces)
    except OSError as exc:
        msg = f"{path}: {exc.strerror or exc}"
        raise SourceError(msg) from exc
    if len(utf8_lines) >= len(other_lines):
        plan = EncodingPlan("utf-8")
        for number in other_lines:
            plan.exceptions[number] = "cp1252"
        return plan
    plan = EncodingPlan("cp1252")
    for number in utf8_lines:
        plan.exceptions[number] = "utf-8"
    return plan


def _line_ends(path: Path, start: int, stop: int) -> int:
    """How many line ends (LF) bytes `start` up to `stop` of `path` hold."""
    count = 0
    with path.open("rb") as handle:
        handle.seek(start)
        while start < stop and (block := handle.read(min(_ENCODING_BLOCK, stop - start))):
            count += block.count(b"\n")
            start += len(block)
    return count


def physical_lines(path: Path, plan: EncodingPlan) -> Iterator[tuple[int, str]]:
    """Each line of the file (line ending kept), decoded as `plan` says."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        msg = f"{path}: {exc.strerror or exc}"
        raise SourceError(msg) from exc
    with handle:
        for number, line in enumerate(handle, 1):
            raw = line[len(BOM) :] if number == 1 and line.startswith(BOM) else line
            try:
                if number in plan.exceptions:
                    raise UnicodeDecodeError(plan.encoding, raw, 0, 1, "planned")
                text = raw.decode(plan.encoding)
            except UnicodeDecodeError:
                text, used = _decode_other(raw, plan.encoding)
                plan.exceptions[number] = used
            yield number, text


@dataclass(frozen=True)
class Damaged:
    """A line that is not a readable record (reported, skipped)."""

    line: int
    text: str
    problem: str


def _parse(text: str) -> list[str] | None:
    """The fields of one complete record, or None while a quoted field is still open."""
    if '"' not in text:
        return text.rstrip("\r\n").split(",")
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return None
        try:  # stray quotes inside a field are read as they stand, as Excel does
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error:  # a field over csv's size limit: no record of any width
            return []
    return [value for row in rows for value in row]  # a bare CR splits rows: one record


def _whole_row(text: str, width: int) -> bool:
    """True when a line is a whole record on its own: quotes balanced, the right width,
    a first field. (The last line of a real multi-line field holds its closing quote,
    so it is never balanced on its own.)"""
    if text.count('"') % 2:
        return False
    fields = _parse(text)
    return fields is not None and len(fields) == width and bool(fields[0].strip())


def records(
    lines: Iterator[tuple[int, str]], width: int | None = None
) -> Iterator[tuple[int, list[str]] | Damaged]:
    """Group physical lines into records; damage costs only the lines it really spans.

    Args:
        lines: (line number, text) pairs, line endings kept.
        width: fields a record must have (None for the header: any number).

    Yields:
        (first line, fields) per record, or `Damaged` for a line that starts no readable
        record. Blank lines are skipped.
    """
    pending: list[tuple[int, str]] = []
    source = iter(lines)
    replay: list[tuple[int, str]] = []
    while True:
        if replay:
            item: tuple[int, str] | None = replay.pop(0)
        else:
            item = next(source, None)
        if item is None:
            if not pending:
                return
            first, *rest = pending
            pending = []
            yield Damaged(first[0], first[1], "opens a quoted field that never closes; skipped")
            replay = rest + replay
            continue
        if not pending and not item[1].strip():
            continue
        pending.append(item)
        # an open quoted field closes only on a line with a quote: skip the parse till then
        fields = None if len(pending) > 1 and '"' not in item[1] else _parse(_joined(pending))
        if fields is None:
            if len(pending) > MAX_SPAN:
                first, *rest = pending
                pending = []
                problem = f"opens a quoted field still open {MAX_SPAN} lines later; skipped"
                yield Damaged(first[0], first[1], problem)
                replay = rest + replay
            continue
        first_line = pending[0][0]
        swallowed = (
            len(pending) > 1
            and width is not None
            and any(_whole_row(t, width) for _, t in pending[1:])
        )
        if (width is not None and len(fields) != width) or swallowed:
            if len(pending) == 1:
                yield Damaged(
                    first_line,
                    pending[0][1],
                    f"has {len(fields)} fields, the header has {width}; skipped",
                )
            else:
                yield Damaged(
                    first_line,
                    pending[0][1],
                    "has an unbalanced quote (it would swallow the following lines); skipped",
                )
                replay = pending[1:] + replay
            pending = []
            continue
        pending = []
        yield first_line, fields


def _joined(pending: list[tuple[int, str]]) -> str:
    return "".join(text for _, text in pending)


def clean_id(value: str, salesforce: bool) -> tuple[str | None, str | None]:
    """(the Id as the engine keys it, None) or (None, why it is refused)."""
    text = value.strip()
    if not text:
        return None, None
    bad = _CONTROL.search(text)
    if bad is not None:
        return None, f"Id {text!r} contains control character U+{ord(bad.group()):04X}; skipped"
    if text.startswith(("=", "+", "-", "@")):
        return None, f"Id {text[:40]!r} starts like a spreadsheet formula, not an Id; skipped"
    return (to_18(text) if salesforce else text), None


def guess_id(text: str, index: int) -> str | None:
    """The Id of a damaged line, when it can be made out (so it is not taken as deleted)."""
    parts = text.rstrip("\r\n").split(",")
    if index >= len(parts):
        return None
    value = parts[index].strip().strip('"').strip()
    if not value or _CONTROL.search(value):
        return None
    return value
