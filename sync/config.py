"""Find, load and validate the mapping files, reporting every mistake in one pass.

Each layer owns its schema (`connectors.mapping.CrmMapping`, `scoring.schema.IcpCriteria`);
this module reads the YAML, runs both, checks one against the other (a criterion on a
field the CRM mapping does not provide) and turns every error into a `ConfigProblem`
naming file, line, key, what was expected, what was found and the valid values.
"""

from __future__ import annotations

import difflib
import functools
import logging
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from icp_engine import connectors, mappings
from icp_engine.connectors.api_names import name_problems
from icp_engine.connectors.enrichment import EnrichmentConfig
from icp_engine.connectors.mapping import CrmMapping
from icp_engine.scoring.features import DERIVED_FIELDS, available_fields
from icp_engine.scoring.schema import IcpCriteria, condition_problems
from icp_engine.sync.operate_config import Operate, load_operate, nurture_output_problems
from icp_engine.sync.versions import MANUAL, Version, VersionError, VersionStore
from icp_engine.sync.yamlfile import (
    ConfigError,
    ConfigProblem,
    KeyPath,
    YamlDocument,
    load_yaml,
    read_yaml,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)
CRMS = connectors.AVAILABLE
"""The CRMs a command accepts: every connector `icp_engine.connectors` provides."""
_NOT_CRITERIA = frozenset({"scoring", "learning"})
"""icp.yaml keys the engine reads beside the criteria (`_scoring_source`, `_learning`)."""
_TYPE_WORDS = {
    "str", "int", "float", "bool", "date", "datetime", "list", "dict", "none",
    "literal", "is-instance", "function-after", "function-before", "union", "tagged-union",
}  # fmt: skip


class LearningSetting(BaseModel):
    """`learning:` in icp.yaml: how `icp train` learns (read here, not by the schema).

    `objective`: `win_rate` ranks by the chance of winning; `expected_value` by the
    chance of winning times the expected deal size. `tier_shares`: the target share of
    accounts per tier but the lowest, which takes the rest (default A 15%, B 25%, C 30%).
    """

    model_config = ConfigDict(extra="forbid")
    objective: Literal["win_rate", "expected_value"] = "win_rate"
    tier_shares: dict[str, Annotated[float, Field(gt=0, lt=1)]] | None = None

    @model_validator(mode="after")
    def _shares(self) -> LearningSetting:
        if self.tier_shares and sum(self.tier_shares.values()) >= 1:
            total = sum(self.tier_shares.values())
            msg = (
                f"tier_shares must leave the lowest tier a share: they add up to {total:g}, "
                "expected less than 1"
            )
            raise ValueError(msg)
        return self


@dataclass(frozen=True)
class Config:
    """The validated configuration one run works from; built once by `load_config`, never
    changed after (a run's enrichment report travels in its result, not here)."""

    crm: str
    mapping: CrmMapping
    icp: IcpCriteria
    files: dict[str, str] = field(default_factory=dict)
    """Which file each part came from (`mapping`, `icp`), for logs and fingerprints."""
    warnings: list[ConfigProblem] = field(default_factory=list)
    manual_icp: IcpCriteria | None = None
    """The hand-written `icp.yaml` (also when a learned version is in use as `icp`)."""
    criteria_version: str = MANUAL
    """`v0003` when a learned version scores, `manual` for the hand-written file."""
    criteria_label: str = ""
    """Which criteria are in use, for people: `learned v0003` or `manual mappings/icp.yaml`."""
    criteria_pinned: bool = False
    """icp.yaml says `scoring: {source: manual}`: learned versions are never used."""
    learning: LearningSetting = field(default_factory=LearningSetting)
    """`learning:` in icp.yaml: how `icp train` learns."""
    enrichment: EnrichmentConfig = field(default_factory=EnrichmentConfig)
    """`enrichment.yaml` in the mappings directory (no sources when absent)."""
    enrichment_dir: Path = field(default_factory=Path)
    """Where relative enrichment paths are read from (the mappings directory)."""

    def account_field_types(self) -> dict[str, str]:
        """Account fields of the CRM mapping plus those the enrichment sources join."""
        return {**self.mapping.field_types("account"), **self.enrichment.field_types()}

    operate: Operate = field(default_factory=Operate)
    """`operate.yaml`: alerts, audiences, nurture tracks (`sync.operate_config`)."""

    def __post_init__(self) -> None:  # defaults that depend on other fields, set once
        if self.manual_icp is None:
            object.__setattr__(self, "manual_icp", self.icp)
        if not self.criteria_label:
            label = f"manual {self.files.get('icp', 'icp.yaml')}"
            object.__setattr__(self, "criteria_label", label)


class _ScoringSetting(BaseModel):
    """`scoring:` in icp.yaml: which criteria `sync` uses (read here, not by the schema)."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["manual", "learned"] = "learned"


def locate(directory: Path | None, name: str) -> tuple[Path | None, str]:
    """The file to read for `name`: DIR/name if anything is there, else the bundled default.

    Anything at DIR/name counts (a directory, a dangling symlink): reading it reports
    what is wrong, rather than silently scoring with the bundled default.
    Returns (path or None for the bundled copy, label for messages).
    """
    if directory is not None:
        path = directory / name
        if path.exists() or path.is_symlink():
            return path, str(path)
    return None, f"(bundled) mappings/{name}"


def near_misses(directory: Path, name: str) -> list[str]:
    """Files in `directory` that look meant to be `name` (`icp.yml`, `ICP.yaml`)."""
    stem = Path(name).stem.casefold()
    try:
        entries = [p.name for p in directory.iterdir()]
    except OSError:
        return []
    return sorted(
        entry
        for entry in entries
        if entry != name and entry.casefold() in (f"{stem}.yaml", f"{stem}.yml")
    )


def read_document(directory: Path | None, name: str) -> YamlDocument:
    path, label = locate(directory, name)
    if path is not None:
        return read_yaml(path, label)
    if directory is not None and (misses := near_misses(directory, name)):
        where = str(directory / name)
        message = (
            f"not found, but {', '.join(misses)} is there: did you mean it? Rename it to "
            f"{name} (only that name is read); without it the bundled default would be used"
        )
        return YamlDocument(where, None, {}, [ConfigProblem(where, None, (), message)])
    return load_yaml(mappings.default(name).read_text(encoding="utf-8"), label)


def mappings_dir(option: Path | None) -> Path | None:
    """`--mappings DIR` if given (must exist), else `./mappings` if present, else None."""
    if option is not None:
        if not option.is_dir():
            problem = ConfigProblem(str(option), None, (), "--mappings: no such directory")
            raise ConfigError([problem])
        return option
    default = Path("mappings")
    return default if default.is_dir() else None


def load_config(crm: str, directory: Path | None, state_dir: Path | None = None) -> Config:
    """Load and cross-check `<crm>.yaml` and `icp.yaml`; raise `ConfigError` listing all.

    With `state_dir`, the criteria in use are its active learned version (`icp train`),
    unless `icp.yaml` pins itself with `scoring: {source: manual}` or none is active.
    """
    mapping_doc = read_document(directory, f"{crm}.yaml")
    icp_doc = read_document(directory, "icp.yaml")
    problems: list[ConfigProblem] = []
    source = _scoring_source(icp_doc, problems)
    learning = _learning(icp_doc, problems)
    icp_doc = _criteria_part(icp_doc)
    mapping = _validate(mapping_doc, CrmMapping, problems)
    enrichment = _enrichment(directory, mapping, problems)
    icp = _validate(icp_doc, IcpCriteria, problems)
    warnings: list[ConfigProblem] = []
    if mapping is not None:
        if mapping.crm != crm:
            problems.append(
                mapping_doc.problem(("crm",), f"must be {crm!r} in {crm}.yaml. Got {mapping.crm!r}")
            )
        problems += [mapping_doc.problem(p, m) for p, m in mapping.problems()]
        if mapping.crm == crm:  # names that reach a query or a path (SOQL injection)
            problems += [mapping_doc.problem(p, m) for p, m in name_problems(mapping)]
        settings = connectors.settings_model(crm)
        if settings is not None:
            _validate_part(mapping_doc, ("settings",), mapping.settings, settings, problems)
    if mapping is not None:
        fields = available_fields({**mapping.field_types("account"), **enrichment.field_types()})
        if icp is not None:
            unmapped = {k: v for k, v in _bundled_fields().items() if k not in fields}
            problems += [icp_doc.problem(p, m) for p, m in icp.problems({**fields, **unmapped})]
            warnings += _value_warnings(icp, mapping, icp_doc, fields)
            warnings += _unmapped_warnings(icp, icp_doc, fields, unmapped, f"{crm}.yaml")
        elif isinstance(icp_doc.data, dict):  # the rules that are well-formed, checked anyway
            problems += [icp_doc.problem(p, m) for p, m in condition_problems(icp_doc.data, fields)]
    fields_known = available_fields(mapping.field_types("account")) if mapping else None
    operate = load_operate(directory, fields_known, problems)
    if mapping is not None:
        problems += nurture_output_problems(mapping, operate, mapping_doc)
    files = {"mapping": mapping_doc.file, "icp": icp_doc.file}
    active = _active_version(state_dir, problems) if source == "learned" else None
    learned = None
    if active is not None:
        learned_doc = read_yaml(active.yaml_path)
        learned = check_criteria(learned_doc, mapping, problems, enrichment)
    if icp is not None and learning.tier_shares:
        lowest = min(icp.tiers, key=lambda name: icp.tiers[name]) if icp.tiers else None
        for name in learning.tier_shares:
            if name not in icp.tiers or name == lowest:
                valid = ", ".join(n for n in icp.tiers if n != lowest)
                problems.append(
                    icp_doc.problem(
                        ("learning", "tier_shares", name),
                        f"must name a tier above the lowest ({lowest}, which takes the rest). "
                        f"Got {name!r}; valid: {valid}",
                    )
                )
    if problems or mapping is None or icp is None:
        raise ConfigError(problems)
    manual_label = f"manual {files['icp']}"
    if learned is not None and active is not None:
        scoring, version = learned, active.name
        files = {**files, "icp": str(active.yaml_path)}
        label = f"learned {active.name} ({active.yaml_path})"
    else:
        scoring, version = icp, MANUAL
        label = manual_label
        if source == "manual":
            label += " (pinned: scoring: {source: manual})"
    return Config(
        crm,
        mapping,
        scoring,
        files,
        warnings,
        manual_icp=icp,
        criteria_version=version,
        criteria_label=label,
        criteria_pinned=source == "manual",
        learning=learning,
        enrichment=enrichment,
        enrichment_dir=directory or Path(),
        operate=operate,
    )


def criteria_source(directory: Path | None) -> str:
    """What icp.yaml's `scoring: {source: ...}` says: `manual` pins it, else `learned`."""
    problems: list[ConfigProblem] = []
    return _scoring_source(read_document(directory, "icp.yaml"), problems)


def check_criteria(
    document: YamlDocument,
    mapping: CrmMapping | None,
    problems: list[ConfigProblem],
    enrichment: EnrichmentConfig | None = None,
) -> IcpCriteria | None:
    """Validate a criteria document as `icp.yaml` is validated (against `mapping` if given)."""
    criteria = _validate(document, IcpCriteria, problems)
    if criteria is not None and mapping is not None:
        joined = enrichment.field_types() if enrichment is not None else {}
        fields = available_fields({**mapping.field_types("account"), **joined})
        problems += [document.problem(p, m) for p, m in criteria.problems(fields)]
    return criteria


def _scoring_source(document: YamlDocument, problems: list[ConfigProblem]) -> str:
    """What `scoring:` in icp.yaml says (the document is left as read)."""
    if not isinstance(document.data, dict) or "scoring" not in document.data:
        return "learned"
    value = document.data["scoring"]
    before = len(problems)
    if not isinstance(value, dict):
        problems.append(
            document.problem(("scoring",), f"must be {{source: manual|learned}}. Got {value!r}")
        )
        return "manual"
    _validate_part(document, ("scoring",), value, _ScoringSetting, problems)
    if len(problems) > before:
        return "manual"
    return _ScoringSetting.model_validate(value).source


def _criteria_part(document: YamlDocument) -> YamlDocument:
    """icp.yaml without `scoring:` and `learning:` (read by `_scoring_source` and
    `_learning`; the criteria schema does not know them): a new document, the parsed one
    is not edited."""
    if not isinstance(document.data, dict) or not _NOT_CRITERIA & document.data.keys():
        return document
    data = {k: v for k, v in document.data.items() if k not in _NOT_CRITERIA}
    return replace(document, data=data)


def _learning(document: YamlDocument, problems: list[ConfigProblem]) -> LearningSetting:
    """What `learning:` in icp.yaml says (the document is left as read)."""
    if not isinstance(document.data, dict) or "learning" not in document.data:
        return LearningSetting()
    value = document.data["learning"]
    if not isinstance(value, dict):
        problems.append(
            document.problem(
                ("learning",), f"must be a mapping (objective, tier_shares). Got {value!r}"
            )
        )
        return LearningSetting()
    before = len(problems)
    _validate_part(document, ("learning",), value, LearningSetting, problems)
    if len(problems) > before:
        return LearningSetting()
    return LearningSetting.model_validate(value)


def _enrichment(
    directory: Path | None, mapping: CrmMapping | None, problems: list[ConfigProblem]
) -> EnrichmentConfig:
    """`enrichment.yaml` from the mappings directory, validated (empty when absent)."""
    path, _ = locate(directory, "enrichment.yaml")
    if path is None:
        return EnrichmentConfig()
    document = read_yaml(path, str(path))
    before = len(problems)
    enrichment = _validate(document, EnrichmentConfig, problems)
    if enrichment is None or len(problems) > before:
        return EnrichmentConfig()
    crm_fields = dict(mapping.field_types("account")) if mapping is not None else {}
    problems += [document.problem(p, m) for p, m in enrichment.problems(crm_fields)]
    return enrichment


def _active_version(state_dir: Path | None, problems: list[ConfigProblem]) -> Version | None:
    if state_dir is None:
        return None
    try:
        return VersionStore(state_dir).active()
    except VersionError as exc:
        problems.append(ConfigProblem(str(state_dir), None, (), str(exc)))
        return None


def admin_crms(directory: Path | None) -> tuple[str, ...]:
    """The CRMs whose mapping files the admin has in `directory` (all, for the bundled set).

    A CSV-only admin's `mappings/` holds csv.yaml and icp.yaml: the bundled Salesforce and
    HubSpot files are not theirs, so what they lack is not the admin's problem.
    """
    if directory is None:
        return CRMS
    present = tuple(crm for crm in CRMS if (directory / f"{crm}.yaml").is_file())
    return present or CRMS


def validate_all(
    directory: Path | None, state_dir: Path | None = None, crms: tuple[str, ...] = CRMS
) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """Check mapping files (each CRM mapping of `crms` with icp.yaml, and the active learned
    criteria of `state_dir` if any); return (errors, warnings)."""
    errors: dict[tuple[object, ...], ConfigProblem] = {}
    warnings: dict[tuple[object, ...], ConfigProblem] = {}
    for crm in crms:
        try:
            for warning in load_config(crm, directory, state_dir).warnings:
                warnings.setdefault((warning.file, warning.line, warning.path), warning)
        except ConfigError as exc:
            for problem in exc.problems:
                errors.setdefault(
                    (problem.file, problem.line, problem.path, problem.message), problem
                )
    return list(errors.values()), list(warnings.values())


def _validate(document: YamlDocument, model: type[_M], problems: list[ConfigProblem]) -> _M | None:
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


def _validate_part(
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


@functools.cache
def _bundled_fields() -> dict[str, str]:
    """Every field criteria may use with one of the bundled mappings or another (the
    bundled icp.yaml is shared by every CRM; HubSpot's default maps standard properties
    only, so `funding_stage` is a field it knows but does not provide)."""
    found: dict[str, str] = {}
    # next to this package, not `mappings.default`: `python -m` in a folder that has its
    # own mappings/ imports that folder as `mappings`
    bundled = Path(__file__).resolve().parent.parent / "mappings"
    for crm in CRMS:
        path = bundled / f"{crm}.yaml"
        if not path.is_file():  # pragma: no cover - an install without the defaults
            continue
        data = load_yaml(path.read_text(encoding="utf-8"), crm).data
        try:
            mapping = CrmMapping.model_validate(data)
        except ValidationError:  # pragma: no cover - the bundled files are tested valid
            continue
        found.update(available_fields(mapping.field_types("account")))
    return found


def _unmapped_warnings(
    icp: IcpCriteria,
    document: YamlDocument,
    fields: dict[str, str],
    unmapped: dict[str, str],
    mapping_name: str,
) -> list[ConfigProblem]:
    """A criterion on a field another bundled mapping provides and this one does not: it
    matches no account (a warning, not an error: the shared criteria stay valid for every
    CRM, and mapping the field brings the criterion to life)."""
    found = []
    for path, condition, _ in icp.located_conditions({**fields, **unmapped}):
        if condition.field not in unmapped:
            continue
        rule = _at(document.data, path[:3] if path[0] == "criteria" else path[:2])
        name = rule.get("name") if isinstance(rule, dict) else None
        what = f"criterion {name!r}" if name else ".".join(str(p) for p in path)
        needs = [i for i in DERIVED_FIELDS.get(condition.field, ("", ()))[1] if i not in fields]
        via = f" (computed from {', '.join(needs)})" if needs else ""
        first = needs[0] if needs else condition.field
        message = (
            f"{what} uses {condition.field}{via}, which {mapping_name} does not map: it "
            f"scores no account. To use it, map a CRM field to {first} under "
            "objects.account.fields"
        )
        found.append(document.problem((*path, "field"), message))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _value_warnings(
    icp: IcpCriteria, mapping: CrmMapping, document: YamlDocument, fields: dict[str, str]
) -> list[ConfigProblem]:
    """Condition values that no value map produces: often a spelling slip."""
    found = []
    for path, condition, _ in icp.located_conditions(fields):
        domain = mapping.value_domain("account", condition.field)
        op = condition.operators()[0]
        if not domain or op not in ("eq", "in", "not_in"):
            continue
        values = condition.operand()
        folded = {d.casefold() for d in domain}
        for value in values if isinstance(values, list) else [values]:
            if str(value).casefold() not in folded:
                message = (
                    f"{value!r} is not a value the {mapping.crm} mapping produces for "
                    f"{condition.field!r} ({', '.join(sorted(domain))}); it only matches "
                    "CRM values spelled exactly so"
                )
                found.append(document.problem((*path, op), message))
    return found
