"""Synthetic enrichment exports for the sample CRM, in the layouts vendors deliver them.

Three files beside the sample export, each keyed by the company's web address written the
vendor's way (so the join's domain normalisation has work to do) and each covering only
part of the accounts, as real vendors do:

- `zoominfo_companies.csv`: firmographics as a ZoomInfo company export names them
  (`ZoomInfo Company ID`, `Company Name`, `Website`, `Employees`, `Revenue (in 000s USD)`,
  `Primary Industry`, `Last Updated Date`);
- `builtwith_technologies.csv`: technographics after BuiltWith's Domain API fields
  (`Domain`, `Technologies` as a `;` list, `Technology Spend` (monthly USD),
  `First Indexed`, `Last Indexed`);
- `bombora_company_surge.csv`: intent as a Bombora Company Surge summary
  (`Company Name`, `Domain`, `Average Score` 0-100 where 60 and over is surging,
  `Topic Count`, `Week Of`).

The rows are made up; the columns are the vendors'. Warehouse use and won deals lean on
each other here (as they would for a product that sells to data teams), so the demo's
technographic criterion has something to find.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from icp_engine.connectors.sample import TODAY

WAREHOUSES = ("Snowflake", "Google BigQuery", "Amazon Redshift", "Databricks")
_WEB_TECH = ("Google Analytics", "Segment", "Cloudflare", "Stripe", "Intercom", "HubSpot",
             "Marketo", "Optimizely", "Hotjar", "Zendesk")  # fmt: skip


def _write(path: Path, frame: pd.DataFrame) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        writer.writerows(zip(*(frame[c].to_numpy(object) for c in frame.columns), strict=True))


def _bare(website: pd.Series) -> pd.Series:
    text = website.fillna("").astype(str).str.strip()
    text = text.str.replace(r"^[a-z]+://", "", regex=True).str.replace(r"^www\.", "", regex=True)
    return text.str.split("/").str[0].str.lower()


def write_sample_enrichment(
    directory: Path, accounts: pd.DataFrame, opportunities: pd.DataFrame, seed: int = 7
) -> dict[str, Path]:
    """Write the three vendor exports for the sample accounts (raw Data Export rows).

    Returns:
        Vendor name -> the file written.
    """
    rng = np.random.default_rng([seed, 15])
    directory.mkdir(parents=True, exist_ok=True)
    domain = _bare(accounts["Website"])
    has_site = domain.ne("").to_numpy()
    won = accounts["Id"].isin(opportunities.loc[opportunities["IsWon"].eq("true"), "AccountId"])
    lost = accounts["Id"].isin(
        opportunities.loc[
            opportunities["IsClosed"].eq("true") & opportunities["IsWon"].eq("false"), "AccountId"
        ]
    )
    open_deal = accounts["Id"].isin(
        opportunities.loc[opportunities["IsClosed"].ne("true"), "AccountId"]
    )
    n = len(accounts)
    files: dict[str, Path] = {}

    # ZoomInfo: 80% coverage, its own (sometimes different) employee count.
    pick = has_site & (rng.random(n) < 0.8)
    employees = pd.to_numeric(accounts["NumberOfEmployees"], errors="coerce").fillna(0).to_numpy()
    drift = np.where(rng.random(n) < 0.25, rng.uniform(0.7, 1.4, n), 1.0)
    revenue = pd.to_numeric(accounts["AnnualRevenue"], errors="coerce").fillna(0).to_numpy()
    updated = [TODAY - timedelta(days=int(d)) for d in rng.integers(5, 200, n)]
    zoominfo = pd.DataFrame(
        {
            "ZoomInfo Company ID": [str(100_000_000 + i) for i in range(n)],
            "Company Name": accounts["Name"].to_numpy(object),
            "Website": ("www." + domain).to_numpy(object),
            "Employees": np.rint(employees * drift).astype(np.int64).astype(str),
            "Revenue (in 000s USD)": np.rint(revenue / 1000).astype(np.int64).astype(str),
            "Primary Industry": accounts["Industry"].to_numpy(object),
            "Last Updated Date": [d.isoformat() for d in updated],
        }
    )[pick]
    files["ZoomInfo"] = directory / "zoominfo_companies.csv"
    _write(files["ZoomInfo"], zoominfo)

    # BuiltWith: 65% coverage; a cloud warehouse far more often among accounts that bought.
    pick = has_site & (rng.random(n) < 0.65)
    chance = np.where(won, 0.55, np.where(lost, 0.12, 0.22))
    warehouse = rng.random(n) < chance
    stacks = []
    for i in range(n):
        tech = list(rng.choice(_WEB_TECH, size=int(rng.integers(1, 5)), replace=False))
        if warehouse[i]:
            tech.append(str(rng.choice(WAREHOUSES)))
        stacks.append(";".join(tech))
    first = [date(2015, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 3000, n)]
    last = [TODAY - timedelta(days=int(d)) for d in rng.integers(1, 60, n)]
    builtwith = pd.DataFrame(
        {
            "Domain": domain.to_numpy(object),
            "Technologies": stacks,
            "Technology Spend": rng.integers(0, 20_000, n).astype(str),
            "First Indexed": [d.isoformat() for d in first],
            "Last Indexed": [d.isoformat() for d in last],
        }
    )[pick]
    files["BuiltWith"] = directory / "builtwith_technologies.csv"
    _write(files["BuiltWith"], builtwith)

    # Bombora: 40% coverage; surging (60+) more often where a deal is open or was won.
    pick = has_site & (rng.random(n) < 0.4)
    score = np.clip(rng.normal(np.where(open_deal | won, 62, 48), 12), 0, 100).astype(int)
    week = TODAY - timedelta(days=TODAY.weekday())
    bombora = pd.DataFrame(
        {
            "Company Name": accounts["Name"].to_numpy(object),
            "Domain": ("https://" + domain + "/").to_numpy(object),
            "Average Score": score.astype(str),
            "Topic Count": rng.integers(1, 12, n).astype(str),
            "Week Of": week.isoformat(),
        }
    )[pick]
    files["Bombora"] = directory / "bombora_company_surge.csv"
    _write(files["Bombora"], bombora)
    return files


ENRICHMENT_YAML = """\
# Enrichment joined onto every account before scoring (`icp demo` writes this file).
#
# sources: each a CSV or Parquet file (or glob), or `url:` + `query:` for a database,
#   keyed by `column` holding a domain or website (`key: domain`, normalised: scheme,
#   www., path and case stripped) or the CRM account id (`key: account_id`).
#   fields: canonical name -> the source column, with `type` and `values` as in the CRM
#   mapping. A joined field is an ordinary field: use it in icp.yaml.
#   as_of: the column saying when a row was refreshed (default: the file's time).
# precedence: who wins a field two providers fill (`crm` is the CRM record itself).
sources:
  - name: ZoomInfo
    path: enrichment/zoominfo_companies.csv
    key: domain
    column: Website
    as_of: Last Updated Date
    fields:
      employees: {field: Employees, type: number}
      zoominfo_revenue_k: {field: Revenue (in 000s USD), type: number}
  - name: BuiltWith
    path: enrichment/builtwith_technologies.csv
    key: domain
    column: Domain
    as_of: Last Indexed
    fields:
      web_technologies:
        field: Technologies
        type: multi
        values:
          Snowflake: [Snowflake, Snowflake Computing]
          BigQuery: [Google BigQuery, BigQuery]
          Redshift: [Amazon Redshift, Redshift]
      technology_spend: {field: Technology Spend, type: number}
  - name: Bombora
    path: enrichment/bombora_company_surge.csv
    key: domain
    column: Domain
    as_of: Week Of
    fields:
      intent_score: {field: Average Score, type: number}
precedence: [crm, ZoomInfo]
"""

DEMO_CRITERIA = [
    {
        "name": "Runs a cloud data warehouse",
        "field": "web_technologies",
        "contains": ["Snowflake", "BigQuery", "Redshift", "Databricks"],
        "weight": 0.10,
    },
    {
        "name": "Surging intent (Bombora 60+)",
        "field": "intent_score",
        "gte": 60,
        "weight": 0.06,
    },
]
"""What the demo's icp.yaml adds to the bundled criteria (in the `strong_signal` group)."""
