"""`icp score`: the active scorecard as SQL, or run where the data is.

- `icp score --sql postgres > icp_scores.sql`: one SELECT (a view or a dbt model) over a
  table of one row per account with the canonical feature columns.
- `icp score --features-to URL [--table T]`: write that table (the accounts read from
  the CRM, enriched, with derived features) into a database, for the SQL to run on.
- `icp score --url URL [--table T] [--out scores.csv]`: run the compiled SQL in that
  database (its dialect taken from the URL) and write the scores (CSV), so a sync can
  take them from there (`icp sync --scores-from URL`) and only diff and write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from icp_engine.connectors.spreadsheet_safety import neutralise
from icp_engine.scoring.features import available_fields, build_features
from icp_engine.scoring.sql import DEFAULT_TABLE, SqlCompileError, compile_scorecard, dialects
from icp_engine.sync.cli.options import common, fail, guarded, read_options
from icp_engine.sync.config import Config, load_config, mappings_dir

EXAMPLES = """\b
Examples:
  icp score --sql postgres > icp_scores.sql           # a view or dbt model
  icp score --sql snowflake --table analytics.icp_features
  icp score --features-to duckdb:///icp.duckdb --source ./export
  icp score --url duckdb:///icp.duckdb --out scores.csv
"""
SQLALCHEMY_TO_SQLGLOT = {"postgresql": "postgres", "mssql": "tsql", "sqlite": "sqlite"}


def field_types(config: Config) -> dict[str, str]:
    """Every field the SQL may read, with its type (CRM, enrichment and derived fields)."""
    return available_fields(config.account_field_types())


def value_maps(config: Config) -> dict[str, dict[str, str]]:
    """The account mapping's value maps (for a table holding the CRM's spellings)."""
    fields = config.mapping.objects.account.fields
    maps = {name: spec.lookup() for name, spec in fields.items() if spec.values}
    for source in config.enrichment.sources:
        maps.update({n: s.lookup() for n, s in source.fields.items() if s.values})
    return maps


def scorecard_sql(config: Config, dialect: str, table: str) -> str:
    reasons = config.mapping.outputs.get("reasons")
    score = config.mapping.outputs.get("score")
    return compile_scorecard(
        config.icp,
        field_types(config),
        dialect=dialect,
        table=table,
        reasons_length=reasons.length if reasons else None,
        score_scale=score.scale if score else 0,
        value_maps=value_maps(config),
    )


@click.command(epilog=EXAMPLES)
@read_options
@click.option("--sql", "dialect", metavar="DIALECT", help="Print the scorecard as one SQL SELECT.")
@click.option(
    "--table",
    default=DEFAULT_TABLE,
    show_default=True,
    help="The table (or view) of one row per account the SQL reads.",
)
@click.option("--url", help="Run the SQL in this database (a SQLAlchemy URL; ${VAR} expanded).")
@click.option("--features-to", "features_to", help="Write the feature table into this database.")
@click.option("--out", type=click.Path(path_type=Path), help="With --url: write scores here (CSV).")
@common
@guarded
def score(
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    dialect: str | None,
    table: str,
    url: str | None,
    features_to: str | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Score where the data is: the active scorecard compiled to SQL for a named dialect."""
    if sum(x is not None for x in (dialect, url, features_to)) != 1:
        fail(2, "give one of --sql DIALECT, --url URL or --features-to URL")
    config = load_config(crm, mappings_dir(mappings_option), state_dir)
    if dialect is not None:
        try:
            click.echo(scorecard_sql(config, dialect, table), nl=False)
        except SqlCompileError as exc:
            fail(2, str(exc))
        return
    from icp_engine.connectors import warehouse

    if features_to is not None:
        from icp_engine import connectors
        from icp_engine.sync.enrich import enrich
        from icp_engine.sync.train import read_all

        connector = connectors.create(crm, config.mapping, source, None)
        connector.connect()
        accounts, opportunities = read_all(connector)
        features = build_features(enrich(config, accounts), opportunities)
        keep = [c for c in features.columns if c in field_types(config) or c == "account_id"]
        rows = warehouse.write_table(features_to, table, features[keep])
        summary = {"table": table, "rows": rows, "url": warehouse.redact(features_to)}
        click.echo(json.dumps(summary) if as_json else f"wrote {rows:,} accounts to {table}")
        return
    assert url is not None
    with warehouse.engine_for(url) as made:
        name = made.dialect.name
    sql_dialect = SQLALCHEMY_TO_SQLGLOT.get(name, name)
    if sql_dialect not in dialects():
        fail(2, f"no SQL dialect for database {name!r}; valid: {', '.join(dialects())}")
    scores = warehouse.read_query(url, scorecard_sql(config, sql_dialect, table), "icp score")
    printed = scores.copy()
    for column in ("tier", "segment", "route", "reasons"):  # a spreadsheet runs no formula
        printed[column] = printed[column].map(neutralise, na_action="ignore")
    if out is not None:
        printed.to_csv(out, index=False)
    elif not as_json:
        printed.to_csv(sys.stdout, index=False)
    if as_json:
        tiers = scores["tier"].value_counts().to_dict() if len(scores) else {}
        summary = {"rows": len(scores), "tiers": tiers, "out": str(out) if out else None}
        click.echo(json.dumps(summary, default=str))
