"""YAML that remembers where each key was written, and errors that say so.

`load_yaml` returns the data (as PyYAML's safe loader would) plus a map from key paths
to line numbers, so a validation error can name the file, the line and the key. It also
catches what PyYAML lets through silently: a key written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


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


def load_yaml(text: str, file: str) -> YamlDocument:
    """Parse `text`; syntax errors and duplicate keys come back as problems, not raised."""
    loader = yaml.SafeLoader(text)
    document = YamlDocument(file, None, {}, [])
    try:
        node = loader.get_single_node()
        if node is not None:
            document.data = _build(loader, node, (), document)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        detail = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        document.problems.append(ConfigProblem(file, line, (), f"not valid YAML: {detail}"))
    except yaml.YAMLError as exc:
        document.problems.append(ConfigProblem(file, None, (), f"not valid YAML: {exc}"))
    finally:
        loader.dispose()
    return document


def read_yaml(path: Path, label: str | None = None) -> YamlDocument:
    """Read and parse a YAML file; an unreadable file is a problem too."""
    name = label or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return YamlDocument(name, None, {}, [ConfigProblem(name, None, (), str(exc.strerror))])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = ConfigProblem(name, line, (), "is not UTF-8 text")
        return YamlDocument(name, None, {}, [problem])
    return load_yaml(text, name)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, doc: YamlDocument) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
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
            result[key] = _build(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
