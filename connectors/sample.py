"""A deterministic sample CRM in the layout of Salesforce's Data Export.

`write_sample_crm` writes `Account.csv` and `Opportunity.csv` (API field names as headers,
every value a string, `''` for empty) for `icp demo` and the benchmark. The data is
realistic enough to exercise the whole pipeline: industries and countries spelled the
many ways a CRM holds them, empty fields, orphan opportunities, and won/lost outcomes
that follow a logistic model of the seed ICP (industry, 50-500 employees, pre-revenue,
headcount growth, a Salesforce/HubSpot stack, Series A-C funding), so there is real
signal to learn. Everything is vectorised with numpy: a million accounts take seconds.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.dtypes import StringDType

ACCOUNT_COLUMNS = (
    "Id", "Name", "Website", "Industry", "Type", "Ownership", "Rating", "AccountSource",
    "NumberOfEmployees", "AnnualRevenue", "BillingCountry", "BillingState", "YearStarted",
    "CreatedDate", "SystemModstamp", "Funding_Stage__c", "Employees_Last_Year__c",
    "Technologies__c", "ICP_Score__c", "ICP_Tier__c", "ICP_Segment__c", "ICP_Reasons__c",
    "ICP_Route__c",
)  # fmt: skip
OPPORTUNITY_COLUMNS = (
    "Id", "AccountId", "Name", "StageName", "IsClosed", "IsWon", "Amount", "CloseDate",
    "CreatedDate", "Type", "LeadSource", "SystemModstamp", "Loss_Reason__c",
)  # fmt: skip
TODAY = date(2026, 10, 31)
_DAY = 86_400
_Probs = dict[str, float]


class _Industry(NamedTuple):
    name: str
    share: float
    log_employees: float  # log of the median headcount
    win_rate: float  # seed ICP win rate, relative (rescaled by the intercept)
    acv: float  # typical new-business deal, dollars
    cycle: tuple[int, int]  # sales cycle, days
    spellings: _Probs
    nouns: str


_INDUSTRIES = (
    _Industry("Technology/SaaS", .24, 4.8, .75, 15_000, (30, 90), {"Technology": 35, "Software": 25, "SaaS": 15, "Internet": 10, "Information Technology": 10, "technolgy": 2}, "Analytics|Software|Labs|Systems|Technologies|Cloud|Data|AI"),  # noqa: E501
    _Industry("E-commerce/Retail", .13, 4.9, .70, 22_000, (60, 120), {"Retail": 45, "E-commerce": 30, "Ecommerce": 15, "Consumer Goods": 10}, "Retail Group|Commerce|Goods|Brands|Outfitters|Market|Stores|Supply"),  # noqa: E501
    _Industry("Financial Services", .12, 5.3, .65, 48_000, (120, 180), {"Financial Services": 30, "Banking": 25, "Finance": 20, "Insurance": 20, "Fintech": 5}, "Capital|Financial|Bank|Insurance|Partners|Wealth|Credit Union|Payments"),  # noqa: E501
    _Industry("Healthcare", .11, 5.2, .55, 35_000, (180, 270), {"Healthcare": 60, "Biotechnology": 20, "Hospital & Health Care": 10, "Pharmaceuticals": 10}, "Health|Medical|Biosciences|Therapeutics|Care|Clinics|Pharma|Diagnostics"),  # noqa: E501
    _Industry("Media", .08, 4.7, .60, 20_000, (90, 150), {"Media": 50, "Entertainment": 30, "Publishing": 20}, "Media|Studios|Entertainment|Publishing|Broadcasting|Creative|Games|Records"),  # noqa: E501
    _Industry("Manufacturing", .14, 5.3, .45, 30_000, (180, 360), {"Manufacturing": 60, "Machinery": 20, "Energy": 10, "Industrial": 10}, "Manufacturing|Industries|Machinery|Energy|Materials|Components|Engineering|Steel"),  # noqa: E501
    _Industry("Government", .08, 5.6, .30, 45_000, (270, 540), {"Government": 45, "Education": 35, "Public Sector": 10, "Not For Profit": 10}, "County|School District|Public Schools|Transit Authority|University|Water District|Housing Authority|College"),  # noqa: E501
    _Industry("Other", .10, 4.8, .50, 20_000, (60, 180), {"Hospitality": 1, "Agriculture": 1, "Construction": 1, "Legal": 1, "Real Estate": 1, "Transportation": 1}, "Hotels|Farms|Construction|Law Group|Realty|Logistics|Builders|Properties"),  # noqa: E501
)
_GOVERNMENT, _OTHER = 6, 7
_COUNTRIES: dict[str, tuple[float, _Probs]] = {
    "US": (.55, {"United States": 60, "USA": 20, "US": 15, "United States of America": 5}),
    "UK": (.10, {"United Kingdom": 60, "UK": 30, "GB": 10}),
    "DE": (.07, {"Germany": 80, "DE": 15, "Deutschland": 5}),
    "CA": (.06, {"Canada": 90, "CA": 10}),
    "FR": (.05, {"France": 90, "FR": 10}),
    "AU": (.04, {"Australia": 90, "AU": 10}),
    "IN": (.05, {"India": 90, "IN": 10}),
    "NL": (.03, {"Netherlands": 80, "The Netherlands": 10, "NL": 10}),
    "BR": (.03, {"Brazil": 85, "Brasil": 10, "BR": 5}),
    "JP": (.02, {"Japan": 90, "JP": 10}),
}
_US_STATES = dict(zip("CA NY TX MA WA IL FL GA CO NJ PA VA NC OH MI MN AZ OR UT MD TN MO WI IN".split(), (15, 10, 9, 6, 5, 5, 6, 3, 4, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1), strict=True))  # noqa: E501
_CA_STATES = {"": 50, "ON": 20, "BC": 12, "QC": 12, "AB": 6}
_TECHNOLOGIES = {"Salesforce": .45, "HubSpot": .30, "Outreach": .12, "Gong": .10, "Snowflake": .15, "Segment": .10, "Marketo": .12, "Zendesk": .20, "Slack": .50, "Jira": .35}  # noqa: E501
_FUNDING = ("Bootstrapped", "Seed", "Series A", "Series B", "Series C", "Series D", "Public")
_FUNDING_BY_BAND = np.array([  # rows: <50, 50-500, 501-5000, >5000 employees, pre-revenue
    [.35, .35, .18, .07, .02, .01, .02], [.25, .08, .22, .22, .12, .06, .05],
    [.18, .02, .08, .15, .17, .15, .25], [.12, .00, .01, .03, .06, .10, .68],
    [.30, .60, .10, .00, .00, .00, .00],
])  # fmt: skip
_STEMS = "North Blue Silver Bright Iron Red Green Stone River Clear Summit Pine Oak Cedar Maple Falcon Eagle Hawk Wolf Fox Star Sun Moon Sky Cloud Rapid Swift Prime True Nova Apex Vertex Quantum Hyper Omni Terra Aqua Blaze Crystal Golden Harbor Lake Ocean Polar Crest Ever High Wild Royal Copper".split()  # noqa: E501
_ENDINGS = "wind peak stone field bridge gate light works line path point ridge wave spark forge craft mark core scale loop shift hub nest view bay wood brook dale ford port".split()  # noqa: E501
_SUFFIXES = {"": 40, " Inc.": 15, ", Inc.": 10, " LLC": 12, " Corp.": 8, " Ltd": 8, " Co.": 7}
_SITES = {"https://www.|.com": 45, "http://www.|.com": 10, "https://|.com": 15, "www.|.com": 10, "|.com": 5, "https://|.io": 6, "http://|.io": 3, "https://www.|.co": 6}  # noqa: E501
_OPEN_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review")  # noqa: E501
_LEAD_SOURCES = {"Web": 25, "Phone Inquiry": 8, "Partner Referral": 14, "Purchased List": 10, "Other": 6, "Advertisement": 8, "Employee Referral": 6, "Trade Show": 12, "": 11}  # noqa: E501
_LOSS_REASONS = ("Price", "Competitor", "No Decision", "Timing", "Missing Feature", "Budget", "")
_LOSS_BY_SEGMENT = np.array([  # rows: default, government, enterprise, small or pre-revenue
    [.20, .25, .20, .13, .10, .08, .04], [.05, .05, .40, .10, .03, .33, .04],
    [.10, .30, .22, .10, .20, .04, .04], [.30, .10, .12, .10, .03, .31, .04],
])  # fmt: skip
_PAIRS = np.array([f"{i:02d}" for i in range(100)], dtype="S2")
_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_CHECKSUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", np.uint8)


@dataclass(frozen=True)
class SampleInfo:
    """What `write_sample_crm` wrote."""

    directory: Path
    accounts: int
    opportunities: int


def generate_accounts(n: int, seed: int = 7, today: date = TODAY) -> pd.DataFrame:
    """Raw Account rows, all columns as strings ('' for empty), Salesforce Data Export layout.

    Args:
        n: number of accounts.
        seed: random seed; the same seed gives the same rows.
        today: the export date; no timestamp is later than its midnight (UTC).

    Returns:
        One row per account, columns `ACCOUNT_COLUMNS`.
    """
    rng = np.random.default_rng(seed)
    now = _epoch_seconds(today)
    ind = rng.choice(len(_INDUSTRIES), n, p=[i.share for i in _INDUSTRIES])
    log_median = np.array([i.log_employees for i in _INDUSTRIES])[ind]
    employees = np.clip(np.rint(np.exp(rng.normal(log_median, 1.75))), 1, 50_000).astype(np.int64)
    age = np.rint(np.exp(rng.normal(1.1 + 0.3 * np.log(employees), 0.6)))
    year = np.clip(today.year - age, 1950, min(today.year - 1, 2025)).astype(np.int64)
    young_small = (employees < 50) & (year >= today.year - 6)
    pre_revenue = young_small & (rng.random(n) < 0.45)
    revenue = employees * rng.uniform(150e3, 250e3, n) * rng.lognormal(0, 0.25, n)
    revenue = np.where(pre_revenue, 0, np.rint(revenue / 1000) * 1000).astype(np.int64)
    band = np.where(pre_revenue, 4, _size_band(employees))
    funding = _pick(rng, _FUNDING_BY_BAND, band)
    series_ac = (funding >= 2) & (funding <= 4)
    growth = rng.normal(0.08 + 0.12 * (employees <= 500) + 0.15 * series_ac, 0.18)
    last_year = np.maximum(1, np.rint(employees / (1 + np.clip(growth, -0.3, 1.5))))
    ownership = _pick(rng, np.array([[75, 0, 15, 10], [2, 95, 3, 0], [5, 0, 5, 90]]) / 100,
                      np.where(funding == 6, 1, np.where(ind == _GOVERNMENT, 2, 0)))  # fmt: skip
    country = rng.choice(len(_COUNTRIES), n, p=[c[0] for c in _COUNTRIES.values()])
    state = np.full(n, "", dtype=object)
    for code, spread in (("US", {"": 2, **_US_STATES}), ("CA", _CA_STATES)):
        rows = country == list(_COUNTRIES).index(code)
        state[rows] = _sample(rng, spread, int(rows.sum()))
    created = np.sort(now - (4 * 365 * _DAY * rng.random(n) ** 0.7).astype(np.int64) - 60)
    modified = created + ((now - created) * rng.random(n) ** 0.35).astype(np.int64)
    stem = rng.integers(0, len(_STEMS), n), rng.integers(0, len(_ENDINGS), n)
    slug = _strs([s.lower() for s in _STEMS])[stem[0]] + _strs(_ENDINGS)[stem[1]]
    nouns = np.array([i.nouns.split("|") for i in _INDUSTRIES], dtype=StringDType())
    name = _strs(_STEMS)[stem[0]] + _strs(_ENDINGS)[stem[1]] + " " + nouns[ind, rng.integers(0, 8, n)]
    suffix = _sample(rng, _SUFFIXES, n).astype(StringDType())
    name += np.where(ind == _GOVERNMENT, "", suffix)
    site = _draw(rng, _SITES, n)
    head, tail = (_strs([s.split("|")[k] for s in _SITES]) for k in (0, 1))
    website = np.where(rng.random(n) < 0.05, "", head[site] + slug + tail[site])
    columns = {
        "Id": _ids("001", _counters(rng, n)),
        "Name": name.astype(object),
        "Website": website.astype(object),
        "Industry": _spell(rng, ind, [i.spellings for i in _INDUSTRIES], 0.03),
        "Type": _sample(rng, {"Prospect": 72, "Customer - Direct": 15, "Customer - Channel": 5,
                              "Channel Partner / Reseller": 4, "Other": 4}, n),  # fmt: skip
        "Ownership": np.array(["Private", "Public", "Subsidiary", "Other"], dtype=object)[ownership],
        "Rating": _sample(rng, {"Hot": 12, "Warm": 28, "Cold": 25, "": 35}, n),
        "AccountSource": _sample(rng, {"Web": 35, "Phone Inquiry": 10, "Partner Referral": 15,
                                       "Purchased List": 15, "Other": 10, "Trade Show": 15}, n),  # fmt: skip
        "NumberOfEmployees": _ints(employees, rng.random(n) < 0.04),
        "AnnualRevenue": _ints(revenue, rng.random(n) < 0.06),
        "BillingCountry": _spell(rng, country, [c[1] for c in _COUNTRIES.values()], 0.02),
        "BillingState": state,
        "YearStarted": _ints(year, rng.random(n) < 0.1),
        "CreatedDate": _format(created),
        "SystemModstamp": _format(modified),
        "Funding_Stage__c": np.where(rng.random(n) < 0.30, "", np.array(_FUNDING, object)[funding]),
        "Employees_Last_Year__c": _ints(last_year.astype(np.int64), rng.random(n) < 0.35),
        "Technologies__c": _technologies(rng, n),
    }
    blank = np.full(n, "", dtype=object)
    columns.update({c: blank for c in ACCOUNT_COLUMNS if c.startswith("ICP_")})
    return pd.DataFrame(columns, columns=list(ACCOUNT_COLUMNS))


def generate_opportunities(
    accounts: pd.DataFrame, seed: int = 7, today: date = TODAY
) -> pd.DataFrame:
    """Raw Opportunity rows for those accounts.

    Outcomes follow a logistic model of what the accounts' fields show (industry spelling,
    headcount band, revenue, growth, tech stack, funding), plus per-account and per-deal noise.

    Args:
        accounts: rows from `generate_accounts` (any frame with its columns works).
        seed: random seed; the same seed and accounts give the same rows.
        today: the export date; closed deals close before it, open ones after.

    Returns:
        One row per opportunity, columns `OPPORTUNITY_COLUMNS`, ordered by CreatedDate.
    """
    rng = np.random.default_rng([seed, 1])
    now, n = _epoch_seconds(today), len(accounts)
    counts = np.where(rng.random(n) < 0.6, rng.choice(6, n, p=[.3, .25, .18, .12, .09, .06]) + 1, 0)
    acc = np.repeat(np.arange(n), counts)
    since = pd.to_datetime(accounts["CreatedDate"], utc=True, format="ISO8601", errors="coerce")
    opened = ((since - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).fillna(0)
    start = np.maximum(opened.to_numpy(np.int64)[acc], now - 3 * 365 * _DAY)
    created = start + ((now - start) * rng.random(len(acc)) ** 1.3).astype(np.int64)
    order = np.argsort(created, kind="stable")  # ids follow creation, as in a real org
    acc, created, m = acc[order], created[order], len(acc)
    lookup = {s: k for k, i in enumerate(_INDUSTRIES) for s in i.spellings}
    ind = accounts["Industry"].map(lookup).fillna(_OTHER).to_numpy(np.int64)[acc]
    employees, revenue, last_year = (
        pd.to_numeric(accounts[c], errors="coerce").to_numpy(float)[acc]
        for c in ("NumberOfEmployees", "AnnualRevenue", "Employees_Last_Year__c")
    )
    band = np.where(np.isnan(employees), 4, _size_band(employees))
    existing = rng.random(m) < 0.2
    win_rates = np.array([i.win_rate for i in _INDUSTRIES])
    logit = (
        -1.5 + np.log(win_rates / (1 - win_rates))[ind]
        + np.array([-0.3, 0.8, 0.0, -0.9, 0.0])[band]
        - 3.0 * (revenue == 0)
        + 0.5 * (employees > 1.2 * last_year)
        + 0.5 * accounts["Technologies__c"].str.contains("Salesforce|HubSpot").to_numpy(bool)[acc]
        + 0.4 * accounts["Funding_Stage__c"].isin(_FUNDING[2:5]).to_numpy(bool)[acc]
        + 0.6 * existing + rng.normal(0, 0.5, n)[acc] + rng.normal(0, 0.5, m)
    )  # fmt: skip
    won = rng.random(m) < 1 / (1 + np.exp(-logit))
    cycle_range = np.array([i.cycle for i in _INDUSTRIES], dtype=float)[ind]
    cycle = rng.uniform(cycle_range[:, 0], cycle_range[:, 1]) * np.array([1, 1, 1.25, 1.9, 1])[band]
    cycle = np.maximum(1, np.rint(cycle * np.where(won, 1, rng.uniform(0.35, 1, m))))
    today_day, created_day = now // _DAY, created // _DAY
    close_day = created_day + cycle.astype(np.int64)
    closed = (close_day < today_day) & (rng.random(m) >= 0.05)
    progress = (today_day - created_day) / np.maximum(1, close_day - created_day)
    stage = np.clip(progress * 5 + rng.normal(0, 0.7, m), 0, 4).astype(np.int64)
    close_day = np.where(~closed & (close_day < today_day), today_day + rng.integers(7, 90, m), close_day)
    won &= closed
    acv = np.array([i.acv for i in _INDUSTRIES])[ind] * np.where(existing, 0.45, 1)
    size = np.clip(np.nan_to_num(employees, nan=150), 10, 50_000)
    amount = np.maximum(5, np.rint(acv * (size / 150) ** 0.3 * rng.lognormal(0, 0.5, m) / 100))
    low = np.where(closed, np.maximum(created, close_day * _DAY), created)
    modified = low + ((now - low) * rng.random(m) ** 3).astype(np.int64)
    segment = np.select([ind == _GOVERNMENT, band == 3, (band == 0) | (revenue == 0)],
                        [1, 2, 3], 0)  # fmt: skip
    loss = np.array(_LOSS_REASONS, dtype=object)[_pick(rng, _LOSS_BY_SEGMENT, segment)]
    account_ids = accounts["Id"].to_numpy(object)[acc]
    orphan = np.flatnonzero(rng.random(m) < 0.01)
    stray = _ids("001", rng.integers(62**7, 62**8, len(orphan)))
    fresh = ~pd.Series(stray).isin(accounts["Id"]).to_numpy(bool)
    account_ids[orphan[fresh]] = stray[fresh]
    kind = np.where(existing, "Existing Business", "New Business").astype(object)
    label = np.where(existing, " - Expansion", _sample(rng, {" - New Business": 3, " - Platform": 1,
                     " - Pilot": 1, " - Annual Subscription": 1}, m).astype(StringDType()))  # fmt: skip
    stage_name = np.array([*_OPEN_STAGES, "Closed Lost", "Closed Won"], dtype=object)
    return pd.DataFrame(
        {
            "Id": _ids("006", _counters(rng, m)),
            "AccountId": account_ids,
            "Name": (accounts["Name"].to_numpy(object)[acc].astype(StringDType()) + label).astype(object),
            "StageName": stage_name[np.where(closed, 5 + won, stage)],
            "IsClosed": np.where(closed, "true", "false").astype(object),
            "IsWon": np.where(won, "true", "false").astype(object),
            "Amount": _ints(amount.astype(np.int64) * 100, rng.random(m) < 0.02),
            "CloseDate": _format(close_day * _DAY, with_time=False),
            "CreatedDate": _format(created),
            "Type": kind,
            "LeadSource": _sample(rng, _LEAD_SOURCES, m),
            "SystemModstamp": _format(modified),
            "Loss_Reason__c": np.where(closed & ~won, loss, ""),
        },
        columns=list(OPPORTUNITY_COLUMNS),
    )


def write_sample_crm(
    directory: Path, accounts: int = 2000, seed: int = 7, today: date = TODAY
) -> SampleInfo:
    """Write `directory/Account.csv` and `directory/Opportunity.csv`.

    Accounts with a won New Business deal are mostly marked customers, and most customers
    have one. UTF-8, a header row, minimal csv quoting, `\\n` line ends: the same arguments
    give byte-identical files.

    Args:
        directory: where to write (created if missing).
        accounts: number of accounts.
        seed: random seed.
        today: the export date.

    Returns:
        The directory and the number of rows written to each file.
    """
    account_rows = generate_accounts(accounts, seed, today)
    opportunities = generate_opportunities(account_rows, seed, today)
    won = opportunities.loc[
        (opportunities["IsWon"] == "true") & (opportunities["Type"] == "New Business"), "AccountId"
    ]
    rng = np.random.default_rng([seed, 2])
    kind = account_rows["Type"].to_numpy(object).copy()
    has_won = account_rows["Id"].isin(won).to_numpy(bool)
    customer = np.char.startswith(kind.astype(str), "Customer")
    roll = rng.random(accounts)
    kind[has_won & ~customer & (roll < 0.9)] = "Customer - Direct"
    kind[has_won & ~customer & (roll < 0.15)] = "Customer - Channel"
    kind[~has_won & customer & (roll < 0.7)] = "Prospect"
    account_rows["Type"] = kind
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in (("Account", account_rows), ("Opportunity", opportunities)):
        with (directory / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(frame.columns)
            writer.writerows(zip(*(frame[c].to_numpy(object) for c in frame.columns), strict=True))
    return SampleInfo(directory, len(account_rows), len(opportunities))


def _epoch_seconds(day: date) -> int:
    return (day - date(1970, 1, 1)).days * _DAY


def _size_band(employees: np.ndarray) -> np.ndarray:
    """0: <50, 1: 50-500 (the sweet spot), 2: 501-5000, 3: >5000 employees."""
    return np.digitize(employees, [50, 501, 5001])


def _pick(rng: np.random.Generator, probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One column index per row, drawn from the row of `probs` that `group` names."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cumulative[cumulative > 1 - 1e-9] = 1.0  # rounding must never pick a zero-weight column
    return np.minimum((rng.random(len(group))[:, None] > cumulative[group]).sum(axis=1),
                      probs.shape[1] - 1)  # fmt: skip


def _draw(rng: np.random.Generator, weights: _Probs, n: int) -> np.ndarray:
    """`n` indices into `weights` (value -> relative weight)."""
    p = np.array(list(weights.values()), dtype=float)
    return rng.choice(len(p), n, p=p / p.sum())


def _sample(rng: np.random.Generator, weights: _Probs, n: int) -> np.ndarray:
    """`n` values drawn from `weights` (value -> relative weight), as an object array."""
    return np.array(list(weights), dtype=object)[_draw(rng, weights, n)]


def _spell(
    rng: np.random.Generator, group: np.ndarray, spellings: list[_Probs], empty: float
) -> np.ndarray:
    """The CRM spelling of each row's underlying value; a share `empty` left blank."""
    width = max(len(s) for s in spellings)
    probs = np.array([[*s.values(), *[0] * (width - len(s))] for s in spellings], dtype=float)
    vocab = np.array([[*s, *[""] * (width - len(s))] for s in spellings], dtype=object)
    out = vocab[group, _pick(rng, probs, group)]
    out[rng.random(len(group)) < empty] = ""
    return out


def _strs(words: list[str]) -> np.ndarray:
    return np.array(words, dtype=StringDType())


def _ints(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    out = values.astype(StringDType())
    out[empty] = ""
    return out.astype(object)


def _counters(rng: np.random.Generator, n: int) -> np.ndarray:
    """Increasing, unique record numbers with gaps, like a real org's."""
    return int(rng.integers(62**7, 62**8)) + np.cumsum(rng.integers(1, 30, n))


def _ids(prefix: str, counters: np.ndarray) -> np.ndarray:
    """18-character Salesforce ids: prefix, pod `5g0`, 9 base-62 digits, case checksum."""
    chars = np.zeros((len(counters), 18), dtype=np.uint8)
    chars[:, :6] = np.frombuffer(f"{prefix}5g0".encode(), np.uint8)
    rest = np.asarray(counters, dtype=np.int64)
    for position in range(14, 5, -1):
        rest, digit = np.divmod(rest, 62)
        chars[:, position] = _BASE62[digit]
    upper = ((chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))).reshape(-1, 3, 5)
    chars[:, 15:] = _CHECKSUM[(upper * (1 << np.arange(5))).sum(axis=2)]
    return chars.view("S18").ravel().astype(StringDType()).astype(object)


def _format(seconds: np.ndarray, with_time: bool = True) -> np.ndarray:
    """Epoch seconds as `2025-03-04T10:11:12.000Z`, or as `2025-03-04` without time."""
    days, secs = np.divmod(np.asarray(seconds, dtype=np.int64), _DAY)
    # Days -> civil date (H. Hinnant's algorithm), all integer arithmetic.
    era, day_of_era = np.divmod(days + 719_468, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * day_of_year + 2) // 153
    month = np.where(shifted < 10, shifted + 3, shifted - 9)
    year = year_of_era + era * 400 + (month <= 2)
    parts = [year // 100, year % 100, month, day_of_year - (153 * shifted + 2) // 5 + 1]
    offsets = [0, 2, 5, 8]
    template = b"0000-00-00"
    if with_time:
        parts += [secs // 3600, secs // 60 % 60, secs % 60]
        offsets += [11, 14, 17]
        template += b"T00:00:00.000Z"
    out = np.full(len(days), template, dtype=f"S{len(template)}")
    names = [f"f{k}" for k in range(len(parts))]
    fields = out.view(np.dtype({"names": names, "formats": ["S2"] * len(parts),
                                "offsets": offsets, "itemsize": len(template)}))  # fmt: skip
    for name, value in zip(names, parts, strict=True):
        fields[name] = _PAIRS[value]
    return out.astype(StringDType()).astype(object)


def _technologies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multi-select values: 0-5 tools ';'-joined in picklist order, popular ones likelier."""
    names, weight = list(_TECHNOLOGIES), np.array(list(_TECHNOLOGIES.values()))
    how_many = rng.choice(6, n, p=[.25, .2, .2, .15, .12, .08])
    keys = np.log(rng.random((n, len(names)))) / weight  # weighted sampling without replacement
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    mask = ((rank < how_many[:, None]) * (1 << np.arange(len(names)))).sum(axis=1)
    both = (mask & 3) == 3  # few orgs run two CRMs: mostly keep just Salesforce
    mask[both & (rng.random(n) < 0.8)] -= 2
    table = [";".join(t for b, t in enumerate(names) if code >> b & 1) for code in range(1024)]
    return np.array(table, dtype=object)[mask]
