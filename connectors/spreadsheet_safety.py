"""Cells a spreadsheet would run as a formula, neutralised in files people open.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is taken
by Excel, LibreOffice and Google Sheets as a formula ("CSV injection": a value such as
`=1+2+cmd|' /C calc'!A0` from a CRM field could run a command on the machine of whoever
opens `icp_updates.csv`). Following OWASP's recommendation, such a cell is written with
a single quote in front, which spreadsheets show as text and do not evaluate:
https://owasp.org/www-community/attacks/CSV_Injection

Data Loader does not strip that quote: it loads `'+15 employees 50-500` as written. The
CSV connector therefore strips it again when it reads the values back from an export
(`restore`), so the next run sees its own value and writes nothing; `settings:
{spreadsheet_safe: false}` in csv.yaml turns the quoting off for files no person opens.
"""

from __future__ import annotations

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralise(value: str) -> str:
    """`value` with a single quote in front when a spreadsheet would evaluate it."""
    return QUOTE + value if value.startswith(TRIGGERS) else value


def restore(value: object) -> object:
    """The value `neutralise` was given (other values unchanged)."""
    if isinstance(value, str) and value.startswith(QUOTE) and value[1:].startswith(TRIGGERS):
        return value[1:]
    return value
