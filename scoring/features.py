"""Canonical accounts + opportunities -> one feature row per account.

Every mapped account attribute is a feature as it stands. Derived features are added
where their inputs are mapped: `region` from `country`, `employee_growth` from
`employees` and `employees_last_year`, `tech_count` from `technologies`, and deal
aggregates from the account's opportunities. Each derived value depends only on the
account and its own opportunities, so scoring an account alone or among all of them
gives the same result: what makes an incremental run equal a full one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

REGIONS: dict[str, tuple[str, ...]] = {
    "NA": ("united states", "us", "usa", "canada", "ca", "mexico", "mx"),
    "EMEA": (
        "united kingdom",
        "uk",
        "gb",
        "germany",
        "de",
        "france",
        "fr",
        "netherlands",
        "nl",
        "spain",
        "es",
        "italy",
        "it",
        "ireland",
        "ie",
        "sweden",
        "se",
        "switzerland",
        "ch",
        "belgium",
        "be",
        "denmark",
        "dk",
        "norway",
        "no",
        "finland",
        "fi",
        "poland",
        "pl",
        "austria",
        "at",
        "portugal",
        "pt",
        "israel",
        "il",
        "united arab emirates",
        "ae",
        "south africa",
        "za",
        "saudi arabia",
        "sa",
    ),
    "APAC": (
        "australia",
        "au",
        "india",
        "in",
        "japan",
        "jp",
        "singapore",
        "sg",
        "china",
        "cn",
        "new zealand",
        "nz",
        "south korea",
        "kr",
        "hong kong",
        "hk",
        "indonesia",
        "id",
        "philippines",
        "ph",
        "philipines",
        "malaysia",
        "my",
        "vietnam",
        "vn",
        "thailand",
    ),
    "LATAM": (
        "brazil",
        "br",
        "brasil",
        "argentina",
        "ar",
        "chile",
        "cl",
        "colombia",
        "co",
        "peru",
        "pe",
    ),
}
_REGION_OF = {country: region for region, names in REGIONS.items() for country in names}

DERIVED_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "region": ("text", ("country",)),
    "employee_growth": ("number", ("employees", "employees_last_year")),
    "tech_count": ("number", ("technologies",)),
    "won_deals": ("number", ()),
    "lost_deals": ("number", ()),
    "open_deals": ("number", ()),
    "won_amount": ("number", ()),
    "is_customer": ("boolean", ()),
}
"""Derived feature -> (type, account fields it needs). No inputs: from opportunities."""


def available_fields(account_fields: Mapping[str, str]) -> dict[str, str]:
    """Every field criteria may use, given the account fields the mapping provides."""
    fields = dict(account_fields)
    for name, (kind, inputs) in DERIVED_FIELDS.items():
        if name not in fields and all(i in account_fields for i in inputs):
            fields[name] = kind
    return fields


def region_of(country: pd.Series) -> pd.Series:
    """`United States` / `US` -> `NA`; unknown countries stay null."""
    folded = country.astype(object).map(
        lambda v: _REGION_OF.get(str(v).strip().casefold()), na_action="ignore"
    )
    return folded.astype(object)


def deal_aggregates(opportunities: pd.DataFrame, account_ids: pd.Series) -> pd.DataFrame:
    """Won, lost and open deal counts, won amount and customer flag per account."""
    index = pd.Index(account_ids.astype(str), name="account_id")
    if opportunities.empty:
        zeros = np.zeros(len(index))
        out = pd.DataFrame(
            {"won_deals": zeros, "lost_deals": zeros, "open_deals": zeros, "won_amount": zeros},
            index=index,
        )
    else:
        opps = opportunities
        absent = pd.Series(False, index=opps.index)
        closed = opps["is_closed"].fillna(False).astype(bool) if "is_closed" in opps else absent
        won = opps["is_won"].fillna(False).astype(bool) if "is_won" in opps else absent
        amount = opps["amount"] if "amount" in opps else pd.Series(np.nan, index=opps.index)
        frame = pd.DataFrame(
            {
                "account_id": opps["account_id"].astype(str),
                "won_deals": (won).astype(float),
                "lost_deals": (closed & ~won).astype(float),
                "open_deals": (~closed & ~won).astype(float),
                "won_amount": amount.where(won, 0.0).fillna(0.0).astype(float),
            }
        )
        grouped = frame.groupby("account_id", sort=False).sum()
        out = grouped.reindex(index, fill_value=0.0)
    out["is_customer"] = out["won_deals"] > 0
    return out


def build_features(accounts: pd.DataFrame, opportunities: pd.DataFrame) -> pd.DataFrame:
    """One row per account: its canonical fields plus every derived feature it supports.

    Args:
        accounts: canonical accounts frame (`account_id` unique).
        opportunities: canonical opportunities of those accounts (others are ignored).

    Returns:
        A new frame, same row order as `accounts`, with derived columns added.
    """
    features = accounts.copy()
    if "country" in features and "region" not in accounts:
        features["region"] = region_of(features["country"])
    if "employees" in features and "employees_last_year" in features:
        before = features["employees_last_year"].astype(float)
        growth = (features["employees"].astype(float) - before) / before.where(before > 0)
        features["employee_growth"] = growth.replace([np.inf, -np.inf], np.nan)
    if "technologies" in features:
        tech = features["technologies"].astype(object)
        features["tech_count"] = (
            tech.map(lambda v: float(len(str(v).split(";"))), na_action="ignore")
            .astype(float)
            .fillna(0.0)
        )
    deals = deal_aggregates(opportunities, features["account_id"])
    for column in deals.columns:
        if column not in accounts:
            features[column] = deals[column].to_numpy()
    return features
