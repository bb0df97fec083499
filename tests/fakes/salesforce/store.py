"""The fake Salesforce org's data as tests set it up and inspect it: its clock, records
(add, edit, soft delete) and describe fields (add, change, remove)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.salesforce.describe import SObject, make_field, update_field
from tests.fakes.salesforce.values import coerce_value, normalize_id, to_ms
from tests.fakes.salesforce.wire import ApiError, RecordError


class OrgStore:
    """FakeSalesforce's data methods; the state is set up by `FakeSalesforce.__init__`."""

    clock: Callable[[], datetime]
    sobjects: dict[str, SObject]
    _lock: threading.RLock
    _last_stamp: datetime

    def _strict_clock(self) -> datetime:
        with self._lock:
            stamp = max(to_ms(datetime.now(UTC)), self._last_stamp + timedelta(milliseconds=1))
            self._last_stamp = stamp
            return stamp

    def now(self) -> datetime:
        """The org's time (UTC, ms). The default clock never returns the same stamp twice."""
        return to_ms(self.clock())

    def sobject(self, name: str) -> SObject | None:
        lower = name.lower()
        return next((o for k, o in self.sobjects.items() if k.lower() == lower), None)

    def _sobject(self, name: str) -> SObject:
        found = self.sobject(name)
        if found is None:
            raise KeyError(f"the fake org has no sObject {name!r}")
        return found

    def add_records(self, obj: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records; returns their ids (ascending, in the order given).

        Fields not given are null; CreatedDate/SystemModstamp/LastModifiedDate default to
        `now()` (one call per record, so with the default clock no two records tie),
        IsDeleted to false; an `Id` may be given (15 or 18 characters).
        """
        with self._lock:
            sobject = self._sobject(obj)
            ids = []
            for row in rows:
                stamp = self.now()
                rec: dict[str, Any] = dict.fromkeys(sobject.fields)
                rec.update(
                    IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp
                )
                for key, raw in row.items():
                    f = sobject.field(key)
                    if f is None:
                        raise KeyError(f"{sobject.name} has no field {key!r}")
                    rec[f["name"]] = self._coerce(f, raw)
                rid = rec.get("Id") or sobject.next_id()
                if not str(rid).startswith(sobject.key_prefix) or rid in sobject.records:
                    raise ValueError(f"bad or duplicate {sobject.name} Id {rid!r}")
                rec["Id"] = rid
                if sobject.name == "Opportunity":
                    stage = str(rec.get("StageName") or "")
                    rec["IsClosed"] = rec.get("IsClosed") or stage.startswith("Closed")
                    rec["IsWon"] = rec.get("IsWon") or stage == "Closed Won"
                sobject.records[rid] = rec
                ids.append(rid)
            return ids

    def add_accounts(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        return self.add_records("Account", rows)

    def add_opportunities(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Opportunities; IsClosed/IsWon follow StageName ("Closed Won"/"Closed Lost")."""
        return self.add_records("Opportunity", rows)

    def records(self, obj: str) -> dict[str, dict[str, Any]]:
        """The live store: id -> field dict (typed values; deleted ones have IsDeleted True)."""
        return self._sobject(obj).records

    def _coerce(self, f: dict[str, Any], raw: Any) -> Any:
        try:
            return coerce_value(f, raw, "python")
        except (RecordError, ApiError) as exc:
            raise ValueError(str(exc)) from None

    def _record(self, obj: str, rid: str) -> tuple[SObject, dict[str, Any]]:
        sobject = self._sobject(obj)
        rec = sobject.records.get(normalize_id(rid) or rid)
        if rec is None:
            raise KeyError(f"no {sobject.name} {rid}")
        if rec.get("IsDeleted"):
            raise ValueError(f"{sobject.name} {rid} is deleted")
        return sobject, rec

    def edit(
        self, obj: str, rid: str, changes: Mapping[str, Any], stamped: datetime | None = None
    ) -> None:
        """A person's edit in the UI: applied as given, bumps SystemModstamp/LastModifiedDate.

        `stamped`: a late commit. The edit's transaction ran (and stamped the row) at that
        earlier moment but committed only now, so the row becomes visible now carrying an
        older `SystemModstamp` (salesforce.stackexchange.com q/234824).
        """
        with self._lock:
            sobject, rec = self._record(obj, rid)
            values = {}
            for key, raw in changes.items():
                f = sobject.field(key)
                if f is None:
                    raise KeyError(f"{sobject.name} has no field {key!r}")
                values[f["name"]] = self._coerce(f, raw)
            rec.update(values)
            stamp = self.now() if stamped is None else to_ms(stamped)
            rec["SystemModstamp"] = rec["LastModifiedDate"] = stamp

    def delete(self, obj: str, rid: str) -> None:
        """Soft delete: gone from query/, still in queryAll/ with IsDeleted true."""
        with self._lock:
            _, rec = self._record(obj, rid)
            rec["IsDeleted"] = True
            rec["SystemModstamp"] = rec["LastModifiedDate"] = self.now()

    def fields(self, obj: str) -> dict[str, dict[str, Any]]:
        """The live describe field dicts by name."""
        return self._sobject(obj).fields

    def remove_field(self, obj: str, name: str) -> None:
        with self._lock:
            sobject = self._sobject(obj)
            f = sobject.field(name)
            if f is None:
                raise KeyError(f"{sobject.name} has no field {name!r}")
            del sobject.fields[f["name"]]
            for rec in sobject.records.values():
                rec.pop(f["name"], None)

    def hide_field(self, obj: str, name: str) -> None:
        """Field-level security hides the field from the integration user (it still
        exists): describe leaves it out, SOQL answers INVALID_FIELD, Bulk "Field name not
        found" (issue 13, item 6)."""
        with self._lock:
            sobject = self._sobject(obj)
            f = sobject.field(name)
            if f is None:
                raise KeyError(f"{sobject.name} has no field {name!r}")
            sobject.hidden[f["name"]] = sobject.fields.pop(f["name"])

    def grant_field(self, obj: str, name: str) -> None:
        """An admin grants the integration user's profile access to a hidden field."""
        with self._lock:
            sobject = self._sobject(obj)
            sobject.fields[name] = sobject.hidden.pop(name)

    def set_field(self, obj: str, name: str, **attrs: Any) -> dict[str, Any]:
        """Change describe attributes of a field, or add it (`type=` default "string").

        `picklistValues` may be a list of strings.
        """
        with self._lock:
            sobject = self._sobject(obj)
            f = sobject.field(name)
            if f is not None:
                update_field(f, **attrs)
                return f
            f = make_field(name, attrs.pop("type", "string"), **attrs)
            sobject.fields[name] = f
            for rec in sobject.records.values():
                rec.setdefault(name, None)
            return f
