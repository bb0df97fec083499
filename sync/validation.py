"""A YAML document checked against a pydantic model, every error a located, readable problem.

`validate_document` turns pydantic's errors into `ConfigProblem`s that name the file, line
and key, say what was expected and what was found, and suggest the key meant when one is
misspelt; `validate_part` does the same for one block of a file (connector settings).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from icp_engine.sync.yamlfile import ConfigProblem, KeyPath, YamlDocument
from pydantic import BaseModel, ValidationError

_M = TypeVar("_M", bound=BaseModel)
_TYPE_WORDS = {
    "str", "int", "float", "bool", "date", "datetime", "list", "dict", "none",
    "literal", "is-instance", "function-after", "function-before", "union", "tagged-union",
}  # fmt: skip


def validate_document(
    document: YamlDocument, model: type[_M], problems: list[ConfigProblem]
) -> _M | None:
    problems += document.problems
    if document.data is None and document.problems:  # unparseable: nothing to validate
        return None
    if not isinstance(document.data, dict):
        found = type(document.data).__name__ if document.data is not None else "an empty file"
        problems.append(document.problem((), f"must be a mapping of keys to values. Got {found}"))
        return None
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        errors = [(_data_path(tuple(e["loc"]), document), e) for e in exc.errors()]
        misspelt = {
            (*path[:-1], guess)
            for path, error in errors
            if error["type"] == "extra_forbidden"
            for guess in difflib.get_close_matches(str(path[-1]), _valid_keys(model, path[:-1]), 1)
        }
        seen: dict[KeyPath, ConfigProblem] = {}
        for path, error in errors:
            if path in seen or (error["type"] == "missing" and path in misspelt):
                continue  # "weight is missing" says nothing more than "did you mean weight"
            seen[path] = document.problem(path, _message(error, path, document, model))
        problems += seen.values()
        return None


def validate_part(
    document: YamlDocument,
    prefix: KeyPath,
    data: Any,
    model: type[BaseModel],
    problems: list[ConfigProblem],
) -> None:
    """Validate one block of a file against its own model (connector settings)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = (*prefix, *_data_path(tuple(error["loc"]), document))
            problems.append(
                document.problem(path, _message(error, path[len(prefix) :], document, model))
            )


def _data_path(loc: KeyPath, document: YamlDocument) -> KeyPath:
    """Drop pydantic's union-member tags (`str`, `function-after[...]`) from a location."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part.split("[")[0] in _TYPE_WORDS):
            continue
        path.append("in" if part == "in_" else part)
    return tuple(path)


def _message(error: Any, path: KeyPath, document: YamlDocument, model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(model, path[:-1])
        guess = difflib.get_close_matches(str(path[-1]), valid, n=1)
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        return f"unknown key {path[-1]!r}.{hint} Valid keys: {', '.join(valid)}"
    if kind == "missing":
        return "is required but missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    found = error.get("input")
    if kind.startswith(("literal_error", "enum")):
        return f"{message}. Got {found!r}"
    if not isinstance(found, dict | list) and found is not None:
        return f"{message}. Got {found!r}"
    return message


def _valid_keys(model: type[BaseModel], path: KeyPath) -> list[str]:
    """The keys allowed at `path` inside `model` (following lists, dicts and unions)."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap_model(current)
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    if isinstance(part, int):
        args = [a for a in typing.get_args(_strip(annotation)) if a is not type(None)]
        return args[0] if args else None
    model = _unwrap_model(annotation)
    if model is not None:
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    members = typing.get_args(_strip(annotation))
    return members[-1] if typing.get_origin(_strip(annotation)) is dict and members else None


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _strip(members[0]) if len(members) == 1 else annotation
    return annotation


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
