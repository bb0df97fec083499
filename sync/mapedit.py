"""Edits to the mapping files, applied with every comment and the layout kept.

The mapping editor and `icp mappings suggest` speak in small edits (map a canonical field
to a CRM field, add a spelling to a value map, set an output's write policy, set a
criterion's weight or a tier's threshold). `apply_edits` applies them to the YAML text
with ruamel.yaml's round-trip mode, so the file keeps its comments, key order, flow lists
and quoting, and `git diff` shows only what the admin changed. Whether the result is a
valid configuration is not judged here: `sync.config` does that, as for any file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

from icp_engine.connectors.mapping import OUTPUT_KEYS, WritePolicy
from icp_engine.sync.yamlfile import load_yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

FileKey = Literal["mapping", "icp"]
OPS = ("field", "value", "policy", "weight", "tier")
GROUPS = ("must_have", "strong_signal", "bonus")
KINDS = ("account", "opportunity")


class EditError(ValueError):
    """An edit that cannot be applied to the file as it stands (says which and why)."""


@dataclass(frozen=True)
class Edit:
    """One change an admin (or a suggestion) makes.

    op:
      field:  objects.<kind>.fields.<name> maps to CRM field `value` ("" removes it)
      value:  CRM spelling `value` means canonical value `canonical` of field <kind>.<name>
      policy: outputs.<name>.policy = `value`
      weight: criteria.<group>.<index>.weight = `value` (as typed: "0.3", "abc"...)
      tier:   tiers.<name> = `value`
    """

    op: str
    value: str
    kind: str = "account"
    name: str = ""
    canonical: str = ""
    group: str = ""
    index: int = 0

    @property
    def file(self) -> FileKey:
        return "icp" if self.op in ("weight", "tier") else "mapping"

    @classmethod
    def from_json(cls, data: Any) -> Edit:
        """An edit from the page's JSON; raises `EditError` on a malformed one."""
        if not isinstance(data, dict) or data.get("op") not in OPS:
            raise EditError(f"an edit needs op: one of {', '.join(OPS)}. Got {data!r}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        try:
            edit = cls(**fields)
        except TypeError as exc:
            raise EditError(str(exc)) from exc
        if not isinstance(edit.value, str) or not isinstance(edit.index, int):
            raise EditError(f"an edit's value is text and its index a number. Got {data!r}")
        if edit.op in ("field", "value") and edit.kind not in KINDS:
            raise EditError(f"kind must be account or opportunity. Got {edit.kind!r}")
        return edit

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long flow list
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load(text: str) -> Any:
    checked = load_yaml(text, "the file")  # the engine's bounded loader refuses bombs first
    if checked.data is None and checked.problems:
        raise EditError(f"the file cannot be edited here: {checked.problems[0].message}")
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        raise EditError(f"the file is not valid YAML, so it cannot be edited here: {exc}") from exc


def dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def apply_edits(texts: dict[FileKey, str], edits: list[Edit]) -> dict[FileKey, str]:
    """The files' texts after `edits` (in order); files no edit touches come back as given."""
    touched = {e.file for e in edits}
    docs = {key: load(text) for key, text in texts.items() if key in touched}
    for edit in edits:
        _apply(docs[edit.file], edit)
    return {key: dump(docs[key]) if key in docs else text for key, text in texts.items()}


def typed(text: str) -> Any:
    """What the admin typed in a number box, as YAML would read it: 0.3 -> 0.3, 70 -> 70,
    anything else stays text (so the validator can say what is wrong with it)."""
    stripped = text.strip()
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            continue
    return stripped


def _child(node: Any, key: str | int, what: str) -> Any:
    try:
        return node[key]
    except (KeyError, IndexError, TypeError):
        raise EditError(f"{what}: not in the file") from None


def _apply(doc: Any, edit: Edit) -> None:
    if edit.op == "field":
        fields = _child(
            _child(_child(doc, "objects", "objects"), edit.kind, edit.kind), "fields", "fields"
        )
        _set_field(fields, edit.name, edit.value.strip())
    elif edit.op == "value":
        fields = _child(
            _child(_child(doc, "objects", "objects"), edit.kind, edit.kind), "fields", "fields"
        )
        _add_spelling(fields, edit.name, edit.canonical, edit.value)
    elif edit.op == "policy":
        if edit.name not in OUTPUT_KEYS:
            raise EditError(f"unknown output {edit.name!r}")
        output = _child(_child(doc, "outputs", "outputs"), edit.name, f"outputs.{edit.name}")
        if edit.value == WritePolicy.OVERWRITE and "policy" in output:
            del output["policy"]  # the default: say nothing, as the bundled files do
        elif edit.value != WritePolicy.OVERWRITE:
            output["policy"] = edit.value
    elif edit.op == "weight":
        if edit.group not in GROUPS:
            raise EditError(f"unknown criteria group {edit.group!r}")
        group = _child(_child(doc, "criteria", "criteria"), edit.group, f"criteria.{edit.group}")
        rule = _child(group, edit.index, f"criteria.{edit.group}.{edit.index}")
        rule["weight"] = typed(edit.value)
    elif edit.op == "tier":
        tiers = _child(doc, "tiers", "tiers")
        _child(tiers, edit.name, f"tiers.{edit.name}")
        tiers[edit.name] = typed(edit.value)


def _set_field(fields: CommentedMap, name: str, value: str) -> None:
    current = fields.get(name)
    if not value:
        if name in fields:
            del fields[name]
        return
    if isinstance(current, dict):
        current["field"] = value  # keeps its type and value map
    elif name in fields:
        fields[name] = value
    else:
        _append(fields, name, value)


def _append(block: CommentedMap, key: str, value: Any) -> None:
    """Add a key at the end of a block, before the comment or blank line that follows it."""
    last = next(reversed(block), None) if len(block) else None
    block[key] = value
    trailing = block.ca.items.get(last) if last is not None else None
    if trailing and len(trailing) > 2 and trailing[2] is not None:
        block.ca.items[key] = [None, None, trailing[2], None]
        trailing[2] = None


def _add_spelling(fields: CommentedMap, name: str, canonical: str, spelling: str) -> None:
    canonical, spelling = canonical.strip(), spelling.strip()
    if not canonical or not spelling:
        raise EditError("a value map entry needs a canonical value and a CRM spelling")
    current = _child(fields, name, f"objects.fields.{name}")
    if not isinstance(current, dict):  # the shorthand `industry: Industry` grows a block
        block = CommentedMap([("field", current), ("values", CommentedMap())])
        fields[name] = block
        current = block
    if "values" not in current or current["values"] is None:
        current["values"] = CommentedMap()
    values = current["values"]
    for existing, spellings in list(values.items()):  # one meaning per spelling
        if existing == canonical:
            continue
        listed = spellings if isinstance(spellings, list) else [spellings]
        if any(str(s).casefold() == spelling.casefold() for s in listed):
            remaining = [s for s in listed if str(s).casefold() != spelling.casefold()]
            values[existing] = _flow(remaining)
    spellings = values.get(canonical)
    if spellings is None:
        values[canonical] = _flow([spelling])
    elif isinstance(spellings, list):
        if not any(str(s).casefold() == spelling.casefold() for s in spellings):
            spellings.append(spelling)
    else:
        values[canonical] = _flow([spellings, spelling])


def _flow(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq
