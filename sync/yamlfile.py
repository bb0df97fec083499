"""The one YAML loader of the engine: hostile input is refused, every key located.

Every YAML file the engine reads (mappings, learned criteria versions) goes through
`read_yaml` / `load_yaml`. They return the data (as PyYAML's safe loader would) plus a
map from key paths to line numbers, so a validation error can name the file, the line
and the key. Nothing in a file can hang the engine, exhaust its memory or end in a
traceback; each of these comes back as a `ConfigProblem` with the file and line:

- a path that is not a regular readable file (a directory, a dangling symlink, a pipe);
- a file over `MAX_BYTES` (checked before anything is read), binary content (NUL
  bytes), text that is not UTF-8, control characters;
- aliases that expand to more than `MAX_VALUES` values ("billion laughs"), an alias that
  refers to itself, nesting deeper than `MAX_DEPTH`;
- complex keys (a list or mapping used as a key), a key written twice;
- numbers too large to be meant (`MAX_DIGITS`), dates and other values PyYAML cannot
  build.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]
MAX_BYTES = 5 * 1024 * 1024
"""A mapping file is a few kilobytes; anything over 5 MB is refused before reading."""
MAX_DEPTH = 64
"""Nesting deeper than this is refused (the engine's schemas nest about 6 levels)."""
MAX_VALUES = 100_000
"""Values built from one file, aliases expanded: a bound no real mapping comes near."""
MAX_DIGITS = 30
"""Digits in one number: more is a slip (or an attack), never a weight or a threshold."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a configuration file, located for the person who will fix it."""

    file: str
    line: int | None
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = ".".join(str(p) for p in self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    """Configuration files with mistakes; `problems` lists every one found (exit 2)."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class YamlDocument:
    """A parsed YAML file: its data and where each key path starts (1-based lines)."""

    file: str
    data: Any
    lines: dict[KeyPath, int]
    problems: list[ConfigProblem]

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its closest written ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        return ConfigProblem(self.file, self.line_of(path), path, message)


class _Refused(Exception):
    """The file asks for something the loader will not do; `line` says where."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than `MAX_DEPTH` while composing
    (PyYAML's composer recurses once per level and would hit Python's recursion limit)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(mark.line + 1, f"nested deeper than {MAX_DEPTH} levels; refused")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str, file: str) -> YamlDocument:
    """Parse `text`; every mistake or hostile construct comes back as a problem, not raised."""
    document = YamlDocument(file, None, {}, [])
    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        code = f"U+{ord(control.group()):04X}"
        what = (
            "a NUL byte: binary content, not a YAML text file"
            if code == "U+0000"
            else (
                f"control character {code}, which YAML does not allow (write it as an escape "
                'inside double quotes, e.g. "\\a", if it is really meant)'
            )
        )
        document.problems.append(ConfigProblem(file, line, (), f"contains {what}"))
        return document
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is not None:
            document.data = _build(loader, node, (), document, _Budget())
    except _Refused as exc:
        document.data = None
        document.problems.append(ConfigProblem(file, exc.line, (), exc.message))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark else None
        detail = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        document.data = None
        document.problems.append(ConfigProblem(file, where, (), f"not valid YAML: {detail}"))
    except yaml.YAMLError as exc:
        document.data = None
        document.problems.append(ConfigProblem(file, None, (), f"not valid YAML: {exc}"))
    except RecursionError:  # a safety net: MAX_DEPTH should always come first
        document.data = None
        document.problems.append(ConfigProblem(file, None, (), "nested too deeply; refused"))
    finally:
        if loader is not None:
            loader.dispose()
    return document


def read_yaml(path: Path, label: str | None = None) -> YamlDocument:
    """Read and parse a YAML file; a path that is not a regular readable file is a problem.

    The size is checked before reading, so a huge file costs nothing.
    """
    name = label or str(path)

    def refused(message: str, line: int | None = None) -> YamlDocument:
        return YamlDocument(name, None, {}, [ConfigProblem(name, line, (), message)])

    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            return refused(f"is a symbolic link to {os.readlink(path)}, which does not exist")
        return refused("no such file")
    except OSError as exc:
        return refused(f"cannot be read: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        return refused("is a directory, not a YAML file")
    if not stat.S_ISREG(info.st_mode):
        return refused("is not a regular file (a pipe, socket or device); refused")
    if info.st_size > MAX_BYTES:
        return refused(
            f"is {info.st_size / 1_048_576:.1f} MB; a mapping file may be at most "
            f"{MAX_BYTES // 1_048_576} MB. Refused without reading it"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return refused(f"cannot be read: {exc.strerror or exc}")
    if len(raw) > MAX_BYTES:  # grew since stat
        return refused(f"is larger than {MAX_BYTES // 1_048_576} MB; refused")
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        return refused("contains NUL bytes: binary content, not a YAML text file", line)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return refused(f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8", line)
    return load_yaml(text, name)


class _Budget:
    """Values left to build: aliases are expanded, so a bomb spends it fast."""

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Refused(
                node.start_mark.line + 1,
                f"holds more than {MAX_VALUES:,} values once aliases are expanded "
                "(aliases inside aliases: a 'billion laughs'?); refused",
            )


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """Build one scalar; numbers too large to be meant and unbuildable values are refused."""
    line = node.start_mark.line + 1
    if node.tag in _NUMBER_TAGS and isinstance(node.value, str):
        digits = sum(ch.isdigit() for ch in node.value)
        if digits > MAX_DIGITS:
            raise _Refused(line, f"a number with {digits} digits; at most {MAX_DIGITS} are read")
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        raise _Refused(line, f"cannot be read as {node.tag.rsplit(':', 1)[-1]}: {exc}") from exc
    if isinstance(value, float) and math.isinf(value) and "inf" not in str(node.value).lower():
        raise _Refused(line, f"{node.value[:40]} is too large a number")
    return value


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    doc: YamlDocument,
    budget: _Budget,
    depth: int = 0,
) -> Any:
    budget.spend(node)
    if depth > MAX_DEPTH:
        raise _Refused(
            node.start_mark.line + 1,
            f"nested deeper than {MAX_DEPTH} levels (or an alias refers to itself); refused",
        )
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                found = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _Refused(line, f"a {found} used as a key; keys must be plain names")
            key = _scalar(loader, key_node)
            child = (*path, key)
            if key in first_line:
                doc.problems.append(
                    ConfigProblem(
                        doc.file,
                        line,
                        child,
                        f"written twice (first on line {first_line[key]}); keep one",
                    )
                )
                continue
            first_line[key] = line
            doc.lines[child] = line
            result[key] = _build(loader, value_node, child, doc, budget, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, i), doc, budget, depth + 1)
            for i, item in enumerate(node.value)
        ]
    return _scalar(loader, node)
