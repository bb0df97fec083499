"""Mapped fields that the export or the org lacks, judged by how much they hurt.

A mapping that names a column the export does not have (or a field the org does not
have) reads that canonical field as empty on every account. When the criteria use it
(directly, or through a derived field: `employee_growth` needs `employees`), every score
is wrong without a word: that is an error. When nothing uses it (an optional enrichment
field), a warning. Either way the message offers the closest real name ("did you mean").

`icp mappings validate --source DIR` runs this against an export's header offline (what
CI can do on every change); `--live` runs it against the org's describe.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.mapping import ID_FIELDS, CrmMapping
from icp_engine.scoring.features import DERIVED_FIELDS, available_fields
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.sync.config import load_config, read_document
from icp_engine.sync.sourcedata import EXPORT_ABSENT
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem, YamlDocument

DEAL_INPUTS = ("account_id", "is_won", "is_closed", "amount")
"""Opportunity fields the deal aggregates (won_deals, is_customer...) are computed from."""


def used_fields(mapping: CrmMapping, icp: IcpCriteria) -> dict[str, set[str]]:
    """Canonical fields per object that scoring depends on: ids, and what any rule tests."""
    fields = available_fields(mapping.field_types("account"))
    tested = {condition.field for _, condition, _ in icp.located_conditions(fields)}
    account = {ID_FIELDS["account"]}
    opportunity = {ID_FIELDS["opportunity"], "account_id"}
    for name in tested:
        kind_inputs = DERIVED_FIELDS.get(name)
        if kind_inputs is None:
            account.add(name)
        elif kind_inputs[1]:
            account.update(kind_inputs[1])
        else:  # a deal aggregate: computed from the opportunities
            opportunity.update(DEAL_INPUTS)
    return {"account": account, "opportunity": opportunity}


def check_fields(
    mapping: CrmMapping,
    icp: IcpCriteria,
    described: Mapping[str, Mapping[str, object]],
    document: YamlDocument,
    absent: str,
) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """(errors, warnings) for mapped fields absent from `described` (an export or an org).

    Args:
        mapping: the CRM mapping.
        icp: the criteria in use (which fields hurt when missing).
        described: object kind -> CRM field name -> info (a connector's `describe()`).
        document: the mapping file, to locate each problem.
        absent: how a missing name is announced, with `{object}` for the CRM object:
            EXPORT_ABSENT, "{object} has no field the integration user
            can read".
    """
    used = used_fields(mapping, icp)
    errors: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    for kind in ("account", "opportunity"):
        object_map = getattr(mapping.objects, kind)
        available = described.get(kind, {})
        if not available:
            continue
        for canonical, spec in object_map.fields.items():
            if "." in spec.field or spec.field in available:  # a.b: an association
                continue
            hint = closest(spec.field, list(available))
            subject = f"{absent.format(object=object_map.object)} {spec.field!r}"
            subject += f" (did you mean {hint!r}?)" if hint else ""
            path = ("objects", kind, "fields", canonical)
            if canonical in used[kind]:
                message = (
                    f"{subject}; {canonical!r} would be empty on every record and the "
                    "criteria that use it would never match"
                )
                errors.append(document.problem(path, message))
            else:
                message = f"{subject}; {canonical!r} reads as empty (nothing scores on it)"
                warnings.append(document.problem(path, message))
    return errors, warnings


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate `name` was most likely meant to be (ignoring case), if any is close."""
    folded = {c.casefold(): c for c in candidates}
    if name.casefold() in folded:
        return folded[name.casefold()]
    hits = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.8)
    return folded[hits[0]] if hits else None


def check_export(
    crms: tuple[str, ...], directory: Path | None, state_dir: Path | None, source: Path
) -> tuple[list[ConfigProblem], list[ConfigProblem], list[str]]:
    """Check each valid mapping of `crms` against the CSV export in `source` (headers only).

    Returns (errors, warnings, the CRMs checked). A mapping whose object files are not in
    `source` (a HubSpot mapping beside a Salesforce export) is not checked; if no mapping
    could be, that is an error naming the files expected.
    """
    errors: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    checked: list[str] = []
    expected: list[str] = []
    for crm in crms:
        try:
            config = load_config(crm, directory, state_dir)
        except ConfigError:
            continue  # already reported by the plain validation
        connector = CsvConnector(config.mapping, source)
        files = [connector.path(kind) for kind in ("account", "opportunity")]
        expected += [str(f) for f in files]
        if not all(f.is_file() for f in files):
            continue
        document = read_document(directory, f"{crm}.yaml")
        found = check_fields(
            config.mapping,
            config.icp,
            connector.describe(),
            document,
            EXPORT_ABSENT,
        )
        errors += found[0]
        warnings += found[1]
        checked.append(crm)
    if not checked and expected:
        listed = ", ".join(dict.fromkeys(expected))
        message = f"no export to check: expected {listed}"
        errors.append(ConfigProblem(str(source), None, (), message))
    return errors, warnings, checked
