"""`icp mappings`: create, check, compare and apply the mapping files."""

from __future__ import annotations

import difflib
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import icp_engine.mappings as bundled
from icp_engine import connectors
from icp_engine.sync import criteria_changes, numbers
from icp_engine.sync.cli import render
from icp_engine.sync.cli.options import (
    common,
    emit,
    fail,
    guarded,
    mappings_option,
    say,
    state_option,
)
from icp_engine.sync.config import (
    CRMS,
    Config,
    admin_crms,
    check_criteria,
    criteria_source,
    load_config,
    locate,
    mappings_dir,
    validate_all,
)
from icp_engine.sync.fieldcheck import check_export
from icp_engine.sync.live import (
    LiveCheck,
    check_live,
    create_missing,
    grant_hidden,
    mapping_document,
)
from icp_engine.sync.state.store import StateStore
from icp_engine.sync.versions import Version, VersionError, VersionStore
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem, load_yaml, read_yaml


@click.group("mappings")
def mappings_group() -> None:
    """Create, check, compare and apply the mapping files; roll back learned criteria."""


@mappings_group.command("init")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("mappings"))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def mappings_init(directory: Path, force: bool) -> None:
    """Write editable copies of the default mapping files into DIRECTORY."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in bundled.FILES:
        target = directory / name
        if target.exists() and not force:
            click.echo(f"kept    {target} (exists; --force to replace)")
            continue
        with bundled.default(name).open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        click.echo(f"wrote   {target}")


@mappings_group.command("validate")
@mappings_option
@click.option("--crm", type=click.Choice(CRMS), help="Check only this CRM's mapping with icp.yaml.")
@click.option("--live", is_flag=True, help="Also check the fields against the CRM itself.")
@click.option(
    "--source",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also check the mapped columns against this export's headers (offline, for CI).",
)
@state_option
@common
@guarded
def mappings_validate(
    mappings_option: Path | None,
    crm: str | None,
    live: bool,
    source: Path | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Check the mapping files you have (./mappings or --mappings) for the CRMs they
    target; report all problems at once (exit 2 if any)."""
    directory = mappings_dir(mappings_option)
    if live and crm in (None, "csv"):
        fail(2, "--live checks a CRM's own fields: add --crm salesforce or --crm hubspot")
    if crm:
        try:
            config = load_config(crm, directory, state_dir)
            warnings: list[Any] = list(config.warnings)
            errors: list[Any] = []
        except ConfigError as exc:
            errors, warnings = exc.problems, []
        if live and not errors:
            check = _live_check(config, directory)
            errors += check.errors
            warnings += check.warnings
    else:
        errors, warnings = validate_all(directory, state_dir, admin_crms(directory))
    if source is not None:
        found = check_export((crm,) if crm else admin_crms(directory), directory, state_dir, source)
        errors, warnings = errors + found[0], warnings + found[1]
    names = [f"{c}.yaml" for c in ([crm] if crm else admin_crms(directory))] + ["icp.yaml"]
    checked = [locate(directory, name)[1] for name in names]
    try:
        active = VersionStore(state_dir).active()
    except VersionError:  # already reported among the errors
        active = None
    if active is not None:
        checked.append(str(active.yaml_path))
    payload = {
        "checked": checked,
        "errors": [str(e) for e in errors],
        "warnings": [str(w) for w in warnings],
    }
    if not as_json:
        for warning in warnings:
            say("warning", str(warning))
        for error in errors:
            say("error", str(error))
    summary = (
        f"checked {', '.join(checked)}: {numbers.count(len(errors), 'error')}, "
        f"{numbers.count(len(warnings), 'warning')}"
    )

    def human() -> None:
        click.echo(summary)
        if source is None and not live:
            click.echo("(field names not checked: add --source DIR, an export, or --live)")

    emit(payload, as_json, summary, human)
    sys.exit(2 if errors else 0)


@mappings_group.command("diff")
@mappings_option
@state_option
@click.option("--yaml-diff", is_flag=True, help="Also print the full YAML diffs.")
@common
@guarded
def mappings_diff(
    mappings_option: Path | None, state_dir: Path, yaml_diff: bool, as_json: bool
) -> None:
    """Show how the edited mapping files differ from the bundled defaults, and how the
    active learned criteria differ from the previous version and from icp.yaml: criteria
    added, removed and re-weighted as a table (the YAML diff with --yaml-diff)."""
    directory = mappings_dir(mappings_option)
    comparisons = _comparisons(directory, state_dir)
    payload = {
        "comparisons": [
            {
                "before": c.before_label,
                "after": c.after_label,
                "differs": c.differs,
                "lines_added": c.added,
                "lines_removed": c.removed,
                "criteria_changes": [vars(r) for r in c.changes],
            }
            for c in comparisons
        ]
    }
    differing = [c for c in comparisons if c.differs]
    headline = (
        f"mappings diff: {len(differing)} of {len(comparisons)} comparisons differ"
        if comparisons
        else "mappings diff: nothing to compare"
    )
    emit(payload, as_json, headline, lambda: _show(directory, state_dir, comparisons, yaml_diff))


class _Comparison:
    """Two texts (a bundled file and its edited copy, or two criteria versions)."""

    def __init__(
        self, before: tuple[str, str], after: tuple[str, str], criteria: bool, title: str = ""
    ) -> None:
        self.before_label, self.after_label = before[1], after[1]
        self.title = title or f"{before[1]} vs {after[1]}"
        self.diff = _diff(before[0], after[0], before[1], after[1])
        lines = self.diff.splitlines()
        self.added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
        self.removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
        self.differs = bool(self.diff)
        self.changes: list[criteria_changes.Change] = []
        self.criteria = criteria
        if criteria and self.differs:
            parsed = [load_yaml(text, label).data for text, label in (before, after)]
            if all(isinstance(d, dict) for d in parsed):
                self.changes = criteria_changes.compare(parsed[0], parsed[1])


def _comparisons(directory: Path | None, state_dir: Path) -> list[_Comparison]:
    found: list[_Comparison] = []
    for name in bundled.FILES:
        if directory is None:
            break
        path = directory / name
        if path.is_file():
            ours = bundled.default(name).read_text(encoding="utf-8")
            theirs = path.read_text(encoding="utf-8-sig")
            found.append(
                _Comparison((ours, f"bundled/{name}"), (theirs, str(path)), name == "icp.yaml")
            )
    store = VersionStore(state_dir)
    if not store.versions():
        return found
    try:
        active = store.active()
    except VersionError as exc:
        fail(2, str(exc))
    if active is None:
        return found
    icp_path, label = locate(directory, "icp.yaml")
    text = icp_path.read_text(encoding="utf-8-sig") if icp_path else _bundled_icp()
    manual = (text, f"manual {label}")
    current = (active.yaml_path.read_text(encoding="utf-8"), f"learned {active.name} (active)")
    previous = store.previous(active)
    if previous is not None:
        before = (previous.yaml_path.read_text(encoding="utf-8"), f"learned {previous.name}")
        title = f"{previous.name} (previous) vs {active.name} (active)"
        found.append(_Comparison(before, current, True, title))
    found.append(_Comparison(manual, current, True, f"manual {label} vs {active.name} (active)"))
    return found


def _show(
    directory: Path | None, state_dir: Path, comparisons: list[_Comparison], yaml_diff: bool
) -> None:
    console = render.console()
    say = functools.partial(console.print, highlight=False)
    store = VersionStore(state_dir)
    saved = store.versions()
    if directory is None:
        say("No ./mappings directory: the bundled files are in use (icp mappings init).")
    if saved:
        say(f"Learned criteria in {store.directory}: {', '.join(v.name for v in saved)}")
        try:
            active = store.active()
        except VersionError as exc:
            fail(2, str(exc))
        label = locate(directory, "icp.yaml")[1]
        if active is None:
            say(f"Active: the hand-written {label} (icp mappings rollback VERSION to change)")
        else:
            pinned = criteria_source(directory) == "manual"
            say(
                f"Active: {active.name}"
                + (
                    f" (but {label} pins scoring: {{source: manual}}, so sync uses it)"
                    if pinned
                    else ""
                )
            )
    for comparison in comparisons:
        if not comparison.differs:
            say(f"{comparison.title}: no differences.")
            continue
        lines = (
            f"{numbers.count(comparison.added, 'line')} added, "
            f"{numbers.count(comparison.removed, 'line')} removed"
        )
        if comparison.criteria:
            if comparison.changes:
                console.print(criteria_changes.table(comparison.changes, comparison.title))
            else:
                say(
                    f"{comparison.title}: {lines}, but no difference in criteria, weights, "
                    "tiers, segments or routes (comments, descriptions or metadata only)."
                )
        else:
            say(f"{comparison.title}: {lines}.")
        if yaml_diff:
            say(f"--- {comparison.title} ---")
            console.print(comparison.diff, markup=False, highlight=False, end="")
    if not any(c.differs for c in comparisons):
        where = "the bundled files" if directory is None else f"{directory}"
        learned = "" if saved else f"; no learned criteria in {store.directory}"
        say(f"No differences to show ({where}{learned}).")
    elif not yaml_diff:
        say("The full YAML diffs: add --yaml-diff.")


def _diff(before: str, after: str, before_label: str, after_label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), before_label, after_label
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _bundled_icp() -> str:
    return bundled.default("icp.yaml").read_text(encoding="utf-8")


@mappings_group.command("rollback")
@click.argument("version", required=False)
@click.option("--manual", is_flag=True, help="Go back to the hand-written icp.yaml.")
@state_option
@mappings_option
@guarded
def mappings_rollback(
    version: str | None, manual: bool, state_dir: Path, mappings_option: Path | None
) -> None:
    """Make an earlier learned VERSION the active criteria (default: the one before the
    active one), or --manual to go back to the hand-written icp.yaml."""
    if version and manual:
        fail(2, "give a VERSION or --manual, not both")
    store = VersionStore(state_dir)
    saved = store.versions()
    if not saved and not manual:
        fail(2, f"no learned criteria versions in {store.directory}: run icp train first")
    with StateStore(state_dir) as state:
        state.acquire_lock()  # not while a sync or a train runs on this state
        try:
            target = _rollback_target(store, version, manual)
        except VersionError as exc:
            fail(2, str(exc))
        _activate_checked(store, target)
    _say_active(target, mappings_option)


def _activate_checked(store: VersionStore, target: Version | None) -> None:
    """Make `target` (None: the hand-written criteria) active once its criteria check clean."""
    if target is not None:
        problems: list[ConfigProblem] = []
        check_criteria(read_yaml(target.yaml_path), None, problems)
        if problems:
            raise ConfigError(problems)
    store.activate(target)


def _say_active(target: Version | None, mappings_option: Path | None) -> None:
    """Tell the user which criteria the next sync uses."""
    directory = mappings_dir(mappings_option)
    label = locate(directory, "icp.yaml")[1]
    if target is None:
        click.echo(f"active criteria: the hand-written {label}")
    else:
        click.echo(f"active criteria: learned {target.name} ({target.yaml_path})")
        if criteria_source(directory) == "manual":
            click.echo(f"note: {label} pins scoring: {{source: manual}}, so sync keeps using it")
    click.echo("The next sync rescores every account with them.")


@mappings_group.command("activate")
@click.argument("version")
@state_option
@mappings_option
@guarded
def mappings_activate(version: str, state_dir: Path, mappings_option: Path | None) -> None:
    """Make a saved learned VERSION (e.g. a candidate `icp train` did not make live) the
    active criteria."""
    store = VersionStore(state_dir)
    with StateStore(state_dir) as state:
        state.acquire_lock()  # not while a sync or a train runs on this state
        try:
            target = store.get(version)
        except VersionError as exc:
            fail(2, str(exc))
        _activate_checked(store, target)
    _say_active(target, mappings_option)


def _rollback_target(store: VersionStore, version: str | None, manual: bool) -> Version | None:
    if manual:
        return None
    if version:
        return store.get(version)
    active = store.active()
    if active is None:
        listed = ", ".join(v.name for v in store.versions())
        raise VersionError(
            f"the hand-written criteria are active: name the version to activate ({listed})"
        )
    previous = store.previous(active)
    if previous is None:
        raise VersionError(
            f"{active.name} is the oldest version: nothing earlier to roll back to "
            "(--manual goes back to the hand-written icp.yaml)"
        )
    return previous


@mappings_group.command("apply")
@click.option("--crm", type=click.Choice(CRMS), default="csv", show_default=True)
@mappings_option
@common
@guarded
def mappings_apply(crm: str, mappings_option: Path | None, as_json: bool) -> None:
    """Create the output fields in the CRM where its API allows; else say what to create."""
    directory = mappings_dir(mappings_option)
    config = load_config(crm, directory)
    if crm == "csv":
        click.echo("CSV exports need no fields created here. In Salesforce, create on Account:")
        for key, spec in config.mapping.outputs.items():
            size = f", length {spec.length}" if spec.length else ""
            scale = f"(18, {spec.scale})" if spec.type == "number" else ""
            click.echo(f"  {spec.field:<20} {spec.type}{scale}{size}   <- {key}")
        return
    connector = connectors.create(crm, config.mapping)
    connector.connect()
    described = connector.describe()
    check = check_live(config, described, mapping_document(config, directory))
    created = create_missing(config, connector, check.missing_outputs)
    access = grant_hidden(config, connector, described, created)
    if as_json:
        click.echo(json.dumps({"fields": [vars(c) for c in created],
                               "access": [vars(a) for a in access]}))  # fmt: skip
    elif not created and not access:
        click.echo(f"all {len(config.mapping.outputs)} output fields exist in {crm}")
    for result in created if not as_json else []:
        mark = "created" if result.created else "NOT created"
        click.echo(f"{mark:<12} {result.field}: {result.message}")
    by_hand: list[str] = []  # the same Setup steps for every refused field: said once
    for result in access if not as_json else []:
        mark = "granted" if result.created else "NOT granted"
        message, _, steps = result.message.partition("; grant it by hand: ")
        if steps and steps not in by_hand:
            by_hand.append(steps)
        click.echo(f"{mark:<12} {result.field}: {message}")
    for steps in by_hand:
        click.echo(f"Grant it by hand: {steps}")
    sys.exit(0 if all(c.created for c in [*created, *access]) else 2)


def _live_check(config: Config, directory: Path | None) -> LiveCheck:
    connector = connectors.create(config.crm, config.mapping)
    connector.connect()
    return check_live(config, connector.describe(), mapping_document(config, directory))


def _register_editor() -> None:
    """`icp mappings edit` and `suggest` live in sync.cli_editor (issue 16)."""
    from icp_engine.sync.cli.editor import mappings_edit, mappings_suggest

    mappings_group.add_command(mappings_edit)
    mappings_group.add_command(mappings_suggest)


_register_editor()
