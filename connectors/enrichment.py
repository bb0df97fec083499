"""Enrichment sources (`mappings/enrichment.yaml`) joined onto the canonical accounts.

Owns the schema of `enrichment.yaml`, reading each source (CSV or Parquet files or a glob,
or a SQL query against a database URL through SQLAlchemy), typing its fields with the
same field types and value maps as a CRM mapping, and the join itself: keyed by
normalised domain (scheme, `www.`, path and case stripped, as `canonical.parse_domain`
does for the CRM's website) or by account id. A joined field is an ordinary canonical
field: criteria, learning, segments and reasons use it like any CRM field.

The join reports, per source, its coverage (share of accounts matched), its staleness
(the oldest and newest `as_of`, or the file time) and, per field two providers fill,
the conflicts (accounts where both have a different value) and who won them (the
stated `precedence`, CRM first unless it is listed).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from icp_engine.connectors.canonical import parse_column, parse_datetime, parse_domain
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.mapping import CANONICAL_FIELDS, FieldMap, FieldType
from pydantic import BaseModel, ConfigDict, Field, model_validator

CRM = "crm"
"""The name `precedence:` uses for the CRM record's own value."""


class EnrichmentSource(BaseModel):
    """One enrichment export or query: where it is, how it joins, which fields it gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1)]
    path: str | None = None
    """A CSV or Parquet file, or a glob (`exports/zoominfo_*.csv`); relative to the
    mappings directory."""
    url: str | None = None
    """A SQLAlchemy database URL (`duckdb:///warehouse.duckdb`, `postgresql://...`); the
    password may come from the environment as `${VAR}`."""
    query: str | None = None
    """The SQL `SELECT` run against `url`."""
    key: Literal["domain", "account_id"] = "domain"
    """What the source is keyed by: a domain or website (normalised), or the CRM account id."""
    column: Annotated[str, Field(min_length=1)]
    """The source column holding the key."""
    as_of: str | None = None
    """The column saying when each row was last refreshed (default: the file's time)."""
    fields: dict[str, FieldMap]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("fields"), dict):
            fields = {
                k: {"field": v} if isinstance(v, str) else v for k, v in value["fields"].items()
            }
            value = {**value, "fields": fields}
        return value

    @model_validator(mode="after")
    def _where(self) -> EnrichmentSource:
        if (self.path is None) == (self.query is None):
            msg = "give either `path` (a file or glob) or `url` and `query`, not both or neither"
            raise ValueError(msg)
        if self.query is not None and self.url is None:
            msg = "a `query` needs the `url` of the database it runs against"
            raise ValueError(msg)
        return self

    def field_types(self) -> dict[str, FieldType]:
        return {name: spec.type or "text" for name, spec in self.fields.items()}


class EnrichmentConfig(BaseModel):
    """The whole `enrichment.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: list[EnrichmentSource] = Field(default_factory=list)
    precedence: list[str] = Field(default_factory=list)
    """Who wins a field two providers fill: source names (and `crm`), first wins.
    Default: the CRM, then the sources in the order listed."""

    def problems(self, crm_fields: dict[str, FieldType]) -> list[tuple[tuple[str | int, ...], str]]:
        """Mistakes the schema alone cannot catch, each with its key path."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        names = [s.name for s in self.sources]
        for index, name in enumerate(names):
            if names.index(name) != index:
                found.append((("sources", index, "name"), f"{name!r} is used twice"))
        valid = [CRM, *names]
        for index, name in enumerate(self.precedence):
            if name not in valid:
                found.append(
                    (
                        ("precedence", index),
                        f"unknown provider {name!r}; valid: {', '.join(valid)}",
                    )
                )
        core = CANONICAL_FIELDS["account"]
        for index, source in enumerate(self.sources):
            for name, spec in source.fields.items():
                path: tuple[str | int, ...] = ("sources", index, "fields", name)
                if name == "account_id" or name in ("modified_at", "created_at"):
                    found.append((path, f"{name!r} comes from the CRM; name the field otherwise"))
                known = crm_fields.get(name) or core.get(name)
                kind = spec.type or "text"
                if known is not None and known != kind:
                    found.append(
                        (
                            (*path, "type"),
                            f"must be {known!r} like the CRM field {name!r}. Got {kind!r}",
                        )
                    )
        return found

    def field_types(self) -> dict[str, FieldType]:
        """Every canonical field the sources provide, with its type."""
        types: dict[str, FieldType] = {}
        for source in self.sources:
            types.update(source.field_types())
        return types

    def order(self) -> list[str]:
        """Providers in precedence order (those not listed follow, CRM first)."""
        rest = [CRM] + [s.name for s in self.sources]
        return list(self.precedence) + [p for p in rest if p not in self.precedence]


@dataclass
class SourceReport:
    """What one source brought to one join."""

    name: str
    rows: int
    matched: int
    accounts: int
    oldest: str | None
    newest: str | None
    duplicates: int = 0
    """Source rows dropped because a fresher row had the same key."""

    @property
    def coverage(self) -> float:
        return self.matched / self.accounts if self.accounts else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "rows": self.rows,
            "matched": self.matched,
            "coverage": round(self.coverage, 4),
            "as_of_oldest": self.oldest,
            "as_of_newest": self.newest,
            "duplicates": self.duplicates,
        }


@dataclass
class JoinReport:
    """Coverage, staleness and conflicts of one enrichment join."""

    sources: list[SourceReport] = field(default_factory=list)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """field -> {providers: [...in precedence order], accounts: n, winner_counts: {...}}."""

    def to_json(self) -> dict[str, Any]:
        return {"sources": [s.to_json() for s in self.sources], "conflicts": self.conflicts}

    def lines(self) -> list[str]:
        """One line per source and per conflicting field, for people."""
        out = []
        for s in self.sources:
            fresh = f", as of {s.oldest} to {s.newest}" if s.oldest else ""
            out.append(
                f"{s.name}: {s.matched:,} of {s.accounts:,} accounts matched "
                f"({s.coverage:.0%}) from {s.rows:,} rows{fresh}"
            )
        for name, info in self.conflicts.items():
            out.append(
                f"{name}: {info['accounts']:,} accounts with different values from "
                f"{' and '.join(info['providers'])}; {info['providers'][0]} wins (precedence)"
            )
        return out


def _files(pattern: str, base: Path) -> list[Path]:
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    return sorted(Path(p) for p in glob.glob(full))


def read_source(source: EnrichmentSource, base: Path) -> pd.DataFrame:
    """Every row of a source as text (source column names), plus `__as_of__` when known.

    Raises:
        SourceError: no file matches, a file cannot be read, the query fails, or a
            named column is missing.
    """
    if source.path is not None:
        paths = _files(source.path, base)
        if not paths:
            msg = f"enrichment {source.name!r}: no file matches {source.path!r} (in {base})"
            raise SourceError(msg)
        frames = []
        for path in paths:
            try:
                if path.suffix.lower() in (".parquet", ".pq"):
                    frame = pd.read_parquet(path).astype(object)
                    frame = frame.where(frame.notna(), None)
                else:
                    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (OSError, ValueError, ImportError) as exc:
                msg = f"enrichment {source.name!r}: {path} cannot be read ({exc})"
                raise SourceError(msg) from exc
            if source.as_of is None:
                stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                frame["__as_of__"] = stamp.isoformat()
            frames.append(frame)
        raw = pd.concat(frames, ignore_index=True)
    else:
        from icp_engine.connectors.warehouse import read_query

        assert source.url is not None and source.query is not None
        raw = read_query(source.url, source.query, f"enrichment {source.name!r}")
    wanted = [source.column] + [spec.field for spec in source.fields.values()]
    if source.as_of:
        wanted.append(source.as_of)
    missing = [c for c in dict.fromkeys(wanted) if c not in raw]
    if missing:
        msg = (
            f"enrichment {source.name!r}: no column {', '.join(map(repr, missing))}; "
            f"found: {', '.join(map(str, raw.columns))}"
        )
        raise SourceError(msg)
    if source.as_of:
        raw["__as_of__"] = raw[source.as_of]
    return raw


def normalise_keys(values: pd.Series, key: str) -> pd.Series:
    """Domain keys as the CRM's website is read (`https://www.Acme.com/x` -> `acme.com`)."""
    if key == "domain":
        return parse_domain(values.where(values.notna() & values.astype(str).str.strip().ne("")))
    text = values.astype(object).where(values.notna())
    return text.map(lambda v: str(v).strip() or None, na_action="ignore")


def prepare(source: EnrichmentSource, raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Typed canonical fields indexed by key, one row per key (the freshest); and the
    number of rows dropped as older duplicates or without a key."""
    keys = normalise_keys(raw[source.column], source.key)
    typed = pd.DataFrame({"__key__": keys})
    types = source.field_types()
    for name, spec in source.fields.items():
        typed[name] = parse_column(raw[spec.field], types[name], spec.lookup()).to_numpy()
    typed["__as_of__"] = parse_datetime(raw["__as_of__"]) if "__as_of__" in raw else pd.NaT
    typed = typed[typed["__key__"].notna()]
    kept = typed.sort_values("__as_of__", kind="stable", na_position="first")
    kept = kept.drop_duplicates("__key__", keep="last").set_index("__key__")
    return kept, len(raw) - len(kept)


def join(
    accounts: pd.DataFrame, config: EnrichmentConfig, base: Path
) -> tuple[pd.DataFrame, JoinReport]:
    """The accounts with every enrichment field joined (same rows, same order)."""
    report = JoinReport()
    if not config.sources:
        return accounts, report
    out = accounts.copy()
    providers: dict[str, dict[str, pd.Series]] = {}
    for name in out.columns:
        providers.setdefault(name, {})[CRM] = out[name]
    for source in config.sources:
        table, dropped = prepare(source, read_source(source, base))
        if source.key == "domain":
            account_keys = (
                out["domain"] if "domain" in out else pd.Series(None, index=out.index, dtype=object)
            )
        else:
            account_keys = out["account_id"].astype(str)
        position = table.index.get_indexer(pd.Index(account_keys.astype(object)))
        hit = position >= 0
        for name in source.fields:
            values = table[name].iloc[position.clip(min=0)].to_numpy()
            column = pd.Series(values, index=out.index).where(hit)
            if pd.api.types.is_datetime64_any_dtype(table[name]):
                column = pd.to_datetime(column, utc=True)
            providers.setdefault(name, {})[source.name] = column
        stamps = table["__as_of__"].iloc[position.clip(min=0)][hit]
        report.sources.append(
            SourceReport(
                source.name,
                rows=len(table) + dropped,
                matched=int(hit.sum()),
                accounts=len(out),
                oldest=_day(stamps.min()) if len(stamps) else None,
                newest=_day(stamps.max()) if len(stamps) else None,
                duplicates=dropped,
            )
        )
    order = config.order()
    for name, given in providers.items():
        if len(given) == 1 and CRM in given:
            continue
        ranked = [p for p in order if p in given]
        result = given[ranked[0]]
        for provider in ranked[1:]:
            result = result.where(result.notna(), given[provider])
        out[name] = result
        if len(ranked) > 1:
            _conflicts(name, ranked, given, report)
    return out, report


def _conflicts(
    name: str, ranked: list[str], given: dict[str, pd.Series], report: JoinReport
) -> None:
    filled = pd.DataFrame({p: given[p] for p in ranked})
    present = filled.notna()
    text = filled.astype(str).apply(lambda c: c.str.strip().str.casefold())
    distinct = text.where(present).nunique(axis=1)
    count = int((distinct > 1).sum())
    if count:
        report.conflicts[name] = {"providers": ranked, "accounts": count}


def _day(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return str(pd.Timestamp(value).date())
