"""SOQL text to tokens for the fake Salesforce org: the tokenizer, string-literal escapes,
LIKE patterns, and Salesforce's caret-marked query error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.fakes.salesforce.wire import ApiError

_TOKEN = re.compile(
    r"""
  (?P<ws>\s+)
| (?P<str>'(?:[^'\\]|\\.)*')
| (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
| (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
| (?P<num>[+-]?\d+(?:\.\d+)?(?![\w.]))
| (?P<op>!=|<>|<=|>=|=|<|>)
| (?P<punct>[(),])
| (?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass
class Token:
    kind: str
    text: str
    pos: int


def soql_error(code: str, text: str, pos: int, message: str) -> ApiError:
    """The Salesforce layout: the query line, a caret under the culprit, row and column."""
    row = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:] if end < 0 else text[start:end]
    col = pos - start + 1
    return ApiError(
        400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"
    )


def tokenize(text: str) -> list[Token]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise soql_error("MALFORMED_QUERY", text, pos, f"unexpected token: '{text[pos]}'")
        if m.lastgroup != "ws":
            toks.append(Token(str(m.lastgroup), m.group(), pos))
        pos = m.end()
    toks.append(Token("eof", "", len(text)))
    return toks


def unescape(body: str, like: bool) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append("\\" + nxt if like and nxt in "%_" else _ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def like_regex(pattern: str) -> re.Pattern[str]:
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
