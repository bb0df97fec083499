"""Salesforce record Ids: the 15-character form turned into its 18-character form.

Salesforce Ids come in two forms: 15 characters, case-sensitive (reports, the UI's
URLs, old exports), and 18 characters, case-insensitive (every API answer, Data Loader
and Data Export). The last three characters are a checksum of the case of the first
fifteen, so the two forms of one record are one record only once both are 18 long.

The suffix algorithm (Salesforce SOAP API Developer Guide, "Field Types: ID", and the
CASESAFEID() formula function; worked example a0D30000001n7Pi -> a0D30000001n7PiEAI):
split the 15 characters into three chunks of five; for each chunk, set bit i (i = 0 for
its first character) when character i is an uppercase letter A-Z; the chunk's 5-bit
number picks one character of "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345". See
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm#i1435616
"""

from __future__ import annotations

import re

_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_UPPER_FLAGS = str.maketrans(
    {chr(c): "1" if chr(c).isupper() else "0" for c in range(128) if chr(c).isalnum()}
)
_ID15 = re.compile(r"[A-Za-z0-9]{15}")
_ID18 = re.compile(r"[A-Za-z0-9]{15}[A-Z0-5]{3}")


def checksum(id15: str) -> str:
    """The three-character case checksum of a 15-character Id."""
    flags = id15.translate(_UPPER_FLAGS)[::-1]  # reversed: character i is bit i
    return "".join(_SUFFIX_CHARS[int(flags[start : start + 5], 2)] for start in (10, 5, 0))


def to_18(value: str) -> str:
    """The 18-character form of a 15-character Salesforce Id; anything else unchanged."""
    if len(value) == 15 and _ID15.fullmatch(value):
        return value + checksum(value)
    return value


def is_salesforce_id(value: str) -> bool:
    """True for a well-formed 15- or 18-character Id (an 18-character one with its checksum)."""
    if len(value) == 15:
        return bool(_ID15.fullmatch(value))
    return bool(_ID18.fullmatch(value)) and value[15:].upper() == checksum(value[:15]).upper()
