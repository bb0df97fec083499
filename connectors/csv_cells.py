"""The update file's rows written from Arrow text columns, as `csv.writer` writes them.

A backfill's update file is a million rows: `csv.writer` given a Python list per row, and
a formula check per reasons cell, were seconds of it. Here a part's cells are Arrow
columns: quoted where a spreadsheet would take them for a formula (`spreadsheet_safety`),
then quoted as the csv module's default dialect quotes (a cell holding a comma, a double
quote, CR or LF goes in double quotes, its own quotes doubled; rows end in CRLF), and
joined into one text.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from icp_engine.connectors.spreadsheet_safety import QUOTE, TRIGGERS

_FORMULA = "^[" + "".join(re.escape(trigger) for trigger in TRIGGERS) + "]"
_NEEDS_QUOTES = r'[,"\r\n]'
ROW_END = "\r\n"
"""`csv.writer`'s line terminator (the excel dialect)."""


def neutralised(cells: pa.Array) -> pa.Array:
    """`spreadsheet_safety.neutralise` of every cell (nulls stay null)."""
    formula = pc.fill_null(pc.match_substring_regex(cells, _FORMULA), False)
    return pc.if_else(formula, pc.binary_join_element_wise(QUOTE, cells, ""), cells)


def csv_rows(columns: list[pa.Array]) -> str:
    """Rows of text cells (one array per column, no nulls) as `csv.writer` writes them."""
    if not columns or not len(columns[0]):
        return ""
    quoted = [_quoted(column) for column in columns]
    rows = pc.binary_join_element_wise(*quoted, ",")
    return ROW_END.join(rows.to_pylist()) + ROW_END


def _quoted(cells: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(cells, _NEEDS_QUOTES)
    doubled = pc.replace_substring(cells, '"', '""')
    return pc.if_else(needs, pc.binary_join_element_wise('"', doubled, '"', ""), cells)
