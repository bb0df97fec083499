"""`icp mappings edit` (the local editor page) and `icp mappings suggest` (a proposed
mapping as a YAML diff)."""

from __future__ import annotations

import difflib
import logging
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click
from icp_engine import connectors, mappings
from icp_engine.sync.cli.options import fail, guarded, mappings_option, state_option
from icp_engine.sync.config import (
    CRMS,
    criteria_source,
    load_config,
    locate,
    mappings_dir,
    read_document,
)
from icp_engine.sync.editor.session import EditorSession
from icp_engine.sync.mapedit import EditError, apply_edits
from icp_engine.sync.sourcedata import SourceData, from_crm, from_describe, from_export
from icp_engine.sync.suggest import suggest, uncaught
from icp_engine.sync.versions import VersionError, VersionStore
from icp_engine.sync.yamlfile import ConfigError

log = logging.getLogger(__name__)


def _objects(data: Any) -> dict[str, str]:
    """kind -> CRM object name, as the (possibly invalid) mapping says."""
    defaults = {"account": "Account", "opportunity": "Opportunity"}
    objects = data.get("objects") if isinstance(data, dict) else None
    for kind in defaults:
        block = objects.get(kind) if isinstance(objects, dict) else None
        if isinstance(block, dict) and isinstance(block.get("object"), str):
            defaults[kind] = block["object"]
    return defaults


def load_source(
    crm: str, directory: Path | None, source: Path | None, sample: int = 0
) -> SourceData:
    """The CRM's fields and records: from the export in `source`, else from the org
    (describe, and up to `sample` records per object; none when 0)."""
    document = read_document(directory, f"{crm}.yaml")
    if source is not None:
        return from_export(_objects(document.data), source)
    if crm == "csv":
        fail(2, "--crm csv needs --source DIR (the folder holding Account.csv and Opportunity.csv)")
    config = load_config(crm, directory)
    if sample:
        return from_crm(crm, config.mapping, sample)
    connector = connectors.create(crm, config.mapping)
    connector.connect()
    return from_describe(connector.describe(), f"the {crm} org's fields")


def _crm(crm: str | None, source: Path | None) -> str:
    if crm is None and source is None:
        fail(2, "say which CRM: --crm salesforce|hubspot, or --source DIR for an export")
    return crm or "csv"


crm_option = click.option(
    "--crm", type=click.Choice(CRMS), help="The CRM the mapping targets [default: csv]."
)
sample_option = click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="API CRMs: records per object read for values, fill rates and the preview "
    "(0: field metadata only).",
)
source_option = click.option(
    "--source",
    type=click.Path(path_type=Path, file_okay=False),
    help="An export (Account.csv, Opportunity.csv) to read fields and values from.",
)


@click.command("suggest")
@crm_option
@source_option
@sample_option
@mappings_option
@click.option("--write", is_flag=True, help="Apply the proposal to the mapping file.")
@guarded
def mappings_suggest(
    crm: str | None, source: Path | None, sample: int, mappings_option: Path | None, write: bool
) -> None:
    """Propose a mapping from an export's header or the CRM's metadata: fields matched by
    name and type, value-map spellings from the data. Prints a YAML diff; --write applies it."""
    crm = _crm(crm, source)
    directory = mappings_dir(mappings_option)
    path, label = locate(directory, f"{crm}.yaml")
    document = read_document(directory, f"{crm}.yaml")
    data = load_source(crm, directory, source, sample)
    if document.problems:
        raise ConfigError(document.problems)
    proposals = suggest(document.data, data)
    for name, values in uncaught(document.data, data).items():
        listed = ", ".join(f"{v!r} ({n})" if n else repr(v) for v, n in values[:12])
        more = f" and {len(values) - 12} more" if len(values) > 12 else ""
        click.echo(f"# {name}: no value map catches {listed}{more}: they score as spelled")
    if not proposals:
        click.echo(f"nothing to propose: {label} already matches {data.origin}")
        return
    text = (
        path.read_text(encoding="utf-8-sig")
        if path
        else mappings.default(f"{crm}.yaml").read_text(encoding="utf-8")
    )
    try:
        after = apply_edits({"mapping": text}, [p.edit for p in proposals])["mapping"]
    except EditError as exc:
        fail(2, f"{label}: {exc}")
    for proposal in proposals:
        click.echo(f"# {proposal.why}")
    click.echo(
        "".join(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"a/{label}",
                f"b/{label}",
            )
        ),
        nl=False,
    )
    if not write:
        click.echo(f"{len(proposals)} proposal(s); --write applies them to {label}")
        return
    if path is None:
        fail(2, "no ./mappings directory to write to: run `icp mappings init` first")
    assert path is not None
    path.write_text(after, encoding="utf-8")
    click.echo(f"wrote {path} ({len(proposals)} change(s)); check it: icp mappings validate")


@click.command("edit")
@crm_option
@source_option
@sample_option
@mappings_option
@state_option
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 [default: any free one].")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@guarded
def mappings_edit(
    crm: str | None,
    source: Path | None,
    sample: int,
    mappings_option: Path | None,
    state_dir: Path,
    port: int,
    no_browser: bool,
) -> None:
    """Edit the mapping files in a local page: field pickers from the CRM, value maps with
    the values in the data, validation as you type, a preview of the tiers, save to YAML."""
    crm = _crm(crm, source)
    directory = mappings_dir(mappings_option)
    if directory is None or not (directory / f"{crm}.yaml").is_file():
        where = directory or Path("mappings")
        fail(2, f"no {where / f'{crm}.yaml'} to edit: run `icp mappings init {where}` first")
    assert directory is not None
    if not (directory / "icp.yaml").is_file():
        fail(2, f"no {directory / 'icp.yaml'} to edit: run `icp mappings init {directory}` first")
    data = load_source(crm, directory, source, sample)
    from icp_engine.sync.editor.server import EditorServer

    session = EditorSession(crm, directory, data)
    session.notice = _criteria_notice(directory, state_dir)
    server = EditorServer(session, port)
    click.echo(f"Editing {directory}/{crm}.yaml and icp.yaml against {data.origin}")
    if session.notice:
        click.echo(f"note: {session.notice}")
    click.echo(f"Open {server.url}")
    click.echo("(only this URL opens the page; Ctrl-C stops the editor)")
    sys.stdout.flush()
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("editor stopped")
    finally:
        server.server_close()


def _criteria_notice(directory: Path, state_dir: Path) -> str:
    """Why edits to icp.yaml may not be what sync scores with (a learned version is active)."""
    try:
        active = VersionStore(state_dir).active()
    except VersionError as exc:
        return str(exc)
    if active is None or criteria_source(directory) == "manual":
        return ""
    return (
        f"sync scores with the learned criteria {active.name} ({state_dir}), not icp.yaml: "
        "your criteria edits take effect after `icp mappings rollback --manual` or with "
        "`scoring: {source: manual}` in icp.yaml. Field and value-map edits apply at once."
    )
