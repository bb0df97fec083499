"""Cells a spreadsheet would run as a formula, neutralised in files people open.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is taken
by Excel, LibreOffice and Google Sheets as a formula ("CSV injection": a value such as
`=1+2+cmd|' /C calc'!A0` from a CRM field could run a command on the machine of whoever
opens `icp_updates.csv`). Following OWASP's recommendation, such a cell is written with
a single quote in front, which spreadsheets show as text and do not evaluate:
https://owasp.org/www-community/attacks/CSV_Injection

The one exception is the engine's own reasons text (`+22 Employees 50-499; -16 Industry:
Government`): it starts with points the engine wrote, a number and a word, never with a
CRM value, so it cannot carry a command, and a quote in front would reach the CRM field
that sellers read. `starts_with_points` recognises that shape; the CSV connector leaves
such a reasons cell as it is (a spreadsheet may show it as an error cell, never run it).

Data Loader does not strip that quote: it loads `'+15 employees 50-500` as written. The
CSV connector therefore strips it again when it reads the values back from an export
(`restore`), so the next run sees its own value and writes nothing; `settings:
{spreadsheet_safe: false}` in csv.yaml turns the quoting off for files no person opens.
"""

from __future__ import annotations

import re

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_POINTS = re.compile(r"[+\-\u2212]\d+(?:\.\d+)? [^\W\d_]")


def neutralise(value: str) -> str:
    """`value` with a single quote in front when a spreadsheet would evaluate it."""
    return QUOTE + value if value.startswith(TRIGGERS) else value


def restore(value: object) -> object:
    """The value `neutralise` was given (other values unchanged)."""
    if isinstance(value, str) and value.startswith(QUOTE) and value[1:].startswith(TRIGGERS):
        return value[1:]
    return value


def starts_with_points(value: str) -> bool:
    """True for the engine's reasons shape: a signed number, a space, then a letter."""
    return _POINTS.match(value) is not None
