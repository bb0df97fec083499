"""Canonical accounts + opportunities -> one feature row per account.

Every mapped account attribute is a feature as it stands. Derived features are added
where their inputs are mapped: `region` from `country`, `employee_growth` from
`employees` and `employees_last_year`, `tech_count` from `technologies`, `company_age`
(whole years) from `year_started` (or, where the mapping has no founding year, from
the CRM record's `created_at`), and deal aggregates from the account's opportunities.
Each derived value depends only on the account and its own opportunities (and the
date), so scoring an account alone or among all of them gives the same result: what
makes an incremental run equal a full one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

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
    "company_age": ("number", ("year_started",)),
    "won_deals": ("number", ()),
    "lost_deals": ("number", ()),
    "open_deals": ("number", ()),
    "won_amount": ("number", ()),
    "is_customer": ("boolean", ()),
}
"""Derived feature -> (type, account fields it needs). No inputs: from opportunities."""
FALLBACK_INPUTS: dict[str, tuple[str, ...]] = {"company_age": ("created_at",)}
"""Derived feature -> the inputs used when its own are not mapped."""
EARLIEST_FOUNDING_YEAR = 1800
"""Founding years before this (typos such as 19, 0) are treated as unknown."""


def available_fields(account_fields: Mapping[str, str]) -> dict[str, str]:
    """Every field criteria may use, given the account fields the mapping provides."""
    fields = dict(account_fields)
    for name, (kind, inputs) in DERIVED_FIELDS.items():
        fallback = FALLBACK_INPUTS.get(name)
        if name not in fields and (
            all(i in account_fields for i in inputs)
            or (fallback is not None and all(i in account_fields for i in fallback))
        ):
            fields[name] = kind
    return fields


def _per_distinct(series: pd.Series, convert: Callable[[Any], Any]) -> pd.Series:
    """`series.astype(object).map(convert, na_action="ignore")`, calling `convert` once per
    distinct value (canonical text columns repeat a lot, and hold Arrow strings)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [convert(value) for value in uniques]
    out = table[codes]  # code -1 (missing) picks the last slot: filled below
    missing = codes < 0
    if missing.any():  # missing values stay as they were (None, NaN)
        out[missing] = series[missing].to_numpy(dtype=object)
    return pd.Series(out, index=series.index, dtype=object)


def region_of(country: pd.Series) -> pd.Series:
    """`United States` / `US` -> `NA`; unknown countries stay null."""
    return _per_distinct(country, lambda v: _REGION_OF.get(str(v).strip().casefold()))


def company_age(accounts: pd.DataFrame, as_of: date | None = None) -> pd.Series | None:
    """Company age in whole years as of `as_of` (default today, UTC); None if not derivable.

    From `year_started` when the accounts have that column: `as_of.year - year_started`,
    years before 1800 or after `as_of` being unknown. Otherwise from `created_at` (how long
    the account has been in the CRM, the only age there is): completed years since then.
    The two are never mixed row by row: a missing founding year is not replaced by the
    record's age, which would make every company without one look like a startup.
    """
    today = as_of or datetime.now(UTC).date()
    if "year_started" in accounts:
        year = pd.to_numeric(accounts["year_started"], errors="coerce").astype(float)
        year = year.where((year >= EARLIEST_FOUNDING_YEAR) & (year <= today.year))
        return pd.Series(today.year - np.floor(year), index=accounts.index, dtype=float)
    if "created_at" in accounts:
        created = pd.to_datetime(accounts["created_at"], utc=True, errors="coerce")
        reference = pd.Timestamp(today, tz="UTC")
        days = (reference - created).dt.days.astype(float)
        years = np.floor(days.where(days >= 0) / 365.2425)
        return pd.Series(years, index=accounts.index, dtype=float)
    return None


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


def build_features(
    accounts: pd.DataFrame, opportunities: pd.DataFrame, as_of: date | None = None
) -> pd.DataFrame:
    """One row per account: its canonical fields plus every derived feature it supports.

    Args:
        accounts: canonical accounts frame (`account_id` unique).
        opportunities: canonical opportunities of those accounts (others are ignored).
        as_of: the date ages are measured at (`company_age`); default today (UTC).

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
        tech = features["technologies"]
        features["tech_count"] = (
            _per_distinct(tech, lambda v: float(len(str(v).split(";")))).astype(float).fillna(0.0)
        )
    if "company_age" not in accounts:
        age = company_age(accounts, as_of)
        if age is not None:
            features["company_age"] = age.to_numpy()
    deals = deal_aggregates(opportunities, features["account_id"])
    for column in deals.columns:
        if column not in accounts:
            features[column] = deals[column].to_numpy()
    return features
