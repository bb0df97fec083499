"""`icp mappings`: create, check, compare and apply the mapping files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click

import mappings as bundled
from sync.cli_options import common, fail, guarded, mappings_option
from sync.config import CRMS, load_config, locate, mappings_dir, validate_all
from sync.yamlfile import ConfigError


@click.group("mappings")
def mappings_group() -> None:
    """Create, check and compare the mapping files."""


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
@common
@guarded
def mappings_validate(
    mappings_option: Path | None,
    crm: str | None,
    live: bool,
    as_json: bool,
) -> None:
    """Check every mapping file; report all problems at once (exit 2 if any)."""
    directory = mappings_dir(mappings_option)
    if live and crm in (None, "csv"):
        fail(2, "--live checks a CRM's own fields: add --crm salesforce or --crm hubspot")
    if live:
        fail(2, f"--live needs the {crm} connector, which this version does not include yet")
    if crm:
        try:
            warnings = load_config(crm, directory).warnings
            errors: list[Any] = []
        except ConfigError as exc:
            errors, warnings = exc.problems, []
    else:
        errors, warnings = validate_all(directory)
    names = [f"{c}.yaml" for c in ([crm] if crm else CRMS)] + ["icp.yaml"]
    checked = [locate(directory, name)[1] for name in names]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "checked": checked,
                    "errors": [str(e) for e in errors],
                    "warnings": [str(w) for w in warnings],
                }
            )
        )
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for error in errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"checked {', '.join(checked)}: {len(errors)} errors, {len(warnings)} warnings")
    sys.exit(2 if errors else 0)


@mappings_group.command("diff")
@mappings_option
def mappings_diff(mappings_option: Path | None) -> None:
    """Show how the edited mapping files differ from the bundled defaults."""
    import difflib

    directory = mappings_dir(mappings_option)
    if directory is None:
        click.echo("no ./mappings directory: the bundled files are in use (icp mappings init)")
        return
    for name in bundled.FILES:
        path = directory / name
        if not path.is_file():
            continue
        ours = bundled.default(name).read_text(encoding="utf-8").splitlines(keepends=True)
        theirs = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        click.echo(
            "".join(difflib.unified_diff(ours, theirs, f"bundled/{name}", str(path))), nl=False
        )


@mappings_group.command("apply")
@click.option("--crm", type=click.Choice(CRMS), default="csv", show_default=True)
@mappings_option
@guarded
def mappings_apply(crm: str, mappings_option: Path | None) -> None:
    """Create the output fields in the CRM where its API allows; else say what to create."""
    config = load_config(crm, mappings_dir(mappings_option))
    if crm != "csv":
        fail(2, f"the {crm} connector is not part of this version yet")
    click.echo("CSV exports need no fields created here. In Salesforce, create on Account:")
    for key, spec in config.mapping.outputs.items():
        size = f", length {spec.length}" if spec.length else ""
        scale = f"(18, {spec.scale})" if spec.type == "number" else ""
        click.echo(f"  {spec.field:<20} {spec.type}{scale}{size}   <- {key}")
