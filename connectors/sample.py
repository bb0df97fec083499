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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

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


class _Industry(NamedTuple):
    name: str
    share: float  # of accounts
    log_employees: float  # log of the median headcount
    win_rate: float  # seed ICP win rate; the model's intercept rescales them
    acv: float  # typical new-business deal, dollars
    cycle: tuple[int, int]  # sales cycle, days
    spellings: str  # "Spelling:weight ...", `_` for a space
    nouns: str  # company-name endings


# fmt: off
_INDUSTRIES = (
    _Industry("Technology/SaaS", .24, 4.8, .75, 15_000, (30, 90),
              "Technology:35 Software:25 SaaS:15 Internet:10 Information_Technology:10 technolgy:2",
              "Analytics Software Labs Systems Technologies Cloud Data AI"),
    _Industry("E-commerce/Retail", .13, 4.9, .70, 22_000, (60, 120),
              "Retail:45 E-commerce:30 Ecommerce:15 Consumer_Goods:10",
              "Retail_Group Commerce Goods Brands Outfitters Market Stores Supply"),
    _Industry("Financial Services", .12, 5.3, .65, 48_000, (120, 180),
              "Financial_Services:30 Banking:25 Finance:20 Insurance:20 Fintech:5",
              "Capital Financial Bank Insurance Partners Wealth Credit_Union Payments"),
    _Industry("Healthcare", .11, 5.2, .55, 35_000, (180, 270),
              "Healthcare:60 Biotechnology:20 Hospital_&_Health_Care:10 Pharmaceuticals:10",
              "Health Medical Biosciences Therapeutics Care Clinics Pharma Diagnostics"),
    _Industry("Media", .08, 4.7, .60, 20_000, (90, 150),
              "Media:50 Entertainment:30 Publishing:20",
              "Media Studios Entertainment Publishing Broadcasting Creative Games Records"),
    _Industry("Manufacturing", .14, 5.3, .45, 30_000, (180, 360),
              "Manufacturing:60 Machinery:20 Energy:10 Industrial:10",
              "Manufacturing Industries Machinery Energy Materials Components Engineering Steel"),
    _Industry("Government", .08, 5.6, .30, 45_000, (270, 540),
              "Government:45 Education:35 Public_Sector:10 Not_For_Profit:10",
              "County School_District Public_Schools Transit_Authority University Water_District "
              "Housing_Authority College"),
    _Industry("Other", .10, 4.8, .50, 20_000, (60, 180),
              "Hospitality:1 Agriculture:1 Construction:1 Legal:1 Real_Estate:1 Transportation:1",
              "Hotels Farms Construction Law_Group Realty Logistics Builders Properties"),
)
_GOVERNMENT, _OTHER = 6, 7
_COUNTRIES = (  # share, spellings, states
    (.55, "United_States:60 USA:20 US:15 United_States_of_America:5",
     ":2 CA:15 NY:10 TX:9 MA:6 WA:5 IL:5 FL:6 GA:3 CO:4 NJ:4 PA:4 VA:3 NC:3 OH:3 MI:2 MN:2 "
     "AZ:2 OR:2 UT:2 MD:2 TN:2 MO:1 WI:1 IN:1"),
    (.10, "United_Kingdom:60 UK:30 GB:10", ":1"), (.07, "Germany:80 DE:15 Deutschland:5", ":1"),
    (.06, "Canada:90 CA:10", ":50 ON:20 BC:12 QC:12 AB:6"), (.05, "France:90 FR:10", ":1"),
    (.04, "Australia:90 AU:10", ":1"), (.05, "India:90 IN:10", ":1"),
    (.03, "Netherlands:80 The_Netherlands:10 NL:10", ":1"), (.03, "Brazil:85 Brasil:10 BR:5", ":1"),
    (.02, "Japan:90 JP:10", ":1"),
)
_TECHNOLOGIES = {"Salesforce": .45, "HubSpot": .30, "Outreach": .12, "Gong": .10, "Snowflake": .15,
                 "Segment": .10, "Marketo": .12, "Zendesk": .20, "Slack": .50, "Jira": .35}
_FUNDING = ("Bootstrapped", "Seed", "Series A", "Series B", "Series C", "Series D", "Public")
_FUNDING_BY_BAND = np.array([  # rows: <50, 50-500, 501-5000, >5000 employees, pre-revenue
    [.35, .35, .18, .07, .02, .01, .02], [.25, .08, .22, .22, .12, .06, .05],
    [.18, .02, .08, .15, .17, .15, .25], [.12, .00, .01, .03, .06, .10, .68],
    [.30, .60, .10, .00, .00, .00, .00],
])
_STEMS = ("North Blue Silver Bright Iron Red Green Stone River Clear Summit Pine Oak Cedar Maple "
          "Falcon Eagle Hawk Wolf Fox Star Sun Moon Sky Cloud Rapid Swift Prime True Nova Apex "
          "Vertex Quantum Hyper Omni Terra Aqua Blaze Crystal Golden Harbor Lake Ocean Polar "
          "Crest Ever High Wild Royal Copper")
_ENDINGS = ("wind peak stone field bridge gate light works line path point ridge wave spark forge "
            "craft mark core scale loop shift hub nest view bay wood brook dale ford port")
_SUFFIXES = ":40 _Inc.:15 ,_Inc.:10 _LLC:12 _Corp.:8 _Ltd:8 _Co.:7"
_SITES = ("https://www.|.com:45 http://www.|.com:10 https://|.com:15 www.|.com:10 |.com:5 "
          "https://|.io:6 http://|.io:3 https://www.|.co:6 :5")
_TYPES = ("Prospect:72 Customer_-_Direct:15 Customer_-_Channel:5 Channel_Partner_/_Reseller:4 "
          "Other:4")
_OWNERSHIP = np.array(["Private", "Public", "Subsidiary", "Other"], dtype=object)
_SOURCES = "Web:35 Phone_Inquiry:10 Partner_Referral:15 Purchased_List:15 Other:10 Trade_Show:15"
_LEAD_SOURCES = ("Web:25 Phone_Inquiry:8 Partner_Referral:14 Purchased_List:10 Other:6 "
                 "Advertisement:8 Employee_Referral:6 Trade_Show:12 :11")
_DEALS = "_-_New_Business:3 _-_Platform:1 _-_Pilot:1 _-_Annual_Subscription:1"
_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote",
           "Negotiation/Review", "Closed Lost", "Closed Won")
_LOSS_REASONS = ("Price", "Competitor", "No Decision", "Timing", "Missing Feature", "Budget", "")
_LOSS_BY_SEGMENT = np.array([  # rows: default, government, enterprise, small or pre-revenue
    [.20, .25, .20, .13, .10, .08, .04], [.05, .05, .40, .10, .03, .33, .04],
    [.10, .30, .22, .10, .20, .04, .04], [.30, .10, .12, .10, .03, .31, .04],
])
# fmt: on
_PAIRS = np.array([f"{i:02d}" for i in range(100)])
_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "u1")
_CHECKSUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "u1")
_BOOLEANS = np.array(["false", "true"], dtype=object)


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
        One row per account, columns `ACCOUNT_COLUMNS`, ordered by CreatedDate (and Id).
    """
    rng = np.random.default_rng(seed)
    now = (today - date(1970, 1, 1)).days * _DAY  # midnight UTC, as epoch seconds
    ind = rng.choice(len(_INDUSTRIES), n, p=[i.share for i in _INDUSTRIES])
    log_median = np.array([i.log_employees for i in _INDUSTRIES])[ind]
    employees = np.clip(np.rint(np.exp(rng.normal(log_median, 1.75))), 1, 50_000).astype(np.int64)
    age = np.rint(np.exp(rng.normal(1.1 + 0.3 * np.log(employees), 0.6)))
    year = np.clip(today.year - age, 1950, min(today.year - 1, 2025)).astype(np.int64)
    pre_revenue = (employees < 50) & (year >= today.year - 6) & (rng.random(n) < 0.45)
    revenue = employees * rng.uniform(150e3, 250e3, n) * rng.lognormal(0, 0.25, n)
    revenue = np.where(pre_revenue, 0, np.rint(revenue / 1000) * 1000).astype(np.int64)
    funding = _pick(rng, _FUNDING_BY_BAND, np.where(pre_revenue, 4, _size_band(employees)))
    series_ac = (funding >= 2) & (funding <= 4)
    growth = rng.normal(0.08 + 0.12 * (employees <= 500) + 0.15 * series_ac, 0.18)
    last_year = np.maximum(1, np.rint(employees / (1 + np.clip(growth, -0.3, 1.5))))
    owner_group = np.where(funding == 6, 1, np.where(ind == _GOVERNMENT, 2, 0))
    ownership = _pick(rng, np.array([[75, 0, 15, 10], [2, 95, 3, 0], [5, 0, 5, 90]]), owner_group)
    country = rng.choice(len(_COUNTRIES), n, p=[c[0] for c in _COUNTRIES])
    state = _spell(rng, country, [c[2] for c in _COUNTRIES], 0)
    created = np.sort(now - 60 - (4 * 365 * _DAY * rng.random(n) ** 0.7).astype(np.int64))
    modified = created + ((now - created) * rng.random(n) ** 0.35).astype(np.int64)
    # Names and websites are looked up in small tables of every combination, not built per row.
    stems = np.add.outer(np.array(_words(_STEMS)), np.array(_words(_ENDINGS))).ravel()
    company = rng.integers(0, len(stems), n)
    nouns = np.array([[" " + w for w in _words(i.nouns)] for i in _INDUSTRIES]).ravel()
    suffixes = np.array(_words(_SUFFIXES))
    suffix = np.where(ind == _GOVERNMENT, 0, _draw(rng, _SUFFIXES, n))
    tails = np.add.outer(nouns, suffixes).ravel().astype(object)
    name = (
        stems.astype(object)[company]
        + tails[(ind * 8 + rng.integers(0, 8, n)) * len(suffixes) + suffix]
    )
    sites = [s.split("|") if s else ["", ""] for s in _words(_SITES)]
    urls = np.add.outer(np.array([s[0] for s in sites]), np.strings.lower(stems))
    urls = (urls + np.array([s[1] for s in sites])[:, None]).ravel().astype(object)
    urls[-len(stems) :] = ""  # the last choice is no website
    website = urls[_draw(rng, _SITES, n) * len(stems) + company]
    columns = {
        "Id": _ids("001", _counters(rng, n)),
        "Name": name,
        "Website": website,
        "Industry": _spell(rng, ind, [i.spellings for i in _INDUSTRIES], 0.03),
        "Type": _sample(rng, _TYPES, n),
        "Ownership": _OWNERSHIP[ownership],
        "Rating": _sample(rng, "Hot:12 Warm:28 Cold:25 :35", n),
        "AccountSource": _sample(rng, _SOURCES, n),
        "NumberOfEmployees": _ints(employees, rng.random(n) < 0.04),
        "AnnualRevenue": _ints(revenue, rng.random(n) < 0.06),
        "BillingCountry": _spell(rng, country, [c[1] for c in _COUNTRIES], 0.02),
        "BillingState": state,
        "YearStarted": _ints(year, rng.random(n) < 0.1),
        "CreatedDate": _format(created),
        "SystemModstamp": _format(modified),
        "Funding_Stage__c": np.where(rng.random(n) < 0.3, "", np.array(_FUNDING, object)[funding]),
        "Employees_Last_Year__c": _ints(last_year.astype(np.int64), rng.random(n) < 0.35),
        "Technologies__c": _technologies(rng, n),
    }
    blank = np.full(n, "", dtype=object)
    columns.update({c: blank for c in ACCOUNT_COLUMNS if c.startswith("ICP_")})
    return pd.DataFrame(columns, columns=list(ACCOUNT_COLUMNS), dtype="str")


def generate_opportunities(
    accounts: pd.DataFrame, seed: int = 7, today: date = TODAY
) -> pd.DataFrame:
    """Raw Opportunity rows for those accounts.

    Outcomes follow a logistic model of what the accounts' fields show (industry spelling,
    headcount band, revenue, growth, tech stack, funding), plus per-account and per-deal noise.

    Args:
        accounts: rows from `generate_accounts` (or any frame with its columns, no nulls).
        seed: random seed; the same seed and accounts give the same rows.
        today: the export date; closed deals close before it, open ones after.

    Returns:
        One row per opportunity, columns `OPPORTUNITY_COLUMNS`, ordered by CreatedDate (and Id).
    """
    rng = np.random.default_rng([seed, 1])
    now, n = (today - date(1970, 1, 1)).days * _DAY, len(accounts)
    counts = rng.choice(6, n, p=[0.3, 0.25, 0.18, 0.12, 0.09, 0.06]) + 1
    acc = np.repeat(np.arange(n), np.where(rng.random(n) < 0.6, counts, 0))
    since = pd.to_datetime(accounts["CreatedDate"], utc=True, format="ISO8601", errors="coerce")
    opened = ((since - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).fillna(0)
    start = np.maximum(opened.to_numpy(np.int64)[acc], now - 3 * 365 * _DAY)
    created = start + ((now - start) * rng.random(len(acc)) ** 1.3).astype(np.int64)
    order = np.argsort(created, kind="stable")  # ids follow creation, as in a real org
    acc, created, m = acc[order], created[order], len(acc)
    lookup = {s: k for k, i in enumerate(_INDUSTRIES) for s in _weights(i.spellings)}
    industry = _per_value(accounts["Industry"], lambda s: s.map(lookup).fillna(_OTHER))
    ind = industry.astype(np.int64)[acc]
    employees, revenue, last_year = (
        _per_value(accounts[c], lambda s: pd.to_numeric(s, errors="coerce")).astype(float)[acc]
        for c in ("NumberOfEmployees", "AnnualRevenue", "Employees_Last_Year__c")
    )
    band = np.where(np.isnan(employees), 4, _size_band(employees))
    stack = accounts["Technologies__c"]
    crm = _per_value(stack, lambda s: s.str.contains("Salesforce|HubSpot", na=False)).astype(bool)
    funded = accounts["Funding_Stage__c"].isin(_FUNDING[2:5]).to_numpy(bool)
    existing = rng.random(m) < 0.2
    win_rates = np.array([i.win_rate for i in _INDUSTRIES])
    logit = (
        -1.65
        + np.log(win_rates / (1 - win_rates))[ind]
        + np.array([-0.3, 0.8, 0.0, -0.9, 0.0])[band]
        - 3.0 * (revenue == 0)
        + 0.5 * (employees > 1.2 * last_year)
        + 0.5 * crm[acc]
        + 0.4 * funded[acc]
        + 0.6 * existing
        + rng.normal(0, 0.5, n)[acc]
        + rng.normal(0, 0.5, m)
    )
    won = rng.random(m) < 1 / (1 + np.exp(-logit))
    cycle_range = np.array([i.cycle for i in _INDUSTRIES], dtype=float)[ind]
    cycle = rng.uniform(cycle_range[:, 0], cycle_range[:, 1]) * np.array([1, 1, 1.25, 1.9, 1])[band]
    cycle = np.maximum(1, np.rint(cycle * np.where(won, 1, rng.uniform(0.35, 1, m))))
    today_day, created_day = now // _DAY, created // _DAY
    close_day = created_day + cycle.astype(np.int64)
    closed = (close_day < today_day) & (rng.random(m) >= 0.05)  # some stale deals stay open
    progress = (today_day - created_day) / np.maximum(1, close_day - created_day)
    stage = np.where(closed, 5 + won, np.clip(progress * 5 + rng.normal(0, 0.7, m), 0, 4))
    stale = ~closed & (close_day < today_day)
    close_day = np.where(stale, today_day + rng.integers(7, 90, m), close_day)
    won &= closed
    acv = np.array([i.acv for i in _INDUSTRIES])[ind] * np.where(existing, 0.45, 1)
    size = np.clip(np.nan_to_num(employees, nan=150), 10, 50_000) / 150
    amount = np.maximum(5, np.rint(acv * size**0.3 * rng.lognormal(0, 0.5, m) / 100)) * 100
    low = np.where(closed, np.maximum(created, close_day * _DAY), created)
    modified = low + ((now - low) * rng.random(m) ** 3).astype(np.int64)
    segment = np.select([ind == _GOVERNMENT, band == 3, (band == 0) | (revenue == 0)], [1, 2, 3])
    loss = np.array(_LOSS_REASONS, dtype=object)[_pick(rng, _LOSS_BY_SEGMENT, segment)]
    account_ids = accounts["Id"].to_numpy(object)[acc]
    orphan = np.flatnonzero(rng.random(m) < 0.01)  # deals of since-deleted accounts
    account_ids[orphan] = _ids("001", rng.integers(62**8, 2 * 62**8, len(orphan)))  # unused range
    label = np.array(_words(_DEALS), dtype=object)[_draw(rng, _DEALS, m)]
    names = accounts["Name"].to_numpy(object)[acc] + np.where(existing, " - Expansion", label)
    return pd.DataFrame(
        {
            "Id": _ids("006", _counters(rng, m)),
            "AccountId": account_ids,
            "Name": names,
            "StageName": np.array(_STAGES, dtype=object)[stage.astype(np.int64)],
            "IsClosed": _BOOLEANS[closed.astype(np.int64)],
            "IsWon": _BOOLEANS[won.astype(np.int64)],
            "Amount": _ints(amount.astype(np.int64), rng.random(m) < 0.02),
            "CloseDate": _format(close_day * _DAY, with_time=False),
            "CreatedDate": _format(created),
            "Type": np.array(["New Business", "Existing Business"], object)[existing * 1],
            "LeadSource": _sample(rng, _LEAD_SOURCES, m),
            "SystemModstamp": _format(modified),
            "Loss_Reason__c": np.where(closed & ~won, loss, ""),
        },
        columns=list(OPPORTUNITY_COLUMNS),
        dtype="str",
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
    won = opportunities["IsWon"].eq("true") & opportunities["Type"].eq("New Business")
    has_won = account_rows["Id"].isin(opportunities.loc[won, "AccountId"]).to_numpy(bool)
    kind = account_rows["Type"].to_numpy(object).copy()
    customer = account_rows["Type"].str.startswith("Customer").to_numpy(bool)
    roll = np.random.default_rng([seed, 2]).random(accounts)
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


def _size_band(employees: np.ndarray) -> np.ndarray:
    """0: <50, 1: 50-500 (the sweet spot), 2: 501-5000, 3: >5000 employees."""
    return np.digitize(employees, [50, 501, 5001])


def _weights(spec: str) -> dict[str, float]:
    """`"Spelling:weight Other_spelling ..."` -> {spelling: weight}; `_` is a space, weight 1."""
    pairs = (item.rpartition(":")[::2] if ":" in item else (item, "1") for item in spec.split())
    return {key.replace("_", " "): float(weight) for key, weight in pairs}


def _words(spec: str) -> list[str]:
    return list(_weights(spec))


def _draw(rng: np.random.Generator, spec: str, n: int) -> np.ndarray:
    """`n` indices into the values of `spec`, drawn by weight."""
    p = np.array(list(_weights(spec).values()))
    return rng.choice(len(p), n, p=p / p.sum())


def _sample(rng: np.random.Generator, spec: str, n: int) -> np.ndarray:
    """`n` values of `spec`, drawn by weight, as an object array."""
    return np.array(_words(spec), dtype=object)[_draw(rng, spec, n)]


def _pick(rng: np.random.Generator, probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One column index per row, drawn from the row of `probs` that `group` names."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cumulative[cumulative > 1 - 1e-9] = 1.0  # rounding must never pick a zero-weight column
    rows, width = probs.shape
    flat = (cumulative + np.arange(rows)[:, None]).ravel()  # row g spans [g, g + 1]
    index = np.searchsorted(flat, rng.random(len(group)) + group, side="right") - group * width
    return np.minimum(index, width - 1)


def _spell(
    rng: np.random.Generator, group: np.ndarray, specs: list[str], empty: float
) -> np.ndarray:
    """The CRM spelling of each row's underlying value; a share `empty` left blank."""
    tables = [_weights(s) for s in specs]
    width = max(len(t) for t in tables)
    probs = np.array([[*t.values(), *[0] * (width - len(t))] for t in tables])
    vocab = np.array([[*t, *[""] * (width - len(t))] for t in tables], dtype=object)
    out = vocab[group, _pick(rng, probs, group)]
    out[rng.random(len(group)) < empty] = ""
    return out


def _ints(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Integers as text without separators; '' where `empty`."""
    top = int(values.max(initial=0))
    if values.min(initial=0) >= 0 and top <= len(values):  # one str per value up to the top
        out = np.arange(top + 1).astype(str).astype(object)[values]
    else:  # one str per distinct value
        distinct, index = np.unique(values, return_inverse=True)
        out = distinct.astype(str).astype(object)[index]
    out[empty] = ""
    return out


def _per_value(series: pd.Series, parse: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """`parse` applied once to each distinct value of `series`, spread back over its rows."""
    codes, distinct = pd.factorize(series, use_na_sentinel=False)
    return parse(pd.Series(distinct)).to_numpy()[codes]


def _counters(rng: np.random.Generator, n: int) -> np.ndarray:
    """Increasing, unique record numbers with gaps, like a real org's."""
    return int(rng.integers(62**7, 62**8 // 2)) + np.cumsum(rng.integers(1, 30, n))


def _ids(prefix: str, counters: np.ndarray) -> np.ndarray:
    """18-character Salesforce ids: key prefix, pod `5g0`, 9 base-62 digits, case checksum."""
    head = prefix + "5g0"
    codes, upper = _triples()
    high, low = np.divmod(np.asarray(counters, dtype=np.int64), 62**3)
    top, middle = np.divmod(high, 62**3)
    chars = np.empty((len(low), 18), dtype=np.uint32)
    chars[:, :6] = [ord(c) for c in head]
    chars[:, 6:9], chars[:, 9:12], chars[:, 12:15] = codes[top], codes[middle], codes[low]
    # The checksum: per 5 characters, a bit for each upper-case one, as a letter or digit.
    chars[:, 15] = _CHECKSUM[sum(c.isupper() << k for k, c in enumerate(head[:5]))]
    chars[:, 16] = _CHECKSUM[upper[top] << 1 | (upper[middle] & 1) << 4]
    chars[:, 17] = _CHECKSUM[upper[middle] >> 1 | upper[low] << 2]
    return chars.view("U18").ravel().astype(object)


@cache
def _triples() -> tuple[np.ndarray, np.ndarray]:
    """Every 3-digit base-62 number's characters, and a bit per upper-case one."""
    digits = np.arange(62**3)[:, None] // np.array([62**2, 62, 1]) % 62
    return _BASE62[digits].astype(np.uint32), ((digits >= 10) & (digits < 36)) @ [1, 2, 4]


def _format(seconds: np.ndarray, with_time: bool = True) -> np.ndarray:
    """Epoch seconds as `2025-03-04T10:11:12.000Z`, or as `2025-03-04` without time."""
    days, secs = np.divmod(np.asarray(seconds, dtype=np.int64), _DAY)
    first, last = int(days.min(initial=0)), int(days.max(initial=0))
    calendar = np.arange(first, last + 1).astype("datetime64[D]")  # one entry per day spanned
    out = np.datetime_as_string(calendar).astype(object)[days - first]
    return out + _clock()[secs] if with_time else out


@cache
def _clock() -> np.ndarray:
    """`T00:00:00.000Z` ... `T23:59:59.000Z`, one per second of the day."""
    second = np.arange(_DAY)
    clock = (
        "T" + _PAIRS[second // 3600] + ":" + _PAIRS[second // 60 % 60] + ":" + _PAIRS[second % 60]
    )
    return (clock + ".000Z").astype(object)


def _technologies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multi-select values: 0-5 tools ';'-joined in picklist order; ~25% of rows blank."""
    names = list(_TECHNOLOGIES)
    chosen = rng.random((n, len(names)), dtype=np.float32) < np.array(list(_TECHNOLOGIES.values()))
    chosen[:, 1] &= ~chosen[:, 0] | (rng.random(n) < 0.2)  # few orgs run two CRMs
    chosen &= np.cumsum(chosen, axis=1) <= 5  # the field holds at most five
    chosen[rng.random(n) < 0.22] = False  # not enriched
    code = np.packbits(chosen, axis=1, bitorder="little").view("<u2").ravel()
    table = [";".join(t for b, t in enumerate(names) if c >> b & 1) for c in range(1 << len(names))]
    return np.array(table, dtype=object)[code]
