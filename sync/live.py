"""Check a mapping against the CRM's own fields, and create the output fields it lacks.

`icp mappings validate --live` describes the mapped objects once and reports, all at
once and located in the mapping file: mapped fields that do not exist or that the
integration user cannot read (an error when the criteria use them, else a warning; see
`sync.fieldcheck`), told apart from fields that exist but field-level security hides;
output fields that do not exist, are read-only, have a
type the value cannot be written to, are shorter than the text the engine writes, or
are picklists lacking a value the engine writes (a tier, a segment, a route).
`icp mappings apply` creates the missing output fields through the connector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from icp_engine.connectors.base import Connector, FieldCreation, FieldInfo
from icp_engine.connectors.mapping import OutputField
from icp_engine.sync.config import Config, read_document
from icp_engine.sync.fieldcheck import check_fields, used_fields
from icp_engine.sync.sourcedata import ORG_ABSENT
from icp_engine.sync.yamlfile import ConfigProblem, YamlDocument

NUMBER_TYPES = frozenset({"double", "int", "long", "currency", "percent", "number"})
PICKLIST_TYPES = frozenset({"picklist", "enumeration", "combobox", "multipicklist"})
TEXT_TYPES = frozenset({"string", "textarea", "text", "url", "phone", "email"}) | PICKLIST_TYPES
_ACCEPTS = {"number": NUMBER_TYPES, "text": TEXT_TYPES, "picklist": TEXT_TYPES}


@dataclass
class LiveCheck:
    """What `--live` found: errors, warnings, and the outputs `apply` would create."""

    errors: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)
    missing_outputs: dict[str, OutputField] = field(default_factory=dict)


def mapping_document(config: Config, directory: Path | None) -> YamlDocument:
    """The mapping file as YAML with line numbers, to locate live problems."""
    return read_document(directory, f"{config.crm}.yaml")


def written_values(config: Config, key: str, spec: OutputField) -> list[str]:
    """Every value the engine can write to a text or picklist output (CRM spelling)."""
    icp = config.icp
    if key == "tier":
        values = list(icp.tiers)
    elif key == "segment":
        values = [s.name for s in icp.segments]
    elif key == "route":
        values = [r.route for r in icp.routing]
    else:
        return []
    return [spec.values.get(v, v) for v in values]


def hidden_field(obj: str, name: str) -> str:
    """A field that exists but that field-level security hides from the integration user
    (issue 13, item 6): describe does not list it, the Tooling API's FieldDefinition does."""
    return (
        f"{obj}.{name} exists but the integration user cannot see it (field-level "
        f"security): Setup > Object Manager > {obj} > Fields & Relationships > {name} > "
        "Set Field-Level Security: Visible (and not Read-Only, for an output) for the "
        "integration user's profile, or Read and Edit in a permission set assigned to it"
    )


def check_live(
    config: Config, described: Mapping[str, Mapping[str, FieldInfo]], document: YamlDocument
) -> LiveCheck:
    """Compare the mapping with `described` (the connector's `describe()`)."""
    check = LiveCheck()
    errors, warnings = check_fields(
        config.mapping,
        config.icp,
        described,
        document,
        ORG_ABSENT,
    )
    check.errors += errors
    check.warnings += warnings
    used = used_fields(config.mapping, config.icp)
    for kind in ("account", "opportunity"):  # present, but hidden from this user
        object_map = getattr(config.mapping.objects, kind)
        for canonical, spec in object_map.fields.items():
            found = described.get(kind, {}).get(spec.field)
            if found is None or found.visible:
                continue
            problem = document.problem(
                ("objects", kind, "fields", canonical), hidden_field(object_map.object, spec.field)
            )
            (check.errors if canonical in used[kind] else check.warnings).append(problem)
    accounts = described.get("account", {})
    obj = config.mapping.objects.account.object
    for key, spec in config.mapping.outputs.items():
        path = ("outputs", key)
        info = accounts.get(spec.field)
        if info is not None and not info.visible:
            check.errors.append(document.problem(path, hidden_field(obj, spec.field)))
            continue
        if info is None:
            check.missing_outputs[key] = spec
            check.errors.append(
                document.problem(
                    path,
                    f"{obj} has no field {spec.field!r} (or the integration user cannot see "
                    f"it): `icp mappings apply --crm {config.crm}` creates it",
                )
            )
            continue
        check.errors += [
            document.problem(path, m) for m in _output_problems(config, key, spec, info)
        ]
        if spec.type == "number" and info.scale is not None and info.scale < spec.scale:
            check.warnings.append(
                document.problem(
                    (*path, "scale"),
                    f"{spec.field} stores {info.scale} decimal places; set scale: {info.scale} "
                    "so values are compared as the CRM stores them",
                )
            )
    return check


def _output_problems(config: Config, key: str, spec: OutputField, info: FieldInfo) -> list[str]:
    problems = []
    kind = info.type.lower()
    if not info.updateable:
        problems.append(f"{spec.field} is read-only for the integration user (not updateable)")
    if kind not in _ACCEPTS[spec.type]:
        wanted = ", ".join(sorted(_ACCEPTS[spec.type]))
        problems.append(
            f"{spec.field} is a {info.type} field; a {spec.type} output needs one of: {wanted}"
        )
        return problems
    if spec.type == "number":
        return problems
    values = written_values(config, key, spec)
    if info.length and kind not in PICKLIST_TYPES:
        longest = max((len(v) for v in values), default=0)
        if key == "reasons" or spec.length:
            wanted_length = spec.length or longest
            if spec.length is None and key == "reasons":
                problems.append(
                    f"{spec.field} holds {info.length} characters: set length: {info.length} "
                    "so reasons are cut at a whole reason instead of being rejected"
                )
            elif wanted_length > info.length:
                problems.append(
                    f"{spec.field} holds {info.length} characters, shorter than length: "
                    f"{wanted_length}; set length: {info.length} or lengthen the field"
                )
        if longest > info.length:
            too_long = [v for v in values if len(v) > info.length]
            problems.append(
                f"{spec.field} holds {info.length} characters; {len(too_long)} value(s) the "
                f"engine writes are longer, e.g. {too_long[0]!r}"
            )
    if kind in PICKLIST_TYPES and info.picklist_values:
        lacking = [v for v in values if v not in info.picklist_values]
        if lacking:
            problems.append(
                f"{spec.field} is a picklist lacking {', '.join(map(repr, lacking))}; it has "
                f"{', '.join(map(repr, info.picklist_values))}"
            )
    return problems


def create_missing(
    config: Config, connector: Connector, missing: Mapping[str, OutputField]
) -> list[FieldCreation]:
    """Create the missing outputs; a picklist gets the values the engine writes."""
    specs = []
    for key, spec in missing.items():
        if spec.type == "picklist" and not spec.values:
            values = written_values(config, key, spec)
            specs.append(spec.model_copy(update={"values": {v: v for v in values}}))
        else:
            specs.append(spec)
    return connector.create_output_fields(specs)


def grant_hidden(
    config: Config,
    connector: Connector,
    described: Mapping[str, Mapping[str, FieldInfo]],
    created: list[FieldCreation],
) -> list[FieldCreation]:
    """Grant the integration user the fields `apply` just created and the mapped ones
    field-level security hides (issue 13, item 6): outputs Read and Edit, inputs Read.

    One answer per field (`created` True: granted); none for a CRM without field-level
    security.
    """
    outputs = {spec.field for spec in config.mapping.outputs.values()}
    wanted: dict[str, tuple[str, str, bool]] = {}
    account = config.mapping.objects.account.object
    for result in created:
        if result.created:
            wanted[result.field] = (account, result.field, True)
    for kind in ("account", "opportunity"):
        obj = getattr(config.mapping.objects, kind).object
        for name, info in described.get(kind, {}).items():
            if not info.visible and name not in wanted:
                wanted[name] = (obj, name, kind == "account" and name in outputs)
    granted = connector.grant_field_access(list(wanted.values())) if wanted else {}
    done = "the integration user can now read{} it (permission set 'ICP Engine')"
    return [
        FieldCreation(
            name,
            granted[name] is None,
            done.format(" and edit" if edit else "")
            if granted[name] is None
            else str(granted[name]),
        )
        for _, name, edit in wanted.values()
        if name in granted
    ]
