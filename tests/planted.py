"""Canonical CRM frames with a known, planted win structure (for tests and benchmarks).

What wins (log-odds, added up per account):

- a non-monotonic **sweet spot**: 50-500 employees +1.1; under 50 -0.3; 501-5,000 0;
  over 5,000 -0.5 (and their deals take 2.5 times longer: a **slow** segment; 5% of
  accounts come from a tail of large companies so that it has support);
- industry: Technology/SaaS +0.6, Fintech +0.3, Healthcare -0.3, Manufacturing -0.4,
  Logistics -0.2; Manufacturing losses are mostly on Price (65%, 15% elsewhere);
- an **interaction**: Healthcare accounts in EMEA (UK, Germany, France) +2.3 on top;
- uses Salesforce +0.5; pre-revenue (annual_revenue 0) -2.0;
- a three-trait segment, **Scale-up SaaS**: Technology/SaaS accounts with 100-300
  employees founded 3-10 years ago (`year_started`, so `company_age` is derived) +2.2
  on top; no one or two of those traits carries it alone;
- an **emerging** segment: AI/ML accounts (new in the CRM) close mostly in the last 90
  days and win there (+1.5 in total) after losing more often before (-0.5);
- **noise**: `noise_number`, `noise_category`, the Jira and Slack technologies, `source`.

Each account with an outcome has exactly one closed new-business deal in the window, so
the oracle's probability is the true probability of the account's outcome. Account
`type` is set from the outcome (Customer / Prospect), as CRMs do: a leak to be excluded.
Won accounts get expansion deals; Snowflake users expand more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

NOW = datetime(2026, 6, 30, tzinfo=UTC)
FIELD_TYPES = {
    "account_id": "text",
    "name": "text",
    "domain": "domain",
    "industry": "text",
    "type": "text",
    "source": "text",
    "employees": "number",
    "annual_revenue": "number",
    "country": "text",
    "created_at": "datetime",
    "modified_at": "datetime",
    "funding_stage": "text",
    "employees_last_year": "number",
    "technologies": "multi",
    "noise_number": "number",
    "noise_category": "text",
    "year_started": "number",
}
INDUSTRIES = {
    "Technology/SaaS": (0.22, 0.6),
    "Fintech": (0.12, 0.3),
    "Retail": (0.13, 0.0),
    "Healthcare": (0.14, -0.3),
    "Manufacturing": (0.14, -0.4),
    "Media": (0.09, 0.0),
    "Logistics": (0.145, -0.2),
    "AI/ML": (0.015, 0.0),
}
COUNTRIES = {
    "United States": 0.45,
    "Canada": 0.07,
    "United Kingdom": 0.12,
    "Germany": 0.10,
    "France": 0.08,
    "Australia": 0.06,
    "Japan": 0.04,
    "Brazil": 0.04,
    "India": 0.04,
}
EMEA = ("United Kingdom", "Germany", "France")
TECH = {"Salesforce": 0.40, "HubSpot": 0.30, "Slack": 0.50, "Jira": 0.35, "Snowflake": 0.18}
FUNDING = {"Seed": 0.2, "Series A-C": 0.35, "Late stage": 0.15, "Public": 0.1, "Bootstrapped": 0.2}
REASONS = ("Price", "Competitor", "No Decision", "Timing")
_DAY = pd.Timedelta(days=1)
SCALE_UP = 2.2
"""Log-odds the Scale-up SaaS segment adds (Technology/SaaS, 100-300 employees, 3-10 years)."""


def _pick(rng: np.random.Generator, table: dict[str, Any], n: int) -> np.ndarray:
    keys = list(table)
    weights = np.array([v[0] if isinstance(v, tuple) else v for v in table.values()], float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), n, p=weights / weights.sum())]


def planted_crm(
    n_accounts: int = 4000,
    seed: int = 11,
    now: datetime = NOW,
    signal: bool = True,
    scale_up: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Accounts, opportunities (canonical frames) and the oracle.

    Args:
        n_accounts: accounts to generate (about 65% get a closed outcome).
        seed: random seed; the same arguments give identical frames.
        now: the reference time; outcomes close within the 720 days before it.
        signal: False makes every outcome a coin flip at 45%, whatever the traits.
        scale_up: False leaves the Scale-up SaaS segment out (founding years are still
            drawn): a control for the three-trait segment search.

    Returns:
        (accounts, opportunities, oracle) where oracle holds `p_win` (true win
        probability per account id, NaN without an outcome) and the planted structure.
    """
    rng = np.random.default_rng(seed)
    n = n_accounts
    now_ts = pd.Timestamp(now)
    ids = np.array([f"A{i:06d}" for i in range(n)], dtype=object)
    industry = _pick(rng, INDUSTRIES, n)
    ai = industry == "AI/ML"
    enterprise = rng.random(n) < 0.05  # a tail of large companies, so ">5,000" has support
    log_size = np.where(
        enterprise, rng.normal(np.log(15_000), 0.6, n), rng.normal(np.log(180), 1.5, n)
    )
    employees = np.clip(np.exp(log_size), 1, 200_000).round()
    growth = rng.normal(0.1, 0.2, n)
    last_year = np.where(
        rng.random(n) < 0.3, np.nan, np.maximum(1, (employees / (1 + growth)).round())
    )
    revenue = (employees * 150_000 * rng.lognormal(0, 0.5, n)).round(-3)
    pre_revenue = rng.random(n) < np.where(employees < 50, 0.15, 0.02)
    revenue[pre_revenue] = 0
    revenue[rng.random(n) < 0.05] = np.nan
    country = _pick(rng, COUNTRIES, n)
    chosen = rng.random((n, len(TECH))) < np.array(list(TECH.values()))
    chosen[rng.random(n) < 0.2] = False
    names = list(TECH)
    tech = np.array(
        [";".join(t for t, c in zip(names, row, strict=True) if c) or None for row in chosen],
        dtype=object,
    )
    salesforce = chosen[:, 0]
    snowflake = chosen[:, 4]
    funding = np.where(rng.random(n) < 0.25, None, _pick(rng, FUNDING, n))
    created = now_ts - pd.to_timedelta(rng.uniform(800, 1500, n), unit="D")
    created = created.where(~ai, now_ts - pd.to_timedelta(rng.uniform(120, 360, n), unit="D"))

    # founding years come from their own stream, so every other draw is what it was
    # before the segment was planted (the tests' expectations on the other patterns hold)
    years = np.random.default_rng([seed, 2026])
    young = np.where(industry == "Technology/SaaS", 0.55, 0.35)  # SaaS companies are younger
    u = years.random(n)
    age = np.where(
        u < young,
        years.integers(3, 11, n),
        np.where(u < young + 0.2, years.integers(0, 3, n), years.integers(11, 60, n)),
    )
    year_started = np.where(years.random(n) < 0.05, np.nan, now_ts.year - age).astype(float)
    in_scale_up = (
        (industry == "Technology/SaaS") & (employees >= 100) & (employees <= 300) & (age >= 3)
    ) & (age <= 10)

    band = np.digitize(employees, [50, 501, 5001])
    logit = (
        -0.9
        + np.array([-0.3, 1.1, 0.0, -0.5])[band]
        + np.array([INDUSTRIES[i][1] for i in industry])
        + 2.3 * ((industry == "Healthcare") & np.isin(country, EMEA))
        + 0.5 * salesforce
        - 2.0 * (revenue == 0)
        + (SCALE_UP if scale_up else 0.0) * in_scale_up
    )
    has_outcome = rng.random(n) < 0.65
    days_ago = rng.uniform(1, 720, n)
    recent_ai = ai & (rng.random(n) < 0.85)
    days_ago = np.where(recent_ai, rng.uniform(1, 89, n), days_ago)
    days_ago = np.where(ai & ~recent_ai, rng.uniform(91, 110, n), days_ago)
    logit = np.where(ai, np.where(days_ago < 90, 1.5, -0.5), logit)
    p_win = 1 / (1 + np.exp(-logit)) if signal else np.full(n, 0.45)
    won = rng.random(n) < p_win
    closed = now_ts - pd.to_timedelta(days_ago, unit="D")
    cycle = rng.uniform(30, 150, n) * np.where(band == 3, 2.5, 1.0)
    opened = closed - pd.to_timedelta(cycle, unit="D")
    size = np.clip(employees, 10, 50_000) / 200
    amount = (20_000 * size**0.3 * rng.lognormal(0, 0.4, n)).round(-2)
    reason = np.where(
        industry == "Manufacturing",
        np.array(REASONS, dtype=object)[rng.choice(4, n, p=[0.65, 0.15, 0.1, 0.1])],
        np.array(REASONS, dtype=object)[rng.choice(4, n, p=[0.15, 0.35, 0.3, 0.2])],
    )
    idx = np.flatnonzero(has_outcome)
    deals = [
        pd.DataFrame(
            {
                "account_id": ids[idx],
                "stage": np.where(won[idx], "Closed Won", "Closed Lost"),
                "is_closed": True,
                "is_won": won[idx],
                "amount": amount[idx],
                "closed_at": closed[idx],
                "created_at": opened[idx],
                "type": "New Business",
                "loss_reason": np.where(won[idx], None, reason[idx]),
                "lead_source": _pick(rng, {"Web": 1, "Event": 1, "Referral": 1}, idx.size),
            }
        )
    ]
    open_idx = np.flatnonzero(~has_outcome & (rng.random(n) < 0.4))
    deals.append(
        pd.DataFrame(
            {
                "account_id": ids[open_idx],
                "stage": "Qualification",
                "is_closed": False,
                "is_won": False,
                "amount": amount[open_idx],
                "closed_at": now_ts
                + pd.to_timedelta(rng.uniform(10, 120, open_idx.size), unit="D"),
                "created_at": now_ts - pd.to_timedelta(rng.uniform(5, 60, open_idx.size), unit="D"),
                "type": "New Business",
                "loss_reason": None,
                "lead_source": "Web",
            }
        )
    )
    old = np.flatnonzero(~has_outcome & ~ai & (rng.random(n) < 0.1))
    deals.append(
        pd.DataFrame(
            {
                "account_id": ids[old],
                "stage": "Closed Lost",
                "is_closed": True,
                "is_won": False,
                "amount": amount[old],
                "closed_at": now_ts - pd.to_timedelta(rng.uniform(760, 790, old.size), unit="D"),
                "created_at": now_ts - pd.to_timedelta(rng.uniform(800, 850, old.size), unit="D"),
                "type": "New Business",
                "loss_reason": "Price",
                "lead_source": "Event",
            }
        )
    )
    customers = np.flatnonzero(has_outcome & won & (days_ago > 120))
    expands = rng.random(customers.size) < 1 / (1 + np.exp(-(-1.2 + 2.0 * snowflake[customers])))
    gap = rng.uniform(30, np.maximum(days_ago[customers] - 5, 31))
    deals.append(
        pd.DataFrame(
            {
                "account_id": ids[customers],
                "stage": np.where(expands, "Closed Won", "Closed Lost"),
                "is_closed": True,
                "is_won": expands,
                "amount": (amount[customers] * 0.4).round(-2),
                "closed_at": closed[customers] + pd.to_timedelta(gap, unit="D"),
                "created_at": closed[customers] + pd.to_timedelta(gap - 20, unit="D"),
                "type": "Expansion",
                "loss_reason": None,
                "lead_source": "Existing customer",
            }
        )
    )
    opps = pd.concat(deals, ignore_index=True)
    opps.insert(0, "opportunity_id", [f"O{i:07d}" for i in range(len(opps))])
    opps["modified_at"] = opps["closed_at"].where(opps["is_closed"], now_ts)
    opps = opps.astype({"is_closed": "boolean", "is_won": "boolean", "amount": float})
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "name": [f"Company {i}" for i in range(n)],
            "domain": [f"company{i}.com" for i in range(n)],
            "industry": industry,
            "type": np.where(has_outcome & won, "Customer", "Prospect"),
            "source": _pick(rng, {"Web": 0.4, "Referral": 0.2, "Event": 0.2, "Outbound": 0.2}, n),
            "employees": employees,
            "annual_revenue": revenue,
            "country": country,
            "created_at": created,
            "modified_at": now_ts - pd.to_timedelta(rng.uniform(0, 30, n), unit="D"),
            "funding_stage": funding,
            "employees_last_year": last_year,
            "technologies": tech,
            "noise_number": rng.uniform(0, 1000, n).round(1),
            "noise_category": _pick(
                rng, dict.fromkeys(("red", "green", "blue", "amber", "violet"), 1), n
            ),
            "year_started": year_started,
        }
    )
    oracle = {
        "p_win": pd.Series(np.where(has_outcome, p_win, np.nan), index=ids, name="p_win"),
        "sweet_spot": (50, 500),
        "interaction": {"industry": "Healthcare", "region": "EMEA", "countries": EMEA},
        "emerging": {"industry": "AI/ML"},
        "scale_up": {
            "industry": "Technology/SaaS",
            "employees": (100, 300),
            "company_age": (3, 10),
            "name": "Mid-market Technology/SaaS scale-ups, 3-10 years old",
        },
        "noise_fields": ["noise_number", "noise_category"],
        "noise_values": {"technologies": ["Jira", "Slack"]},
        "anti_pattern": {"annual_revenue": 0},
        "expansion": {"technologies": "Snowflake"},
    }
    return accounts, opps, oracle
