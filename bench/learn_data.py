"""Public and generated CRM data -> the canonical frames `scoring.learn.train` takes.

Used by `bench/bench_learn.py`; every adapter states its mapping rules in `Dataset.rules`
so the benchmark can print them next to the figures. Nothing here is product code: the
product reads CRMs through `connectors/`, and tests never read `../shared`.

Conventions shared by the adapters:

- Accounts carry every account field of the bundled CSV mapping (`mappings/csv.yaml`);
  fields a data set does not have are empty columns, exactly as the CSV connector reads
  a mapped column missing from a file. So the shipped `mappings/icp.yaml` is a valid
  manual ICP for each data set, and the data set's own attributes are extra fields.
- Datetimes are tz-aware UTC; `is_closed` / `is_won` are pandas `boolean`.
- `now` is the day after the data's last date and the look-back covers the whole history
  (`LOOKBACK_DAYS`), so no outcome is dropped for its age.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.mapping import CrmMapping
from icp_engine.connectors.sample import TODAY, generate_accounts, generate_opportunities
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.sync.config import load_config

LOOKBACK_DAYS = 3650
OLIST_HORIZON_DAYS = 14
"""A lead not won is dated lost this long after first contact (the median win lag)."""
_UTC = "datetime64[ns, UTC]"
OPPORTUNITY_COLUMNS = (
    "opportunity_id", "account_id", "stage", "is_closed", "is_won", "amount", "created_at",
    "closed_at", "type", "loss_reason", "lead_source", "modified_at",
)  # fmt: skip


@dataclass
class Dataset:
    """Canonical frames plus what `train` needs beside them, and how they were made."""

    name: str
    accounts: pd.DataFrame
    opportunities: pd.DataFrame
    field_types: dict[str, str]
    now: datetime
    rules: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


@cache
def csv_config() -> tuple[CrmMapping, IcpCriteria]:
    """The bundled CSV mapping and the manual ICP (`load_config("csv", None)`)."""
    config = load_config("csv", None)
    return config.mapping, config.icp


def _empty(kind: str, n: int) -> pd.Series:
    if kind == "number":
        return pd.Series(np.nan, index=range(n), dtype=float)
    if kind in ("date", "datetime"):
        return pd.Series(pd.NaT, index=range(n), dtype=_UTC)
    if kind == "boolean":
        return pd.Series(pd.NA, index=range(n), dtype="boolean")
    return pd.Series(None, index=range(n), dtype=object)


def conform(accounts: pd.DataFrame, extra: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add the CSV mapping's account fields a data set lacks (empty); (frame, field types)."""
    mapping, _ = csv_config()
    types = dict(mapping.field_types("account")) | extra
    out = accounts.reset_index(drop=True).copy()
    for name, kind in types.items():
        if name not in out:
            out[name] = _empty(kind, len(out))
    return out, types


def utc(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Parse to tz-aware UTC nanosecond timestamps (unparseable -> NaT)."""
    return pd.to_datetime(values, format=fmt, utc=True, errors="coerce").astype(_UTC)


def text(values: pd.Series) -> pd.Series:
    """Stripped strings; blanks and NaN -> None (object dtype, as the connectors give)."""
    out = values.astype(object).map(lambda v: str(v).strip() or None, na_action="ignore")
    return out.where(out.notna(), None).astype(object)


def opportunities_frame(n: int, **columns: Any) -> pd.DataFrame:
    """A canonical opportunities frame of `n` deals; a column is an array or one value."""

    def column(name: str) -> pd.Series:
        value = columns.get(name)
        if isinstance(value, pd.Series):
            return value.reset_index(drop=True)
        if value is None or np.ndim(value) == 0:
            return pd.Series([value] * n, dtype=object)
        return pd.Series(value)

    out = pd.DataFrame({name: column(name) for name in OPPORTUNITY_COLUMNS})
    for name in ("is_closed", "is_won"):
        out[name] = out[name].astype(bool).astype("boolean")
    out["amount"] = pd.to_numeric(out["amount"], errors="coerce").astype(float)
    for name in ("created_at", "closed_at", "modified_at"):
        out[name] = pd.to_datetime(out[name], utc=True).astype(_UTC)
    out["modified_at"] = out["modified_at"].fillna(out["closed_at"]).fillna(out["created_at"])
    for name in ("opportunity_id", "account_id", "stage", "type", "loss_reason", "lead_source"):
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def _day_after(stamp: pd.Timestamp) -> datetime:
    return (stamp.normalize() + pd.Timedelta(days=1)).to_pydatetime()


# ---------------------------------------------------------------------------- maven-crm


def maven(data_dir: Path) -> Dataset:
    """Maven CRM: 85 accounts, 8,800 deals (a no-signal control)."""
    folder = data_dir / "maven-crm"
    raw = pd.read_csv(folder / "accounts.csv", dtype=str)
    pipe = pd.read_csv(folder / "sales_pipeline.csv", dtype=str)
    sector = text(raw["sector"]).str.lower()
    typos = int((sector == "technolgy").sum())
    country = text(raw["office_location"])
    country_typos = int((country == "Philipines").sum())
    accounts = pd.DataFrame(
        {
            "account_id": text(raw["account"]),
            "name": text(raw["account"]),
            "industry": sector.replace({"technolgy": "technology"}),
            "employees": pd.to_numeric(raw["employees"], errors="coerce").astype(float),
            "annual_revenue": pd.to_numeric(raw["revenue"], errors="coerce") * 1e6,
            "country": country.replace({"Philipines": "Philippines"}),
            "year_established": pd.to_numeric(raw["year_established"], errors="coerce").astype(
                float
            ),
            "subsidiary_of": text(raw["subsidiary_of"]),
        }
    )
    accounts, types = conform(accounts, {"year_established": "number", "subsidiary_of": "text"})
    stage = text(pipe["deal_stage"])
    orphan = text(pipe["account"]).isna()
    pipe = pipe.loc[~orphan].reset_index(drop=True)
    stage = stage.loc[~orphan].reset_index(drop=True)
    closed = stage.isin(["Won", "Lost"]).to_numpy()
    opps = opportunities_frame(
        len(pipe),
        opportunity_id=text(pipe["opportunity_id"]),
        account_id=text(pipe["account"]),
        stage=stage,
        is_closed=closed,
        is_won=(stage == "Won").to_numpy(),
        amount=pd.to_numeric(pipe["close_value"], errors="coerce"),
        created_at=utc(pipe["engage_date"], "%Y-%m-%d"),
        closed_at=utc(pipe["close_date"], "%Y-%m-%d"),
    )
    unknown = set(opps["account_id"]) - set(accounts["account_id"])
    counts = stage.value_counts().to_dict()
    return Dataset(
        "maven-crm",
        accounts,
        opps,
        types,
        _day_after(opps["closed_at"].max()),
        rules=[
            "accounts.csv: sector -> industry (lower case; `technolgy` -> `technology`), "
            "employees, revenue ($M in the source) x 1e6 -> annual_revenue, office_location "
            "-> country (`Philipines` -> `Philippines`), year_established and subsidiary_of "
            "as extra attributes",
            "sales_pipeline.csv: Won/Lost closed (is_won = Won), Engaging/Prospecting open; "
            "close_value -> amount, engage_date -> created_at, close_date -> closed_at",
            "product and sales_agent describe the deal, not the account: not account traits, "
            "left out; no deal type or loss reason exists",
            f"{int(orphan.sum())} open deals without an account dropped",
        ],
        facts={
            "accounts": len(accounts),
            "deals": len(opps),
            "stages": {str(k): int(v) for k, v in counts.items()},
            "dropped_without_account": int(orphan.sum()),
            "deals_of_unknown_accounts": len(unknown),
            "typos_fixed": {"technolgy": typos, "Philipines": country_typos},
        },
    )


# ---------------------------------------------------------------------------- olist


OLIST_WON_ONLY = ("business_segment", "lead_type", "business_type")
"""Firmographics closed_deals.csv has only for won leads (a leak if used as traits)."""


def olist(data_dir: Path, horizon_days: int = OLIST_HORIZON_DAYS, leak: bool = False) -> Dataset:
    """Olist funnel: each marketing-qualified lead is an account with one deal.

    Args:
        data_dir: the shared data directory.
        horizon_days: a lead not won is lost this many days after its first contact.
        leak: also map the won-only firmographics as account traits (a leak control).
    """
    folder = data_dir / "olist-funnel"
    mql = pd.read_csv(folder / "marketing_qualified_leads.csv", dtype=str)
    deals = pd.read_csv(folder / "closed_deals.csv", dtype=str)
    first = utc(mql["first_contact_date"], "%d-%m-%Y")
    won_at = utc(deals["won_date"], "%d-%m-%Y %H:%M").set_axis(deals["mql_id"].to_numpy())
    ids = text(mql["mql_id"])
    won_date = pd.Series(ids.map(won_at).to_numpy(), dtype=_UTC)
    won = won_date.notna().to_numpy()
    end = won_at.max()
    lost_at = (first + pd.Timedelta(days=horizon_days)).clip(upper=end)
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "name": ids,
            "origin": text(mql["origin"]),
            "landing_page_id": text(mql["landing_page_id"]),
            "first_contact_date": first,
            "created_at": first,
            "modified_at": first,
        }
    )
    extra = {"origin": "text", "landing_page_id": "text", "first_contact_date": "datetime"}
    if leak:
        info = deals.set_index("mql_id")
        for column in OLIST_WON_ONLY:
            accounts[column] = text(ids.map(info[column]))
            extra[column] = "text"
    accounts, types = conform(accounts, extra)
    opps = opportunities_frame(
        len(ids),
        opportunity_id="D-" + ids,
        account_id=ids,
        stage=np.where(won, "Closed Won", "Closed Lost"),
        is_closed=np.ones(len(ids), dtype=bool),
        is_won=won,
        amount=np.nan,
        created_at=first,
        closed_at=won_date.where(won_date.notna(), lost_at),
        type="New Business",
    )
    lag = (won_date - first).dt.days[won]
    return Dataset(
        "olist-funnel" + (" + won-only fields" if leak else ""),
        accounts,
        opps,
        types,
        _day_after(end),
        rules=[
            "each MQL is an account (origin, landing_page_id, first_contact_date as traits; "
            "a missing origin stays null, its own level) with one new-business deal opened "
            "at first contact",
            "won when its mql_id is in closed_deals.csv: closed_at = won_date",
            f"otherwise lost, closed_at = first contact + {horizon_days} days (capped at the "
            f"data's end, {end.date()}, the last won_date); the median contact-to-win lag is "
            f"{float(lag.median()):.0f} days and {float((lag <= horizon_days).mean()):.0%} of "
            f"wins come within {horizon_days} days. A short horizon keeps a contact cohort's "
            "wins and losses together in time, so the time-ordered holdout is the latest "
            "cohorts; the label still counts every win up to the data's end",
            "business_segment, lead_type, business_type exist only for won leads: "
            + ("mapped here as a leak control" if leak else "not mapped (they would leak)"),
        ],
        facts={
            "leads": len(ids),
            "won": int(won.sum()),
            "lost": int((~won).sum()),
            "horizon_days": horizon_days,
            "capped_at_end": int(((first + pd.Timedelta(days=horizon_days)) > end)[~won].sum()),
            "win_lag_days_median": float(lag.median()),
            "data_end": end.isoformat(),
        },
    )


# ---------------------------------------------------------------------------- ravenstack


def ravenstack(data_dir: Path) -> Dataset:
    """RavenStack SaaS: every account is a customer; churn and upgrades are what vary.

    The engine's outcomes are new-business won/lost, expansion and loss reasons; there
    is no churn outcome. Mapped here: churn as a lost outcome of the signup (won = still
    a customer), churn reason codes as loss reasons, upgrade subscriptions as won
    expansion deals.
    """
    folder = data_dir / "ravenstack"
    raw = pd.read_csv(folder / "accounts.csv", dtype=str)
    subs = pd.read_csv(folder / "subscriptions.csv", dtype=str)
    churn = pd.read_csv(folder / "churn_events.csv", dtype=str)
    flag = {"true": True, "false": False}
    signup = utc(raw["signup_date"], "%d-%m-%Y")
    churned = raw["churn_flag"].str.strip().str.lower().map(flag).fillna(False).to_numpy(bool)
    accounts = pd.DataFrame(
        {
            "account_id": text(raw["account_id"]),
            "name": text(raw["account_name"]),
            "industry": text(raw["industry"]),
            "country": text(raw["country"]),
            "referral_source": text(raw["referral_source"]),
            "plan_tier": text(raw["plan_tier"]),
            "seats": pd.to_numeric(raw["seats"], errors="coerce").astype(float),
            "is_trial": raw["is_trial"].str.strip().str.lower().map(flag).astype("boolean"),
            "signup_date": signup,
            "created_at": signup,
            "modified_at": signup,
        }
    )
    accounts, types = conform(
        accounts,
        {"referral_source": "text", "plan_tier": "text", "seats": "number",
         "is_trial": "boolean", "signup_date": "datetime"},
    )  # fmt: skip
    churn["date"] = utc(churn["churn_date"], "%d-%m-%Y")
    last = churn.sort_values(["account_id", "date"]).drop_duplicates("account_id", keep="last")
    reason = text(raw["account_id"].map(last.set_index("account_id")["reason_code"]))
    subs["start"] = utc(subs["start_date"], "%d-%m-%Y")
    subs["arr"] = pd.to_numeric(subs["arr_amount"], errors="coerce")
    first_arr = subs.sort_values("start").drop_duplicates("account_id").set_index("account_id")
    up = subs.loc[subs["upgrade_flag"].str.strip().str.lower() == "true"].reset_index(drop=True)
    ids = accounts["account_id"]
    new_business = opportunities_frame(
        len(ids),
        opportunity_id="NB-" + ids,
        account_id=ids,
        stage=np.where(churned, "Churned", "Customer"),
        is_closed=np.ones(len(ids), dtype=bool),
        is_won=~churned,
        amount=ids.map(first_arr["arr"]).to_numpy(float),
        created_at=signup,
        closed_at=signup,
        type="New Business",
        loss_reason=reason.where(pd.Series(churned), None),
    )
    expansion = opportunities_frame(
        len(up),
        opportunity_id="UP-" + up["subscription_id"],
        account_id=text(up["account_id"]),
        stage="Upgraded",
        is_closed=np.ones(len(up), dtype=bool),
        is_won=np.ones(len(up), dtype=bool),
        amount=up["arr"],
        created_at=up["start"],
        closed_at=up["start"],
        type="Expansion",
    )
    opps = pd.concat([new_business, expansion], ignore_index=True)
    end = max(signup.max(), subs["start"].max(), churn["date"].max())
    flagged = set(ids[churned])
    return Dataset(
        "ravenstack",
        accounts,
        opps,
        types,
        _day_after(end),
        rules=[
            "accounts.csv: industry, country, referral_source, plan_tier, seats, is_trial as "
            "traits; signup_date -> created_at",
            "no lost prospects exist (every account signed up): churn is mapped onto the "
            "new-business outcome: won = still a customer, lost = churn_flag, dated at "
            "signup so the time-ordered holdout is the latest signup cohorts",
            "loss_reason = reason_code of the account's latest churn event",
            "subscriptions with upgrade_flag -> won Expansion deals (closed at start_date, "
            "amount = ARR): the engine's expansion scorecard over retained customers",
            "not mapped (no outcome in the engine for them): downgrades, reactivations, "
            "time to churn, MRR changes, feature usage, support tickets",
        ],
        facts={
            "accounts": len(ids),
            "churned": int(churned.sum()),
            "retained": int((~churned).sum()),
            "upgrade_subscriptions": len(up),
            "accounts_with_upgrade": int(up["account_id"].nunique()),
            "churn_events": len(churn),
            "accounts_with_churn_events": int(churn["account_id"].nunique()),
            "churn_events_of_flagged_accounts": int(churn["account_id"].isin(flagged).sum()),
            "flagged_without_churn_event": len(flagged - set(churn["account_id"])),
        },
    )


# ---------------------------------------------------------------------------- sample (timing)


def sample_crm(accounts: int, opportunities: int, seed: int = 7) -> Dataset:
    """`connectors.sample` accounts and deals through `to_canonical` with the CSV mapping.

    One `generate_opportunities` draw gives about 1.6 deals per account, so independent
    draws (seeds `seed`, `seed + 1`, ...) for the same accounts are pooled and
    `opportunities` deals sampled from the pool.
    """
    mapping, _ = csv_config()
    raw_accounts = generate_accounts(accounts, seed=seed)
    draws, total, k = [], 0, 0
    while total < opportunities:
        draw = generate_opportunities(raw_accounts, seed=seed + k)
        draw["Id"] = f"{k}-" + draw["Id"]
        draws.append(draw)
        total += len(draw)
        k += 1
    pool = pd.concat(draws, ignore_index=True)
    raw_opps = pool.sample(n=opportunities, random_state=seed).sort_values(
        "CreatedDate", kind="stable"
    )
    frame, _ = to_canonical(raw_accounts, mapping, "account")
    opps, _ = to_canonical(raw_opps, mapping, "opportunity")
    now = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC)
    return Dataset(
        "sample",
        frame,
        opps,
        dict(mapping.field_types("account")),
        now,
        rules=[
            f"connectors.sample: {accounts:,} accounts, {k} opportunity draws pooled, "
            f"{opportunities:,} sampled; to_canonical with mappings/csv.yaml"
        ],
        facts={"accounts": len(frame), "opportunities": len(opps), "draws": k},
    )
