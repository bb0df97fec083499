"""The update file's rows written from columns of text, as `csv.writer` writes them.

A backfill's update file is a million rows: `csv.writer`, given a Python list per row,
took seconds of it. Here a part's cells come as one list per column: formulas a spreadsheet
would run are quoted (`spreadsheet_safety`), a cell holding a comma, double quote, CR or
LF goes in double quotes with its quotes doubled (the csv module's default dialect), and
the rows are joined into one text with CRLF line ends, as `csv.writer` ends them.
"""

from __future__ import annotations

from typing import TypeVar

from icp_engine.connectors.spreadsheet_safety import neutralise

Cell = TypeVar("Cell", str, str | None)
ROW_END = "\r\n"
"""`csv.writer`'s line terminator (the excel dialect)."""


def neutralised(cells: list[Cell]) -> list[Cell]:
    """`spreadsheet_safety.neutralise` of every cell (None stays None)."""
    return [cell if cell is None else neutralise(cell) for cell in cells]


def csv_rows(columns: list[list[str]]) -> str:
    """Rows of text cells (one list per column, of equal length) as `csv.writer` writes
    them."""
    quoted = [_quoted(column) for column in columns]
    return "".join([",".join(row) + ROW_END for row in zip(*quoted, strict=True)])


def _quoted(cells: list[str]) -> list[str]:
    return [
        '"' + cell.replace('"', '""') + '"'
        if "," in cell or '"' in cell or "\r" in cell or "\n" in cell
        else cell
        for cell in cells
    ]
