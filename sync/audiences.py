"""`icp audiences export`: account lists per tier, segment or nurture track, for ad platforms.

The accounts are those the last sync saw (the records mirror in the state directory),
scored with the criteria in use: no API call is made. Per audience (`tier-A`,
`segment-mid-market`...) and per format, three files:

- `<audience>.<format>.csv`: the whole list, in the platform's upload layout;
- `<audience>.<format>.added.csv`: accounts new to the list, or whose row changed,
  since the last export (a changed row is also in the removed file, as it was);
- `<audience>.<format>.removed.csv`: accounts that left it (as they were last exported).

Upload the whole list once, then only the small delta files. The upload layouts keep
the platform's headers exactly (LinkedIn: "Don't change or remove the headers ...
Changing or removing template headers will cause an error when you upload your
audience", https://www.linkedin.com/help/lms/answer/a1489764), so what changed goes in
files of its own rather than in an extra column.

Formats:
- `linkedin`: LinkedIn Matched Audiences company list template (Campaign Manager >
  Audiences > Upload a list > Company list): companyname, companywebsitedomain,
  companyemaildomain, linkedincompanypageurl, stocksymbol, industry, city, state,
  companycountry, zipcode. Every column may be empty but one of the identifying ones
  (name, domain, page URL); lists hold at most 300,000 rows / 20 MB (same help page).
  The column names follow LinkedIn's published CSV template (the lead's brief and the
  community builder https://apify.com/memo23/linkedin-audience-builder, which emits
  "upload-ready CSV columns with LinkedIn's exact template names"); the stored docs
  corpus has no copy of the template itself.
- `generic`: domain, name, country: what other account-based platforms (Google Customer
  Match for companies, 6sense, Demandbase, Metadata) map on upload.

Text cells that a spreadsheet would run as a formula get a leading single quote
(`connectors.spreadsheet_safety`, OWASP's advice), since these files are opened by people.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from icp_engine.connectors.spreadsheet_safety import neutralise
from icp_engine.sync.state.opsdb import OpsDB

LINKEDIN_COLUMNS = (
    "companyname",
    "companywebsitedomain",
    "companyemaildomain",
    "linkedincompanypageurl",
    "stocksymbol",
    "industry",
    "city",
    "state",
    "companycountry",
    "zipcode",
)
GENERIC_COLUMNS = ("domain", "name", "country")
LINKEDIN_MAX_ROWS = 300_000
_SOURCES: dict[str, tuple[str, ...]] = {
    "companyname": ("name",),
    "companywebsitedomain": ("domain",),
    "companyemaildomain": ("email_domain", "domain"),
    "linkedincompanypageurl": ("linkedin_url", "linkedin_company_url", "linkedin"),
    "stocksymbol": ("stock_symbol", "ticker", "tickersymbol"),
    "industry": ("industry",),
    "city": ("city", "billing_city"),
    "state": ("state", "billing_state"),
    "companycountry": ("country",),
    "zipcode": ("zipcode", "postal_code", "zip", "billing_postal_code"),
}
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class AudienceFile:
    """What was written for one audience in one format."""

    audience: str
    format: str
    path: Path
    rows: int
    added: int
    removed: int
    added_path: Path
    removed_path: Path
    skipped: int = 0
    """Accounts left out: neither a name nor a domain to match on."""


@dataclass
class Export:
    files: list[AudienceFile] = field(default_factory=list)
    first: bool = True
    """No earlier export: every account counts as added."""


def domain_of(value: Any) -> str:
    """A bare domain from a website or domain value: `https://www.Acme.com/x` -> `acme.com`."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value).strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/")[0].split("?")[0].split("#")[0].split("@")[-1].split(":")[0]
    return text.removeprefix("www.").strip(".")


def slug(value: str) -> str:
    return _SLUG.sub("-", value.lower()).strip("-") or "none"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return " ".join(str(value).split())


def rows_for(accounts: pd.DataFrame, fmt: str) -> tuple[dict[str, list[str]], int]:
    """Upload rows keyed by account id (formula-safe), and how many were skipped."""
    columns = LINKEDIN_COLUMNS if fmt == "linkedin" else GENERIC_COLUMNS
    rows: dict[str, list[str]] = {}
    skipped = 0
    for record in accounts.to_dict("records"):
        domain = domain_of(record.get("domain"))
        values: dict[str, str] = {}
        if fmt == "linkedin":
            for column in LINKEDIN_COLUMNS:
                source = next((s for s in _SOURCES[column] if s in record), None)
                raw = record.get(source) if source else None
                values[column] = domain_of(raw) if "domain" in column else _text(raw)
        else:
            values = {
                "domain": domain,
                "name": _text(record.get("name")),
                "country": _text(record.get("country")),
            }
        if not (domain or values.get("name") or values.get("companyname")):
            skipped += 1
            continue
        rows[str(record["account_id"])] = [neutralise(values[c]) for c in columns]
    return rows, skipped


def _stored(row: list[str]) -> str:
    return json.dumps(row, ensure_ascii=False)


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(temporary, path)


def export(
    scored: pd.DataFrame,
    accounts: pd.DataFrame,
    by: str,
    include: list[str],
    formats: list[str],
    out: Path,
    state_dir: Path,
    crm: str,
) -> Export:
    """Write the audience files and remember what they held.

    Args:
        scored: account_id plus tier, segment and (with nurture rules) nurture_track.
        accounts: canonical accounts (account_id, name, domain, country...).
        by: the scored column that splits accounts into audiences.
        include: the values to export (empty: every value present).
        formats: `linkedin` and/or `generic`.
        out: the directory to write to (created if missing).
        state_dir: where the last export is remembered.
        crm: part of the memory's key (one CRM's lists do not diff against another's).
    """
    out.mkdir(parents=True, exist_ok=True)
    if by not in scored.columns:
        scored = scored.assign(**{by: None})
    frame = accounts.merge(scored[["account_id", by]], on="account_id", how="inner")
    values = include or sorted({str(v) for v in frame[by].dropna()})
    result = Export()
    with OpsDB(state_dir) as db:
        result.first = not any(a.startswith(f"{crm}:") for a in db.audiences())
        for value in values:
            members = frame.loc[frame[by].astype(str) == value]
            name = f"{by.split('_', maxsplit=1)[0]}-{slug(value)}"
            for fmt in formats:
                header = LINKEDIN_COLUMNS if fmt == "linkedin" else GENERIC_COLUMNS
                rows, skipped = rows_for(members, fmt)
                key = f"{crm}:{name}:{fmt}"
                before = db.audience_rows(key)
                now = {a: _stored(r) for a, r in rows.items()}
                added = [rows[a] for a in sorted(rows) if before.get(a) != now[a]]
                removed_ids = sorted(set(before) - set(now))
                changed = sorted(a for a in set(before) & set(now) if before[a] != now[a])
                removed = [list(json.loads(before[a])) for a in sorted([*removed_ids, *changed])]
                path = out / f"{name}.{fmt}.csv"
                added_path = out / f"{name}.{fmt}.added.csv"
                removed_path = out / f"{name}.{fmt}.removed.csv"
                _write_csv(path, header, [rows[a] for a in sorted(rows)])
                _write_csv(added_path, header, added)
                _write_csv(removed_path, header, removed)
                db.replace_audience(key, now)
                result.files.append(
                    AudienceFile(
                        name,
                        fmt,
                        path,
                        len(rows),
                        len(added),
                        len(removed_ids),
                        added_path,
                        removed_path,
                        skipped,
                    )
                )
    return result
