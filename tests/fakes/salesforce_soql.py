"""The fake Salesforce org's data model: typed values, describe metadata, SOQL.

Shared by `salesforce.py` (REST) and `salesforce_bulk.py` (Bulk API 2.0). Values are stored
typed: str, int, float (rounded to the field's scale), bool, None, `datetime` (UTC, ms) for
datetime fields and "YYYY-MM-DD" strings for date fields.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

JSON_TYPE = "application/json;charset=UTF-8"
CSV_TYPE = "text/csv"


# ---------------------------------------------------------------- wire plumbing


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, data, JSON_TYPE, dict(headers or {}))


class ApiError(Exception):
    """A request-level failure: HTTP status and the documented JSON error array."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> Response:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return json_response(self.status, [item])


class RecordError(Exception):
    """A per-record failure (SaveResult error / Bulk sf__Error)."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = (), record_id: Any = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, list(fields)
        self.record_id: str | None = record_id

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_bulk(self) -> str:
        """Bulk API 2.0 `sf__Error`: `CODE:message:--` or `CODE:message:Field1,Field2 --`."""
        tail = f"{','.join(self.fields)} --" if self.fields else "--"
        return f"{self.code}:{self.message}:{tail}"


# ---------------------------------------------------------------- ids and datetimes

_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # sorts like its values
_SUFFIX = string.ascii_uppercase + "012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def _id_suffix(id15: str) -> str:
    out = ""
    for i in range(3):
        chunk = id15[i * 5 : i * 5 + 5]
        out += _SUFFIX[sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")]
    return out


def make_id(prefix: str, n: int) -> str:
    """An 18-character id: key prefix, pod 'dM', fixed-width base62 counter, case checksum."""
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = _B62[r] + digits
    body = prefix + "dM" + digits.rjust(10, "0")
    return body + _id_suffix(body)


def normalize_id(raw: Any) -> str | None:
    """The 18-character form of a 15/18-character id, None when malformed."""
    if not isinstance(raw, str) or not _ID_RE.fullmatch(raw):
        return None
    suffix = _id_suffix(raw[:15])
    if len(raw) == 18 and raw[15:].upper() != suffix:
        return None
    return raw[:15] + suffix


_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?"
)


def to_ms(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_datetime(text: str) -> datetime:
    m = _DT_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a datetime: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:]))
    return to_ms(moment)


def format_datetime(moment: datetime, csv: bool = False) -> str:
    """REST: 2026-05-01T07:25:37.000+0000; Bulk CSV: 2026-05-01T07:25:37.000Z."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return text + ("Z" if csv else "+0000")


def json_value(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value, csv=True)
    return str(value)


# ---------------------------------------------------------------- describe metadata

_STRINGS = {"string", "textarea", "url", "phone", "email", "picklist", "multipicklist", "combobox"}
_NUMBERS = {"int", "double", "currency", "percent"}
_SOAP = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _picklist(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        v
        if isinstance(v, dict)
        else {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
        for v in values
    ]


def make_field(name: str, type_: str = "string", **attrs: Any) -> dict[str, Any]:
    """A describe field dict with the keys (alphabetical) of a real describe."""
    fixed = type_ in ("id",) or attrs.get("updateable") is False
    nillable = attrs.get("nillable", not fixed and type_ != "boolean")
    length = attrs.get(
        "length",
        18
        if type_ in ("id", "reference")
        else 4099
        if type_ == "multipicklist"
        else 255
        if type_ in _STRINGS
        else 0,
    )
    label = attrs.pop("label", None) or name.removesuffix("__c").replace("_", " ")
    f: dict[str, Any] = {
        "aggregatable": type_ not in ("textarea", "boolean"),
        "aiPredictionField": False,
        "autoNumber": False,
        "byteLength": length if type_ in ("id", "reference") else length * 3,
        "calculated": False,
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": False,
        "compoundFieldName": None,
        "controllerName": None,
        "createable": not fixed,
        "custom": name.endswith("__c"),
        "defaultValue": False if type_ == "boolean" else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": fixed or type_ == "boolean",
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": 9 if type_ == "int" else 0,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": False,
        "extraTypeInfo": "plaintextarea" if type_ == "textarea" else None,
        "filterable": True,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": type_ not in ("double", "currency", "percent", "textarea", "datetime"),
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": type_ == "id" or bool(attrs.get("nameField")),
        "inlineHelpText": None,
        "label": label,
        "length": length,
        "mask": None,
        "maskType": None,
        "name": name,
        "nameField": False,
        "namePointing": False,
        "nillable": nillable,
        "permissionable": nillable and not fixed,
        "picklistValues": [],
        "polymorphicForeignKey": False,
        "precision": 18 if type_ in ("double", "currency") else 0,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": [],
        "relationshipName": None,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": False,
        "scale": 0,
        "searchPrefilterable": type_ == "reference",
        "soapType": _SOAP.get(type_, "xsd:string"),
        "sortable": type_ != "textarea",
        "type": type_,
        "unique": False,
        "updateable": not fixed,
        "writeRequiresMasterRead": False,
    }
    update_field(f, **attrs)
    return f


def update_field(f: dict[str, Any], **attrs: Any) -> None:
    """Change describe attributes, keeping the derived ones (soapType, byteLength) in step."""
    if "picklistValues" in attrs:
        attrs["picklistValues"] = _picklist(attrs["picklistValues"])
    if "type" in attrs and "soapType" not in attrs:
        attrs["soapType"] = _SOAP.get(attrs["type"], "xsd:string")
    if "length" in attrs and "byteLength" not in attrs:
        attrs["byteLength"] = attrs["length"] * 3
    if attrs.get("updateable") is False:
        attrs.setdefault("createable", False)
    f.update(attrs)


@dataclass
class SObject:
    name: str
    label: str
    plural: str
    key_prefix: str
    fields: dict[str, dict[str, Any]]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom: bool = False
    counter: int = 0

    def field(self, name: str) -> dict[str, Any] | None:
        found = self.fields.get(name)
        if found is None:
            lower = name.lower()
            found = next((f for k, f in self.fields.items() if k.lower() == lower), None)
        return found

    def next_id(self) -> str:
        self.counter += 1
        return make_id(self.key_prefix, self.counter)

    def describe(
        self, version: str, instance_url: str, children: list[dict[str, Any]]
    ) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "actionOverrides": [],
            "activateable": False,
            "associateEntityType": None,
            "associateParentEntity": None,
            "childRelationships": children,
            "compactLayoutable": True,
            "createable": True,
            "custom": self.custom,
            "customSetting": False,
            "deepCloneable": True,
            "defaultImplementation": None,
            "deletable": True,
            "deprecatedAndHidden": False,
            "extendedBy": None,
            "extendsInterfaces": None,
            "feedEnabled": True,
            "fields": list(self.fields.values()),
            "hasSubtypes": False,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.plural,
            "layoutable": True,
            "listviewable": None,
            "lookupLayoutable": None,
            "mergeable": self.name == "Account",
            "mruEnabled": True,
            "name": self.name,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "queryable": True,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": "012000000000000AAA",
                    "urls": {"layout": f"{base}/describe/layouts/012000000000000AAA"},
                }
            ],
            "replicateable": True,
            "retrieveable": True,
            "searchLayoutable": True,
            "searchable": True,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": f"All {self.plural.lower()}", "name": "everything"},
                {"label": f"My {self.plural.lower()}", "name": "mine"},
            ],
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urls": {
                "compactLayouts": f"{base}/describe/compactLayouts",
                "rowTemplate": f"{base}/{{ID}}",
                "approvalLayouts": f"{base}/describe/approvalLayouts",
                "uiDetailTemplate": f"{instance_url}/{{ID}}",
                "uiEditTemplate": f"{instance_url}/{{ID}}/e",
                "listviews": f"{base}/listviews",
                "describe": f"{base}/describe",
                "uiNewRecord": f"{instance_url}/{self.key_prefix}/e",
                "quickActions": f"{base}/quickActions",
                "layouts": f"{base}/describe/layouts",
                "sobject": base,
            },
        }


_SYSTEM = [
    ("CreatedDate", "datetime", {"label": "Created Date", "updateable": False, "nillable": False}),
    (
        "LastModifiedDate",
        "datetime",
        {"label": "Last Modified Date", "updateable": False, "nillable": False},
    ),
    (
        "SystemModstamp",
        "datetime",
        {"label": "System Modstamp", "updateable": False, "nillable": False},
    ),
]
_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
_INDUSTRIES = [
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Other",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
]
_STAGES = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
]


def _fields(spec: list[tuple[str, str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {name: make_field(name, type_, **attrs) for name, type_, attrs in spec}


def default_objects() -> dict[str, SObject]:
    """Account and Opportunity as the engine sees them in a typical org."""
    account = _fields(
        [
            ("Id", "id", {"label": "Account ID"}),
            ("IsDeleted", "boolean", {"label": "Deleted", "updateable": False}),
            ("Name", "string", {"label": "Account Name", "nillable": False, "nameField": True}),
            (
                "Type",
                "picklist",
                {
                    "label": "Account Type",
                    "picklistValues": [
                        "Prospect",
                        "Customer - Direct",
                        "Customer - Channel",
                        "Channel Partner / Reseller",
                        "Installation Partner",
                        "Technology Partner",
                        "Other",
                    ],
                },
            ),
            ("BillingState", "string", {"label": "Billing State/Province", "length": 80}),
            ("BillingCountry", "string", {"label": "Billing Country", "length": 80}),
            ("Website", "url", {"label": "Website"}),
            ("Industry", "picklist", {"label": "Industry", "picklistValues": _INDUSTRIES}),
            ("AnnualRevenue", "currency", {"label": "Annual Revenue"}),
            ("NumberOfEmployees", "int", {"label": "Employees", "digits": 8}),
            (
                "Ownership",
                "picklist",
                {
                    "label": "Ownership",
                    "picklistValues": ["Public", "Private", "Subsidiary", "Other"],
                },
            ),
            (
                "Rating",
                "picklist",
                {"label": "Account Rating", "picklistValues": ["Hot", "Warm", "Cold"]},
            ),
            ("AccountSource", "picklist", {"label": "Account Source", "picklistValues": _SOURCES}),
            ("YearStarted", "string", {"label": "Year Started", "length": 4}),
            *_SYSTEM,
            (
                "Funding_Stage__c",
                "picklist",
                {
                    "label": "Funding Stage",
                    "picklistValues": [
                        "Pre-Seed",
                        "Seed",
                        "Series A",
                        "Series B",
                        "Series C",
                        "Series D+",
                        "Public",
                        "Bootstrapped",
                    ],
                },
            ),
            ("Employees_Last_Year__c", "double", {"label": "Employees Last Year"}),
            (
                "Technologies__c",
                "multipicklist",
                {
                    "label": "Technologies",
                    "picklistValues": [
                        "Salesforce",
                        "HubSpot",
                        "AWS",
                        "Azure",
                        "GCP",
                        "Snowflake",
                        "Stripe",
                        "Shopify",
                    ],
                },
            ),
            ("ICP_Score__c", "double", {"label": "ICP Score", "precision": 3}),
            ("ICP_Tier__c", "picklist", {"label": "ICP Tier", "picklistValues": list("ABCD")}),
            ("ICP_Segment__c", "string", {"label": "ICP Segment", "length": 80}),
            ("ICP_Reasons__c", "string", {"label": "ICP Reasons"}),
            ("ICP_Route__c", "string", {"label": "ICP Route", "length": 80}),
        ]
    )
    opportunity = _fields(
        [
            ("Id", "id", {"label": "Opportunity ID"}),
            ("IsDeleted", "boolean", {"label": "Deleted", "updateable": False}),
            (
                "AccountId",
                "reference",
                {"label": "Account ID", "referenceTo": ["Account"], "relationshipName": "Account"},
            ),
            (
                "Name",
                "string",
                {"label": "Name", "length": 120, "nillable": False, "nameField": True},
            ),
            (
                "StageName",
                "picklist",
                {"label": "Stage", "nillable": False, "picklistValues": _STAGES},
            ),
            ("Amount", "currency", {"label": "Amount", "scale": 2}),
            ("CloseDate", "date", {"label": "Close Date", "nillable": False}),
            (
                "Type",
                "picklist",
                {
                    "label": "Opportunity Type",
                    "picklistValues": [
                        "Existing Customer - Upgrade",
                        "Existing Customer - Replacement",
                        "Existing Customer - Downgrade",
                        "New Customer",
                    ],
                },
            ),
            ("LeadSource", "picklist", {"label": "Lead Source", "picklistValues": _SOURCES}),
            ("IsClosed", "boolean", {"label": "Closed", "updateable": False}),
            ("IsWon", "boolean", {"label": "Won", "updateable": False}),
            *_SYSTEM,
            (
                "Loss_Reason__c",
                "picklist",
                {
                    "label": "Loss Reason",
                    "picklistValues": [
                        "Price",
                        "Product Fit",
                        "Competitor",
                        "Timing",
                        "No Decision",
                    ],
                },
            ),
        ]
    )
    return {
        "Account": SObject("Account", "Account", "Accounts", "001", account),
        "Opportunity": SObject("Opportunity", "Opportunity", "Opportunities", "006", opportunity),
    }


# ---------------------------------------------------------------- writing values

_JSON_TYPE_NAMES = {
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}


def coerce_value(f: dict[str, Any], raw: Any, source: str) -> Any:
    """The stored form of `raw` written to field `f`.

    source: "json" (REST body; a value of the wrong JSON type is a request-level
    JSON_PARSER_ERROR), "csv" (Bulk cell; per-record INVALID_TYPE_ON_FIELD_IN_RECORD) or
    "python" (the test's own data). Per-record rule violations raise RecordError.
    """
    name, type_, label = f["name"], f["type"], f["label"]

    def bad() -> Exception:
        if source == "json":
            kind = _JSON_TYPE_NAMES.get(type_, "string")
            return ApiError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {kind} from VALUE_STRING value "
                f"{raw} or request may be missing a required field",
            )
        return RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{label}: value not of required type: {raw}", [name]
        )

    if raw is None or raw == "":
        value: Any = None
    elif type_ in _NUMBERS:
        if isinstance(raw, bool):
            raise bad()
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise bad() from None
        if not number.is_finite():
            raise bad()
        scale = 0 if type_ == "int" else int(f["scale"] or 0)
        number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        digits = int(f["digits"]) if type_ == "int" else int(f["precision"] or 18) - scale
        if digits and abs(number) >= Decimal(10) ** digits:
            raise RecordError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {raw}",
                [name],
            )
        value = int(number) if type_ == "int" else float(number)
    elif type_ == "boolean":
        text = str(raw).strip().lower()
        if isinstance(raw, bool):
            value = raw
        elif text in ("true", "false") or (source != "json" and text in ("1", "0")):
            value = text in ("true", "1")
        else:
            raise bad()
    elif type_ == "datetime":
        if isinstance(raw, datetime):
            value = to_ms(raw)
        else:
            try:
                value = parse_datetime(str(raw))
            except ValueError:
                raise bad() from None
    elif type_ == "date":
        try:
            value = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
        except ValueError:
            raise bad() from None
        value = value.date().isoformat() if isinstance(value, datetime) else value.isoformat()
    else:
        value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if type_ in ("id", "reference"):
            norm = normalize_id(value)
            if norm is None:
                raise RecordError(
                    "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [name]
                )
            value = norm
        elif len(value) > int(f["length"] or 0) > 0:
            raise RecordError(
                "STRING_TOO_LONG",
                f"{label}: data value too large: {value} (max length={f['length']})",
                [name],
            )
        if (
            f["restrictedPicklist"]
            and type_ in ("picklist", "multipicklist")
            and (source != "python")
        ):  # a test may seed values from before the restriction
            allowed = {p["value"] for p in f["picklistValues"] if p["active"]}
            for item in value.split(";") if type_ == "multipicklist" else [value]:
                if item not in allowed:
                    raise RecordError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{label}: bad value for restricted picklist field: {item}",
                        [name],
                    )
    if value is None and not f["nillable"] and source != "python":
        raise RecordError(
            "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
        )
    return value


# ---------------------------------------------------------------- SOQL

_TOKEN = re.compile(
    r"""
  (?P<ws>\s+)
| (?P<str>'(?:[^'\\]|\\.)*')
| (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
| (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
| (?P<num>[+-]?\d+(?:\.\d+)?(?![\w.]))
| (?P<op>!=|<>|<=|>=|=|<|>)
| (?P<punct>[(),])
| (?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_KINDS = {
    "datetime": ("datetime", "dateTime"),
    "date": ("date", "date"),
    "int": ("number", "integer"),
    "double": ("number", "double"),
    "currency": ("number", "currency"),
    "percent": ("number", "percent"),
    "boolean": ("boolean", "boolean"),
}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _error(code: str, text: str, pos: int, message: str) -> ApiError:
    """The Salesforce layout: the query line, a caret under the culprit, row and column."""
    row = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:] if end < 0 else text[start:end]
    col = pos - start + 1
    return ApiError(
        400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"
    )


def _tokenize(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _error("MALFORMED_QUERY", text, pos, f"unexpected token: '{text[pos]}'")
        if m.lastgroup != "ws":
            toks.append(_Tok(str(m.lastgroup), m.group(), pos))
        pos = m.end()
    toks.append(_Tok("eof", "", len(text)))
    return toks


def _unescape(body: str, like: bool) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append("\\" + nxt if like and nxt in "%_" else _ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@dataclass
class Column:
    header: str  # "Name" or "Account.Name"
    name: str  # field name on the queried object or on the parent
    field: dict[str, Any]  # its describe
    relationship: str | None = None  # "Account" for a parent field
    parent_type: str = ""
    parent: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def get(self, rec: dict[str, Any]) -> Any:
        if self.parent is None:
            return rec.get(self.name)
        parent = self.parent(rec)
        return None if parent is None else parent.get(self.name)


@dataclass
class Soql:
    text: str
    sobject: SObject
    columns: list[Column]
    count_only: bool = False
    where: Callable[[dict[str, Any]], bool] | None = None
    order: list[tuple[Callable[[dict[str, Any]], Any], bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    def run(self, include_deleted: bool) -> list[str]:
        """Ids of the matching records, sorted; the caller holds the org's lock."""
        pred = self.where
        rows = [
            r
            for r in self.sobject.records.values()
            if (include_deleted or not r.get("IsDeleted")) and (pred is None or pred(r))
        ]
        for key, desc in reversed(self.order):
            rows.sort(key=key, reverse=desc)
        ids = [r["Id"] for r in rows][self.offset :]
        return ids if self.limit is None else ids[: self.limit]

    def render(self, rec: dict[str, Any], version: str) -> dict[str, Any]:
        """One record of a REST query page: attributes first, then the SELECT order."""

        def attributes(obj: str, rid: str) -> dict[str, str]:
            return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{rid}"}

        out: dict[str, Any] = {"attributes": attributes(self.sobject.name, rec["Id"])}
        for col in self.columns:
            if col.parent is None or col.relationship is None:
                out[col.name] = json_value(rec.get(col.name))
                continue
            parent = col.parent(rec)
            if col.relationship not in out:
                out[col.relationship] = (
                    None
                    if parent is None
                    else {"attributes": attributes(col.parent_type, parent["Id"])}
                )
            if parent is not None:
                out[col.relationship][col.name] = json_value(parent.get(col.name))
        return out


def parse_soql(text: str, objects: dict[str, SObject]) -> Soql:
    """Parse (and check against the describe) the SOQL subset the fake answers."""
    return _Parser(text, objects).query()


class _Parser:
    def __init__(self, text: str, objects: dict[str, SObject]):
        self.text, self.objects = text, objects
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.upper() in words

    def malformed(self, tok: _Tok) -> ApiError:
        shown = "<EOF>" if tok.kind == "eof" else f"'{tok.text}'"
        return _error("MALFORMED_QUERY", self.text, tok.pos, f"unexpected token: {shown}")

    def expect(self, word: str) -> _Tok:
        if not self.at(word):
            raise self.malformed(self.peek())
        return self.take()

    def name(self) -> _Tok:
        tok = self.take()
        if tok.kind != "name":
            raise self.malformed(tok)
        return tok

    def query(self) -> Soql:
        self.expect("SELECT")
        count_only, items = False, []
        if self.at("COUNT") and self.peek(1).text == "(" and self.peek(2).text == ")":
            self.i += 3
            count_only = True
        else:
            items.append(self.name())
            while self.peek().text == ",":
                self.take()
                items.append(self.name())
        self.expect("FROM")
        obj_tok = self.name()
        sobject = next(
            (o for k, o in self.objects.items() if k.lower() == obj_tok.text.lower()), None
        )
        if sobject is None:
            raise _error(
                "INVALID_TYPE",
                self.text,
                obj_tok.pos,
                f"sObject type '{obj_tok.text}' is not supported. If you are attempting"
                " to use a custom object, be sure to append the '__c' after the entity"
                " name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        self.sobject = sobject
        soql = Soql(self.text, sobject, [self.column(t) for t in items], count_only)
        if self.at("WHERE"):
            self.take()
            soql.where = self.disjunction()
        if self.at("ORDER"):
            self.take()
            self.expect("BY")
            soql.order.append(self.order_item())
            while self.peek().text == ",":
                self.take()
                soql.order.append(self.order_item())
        for word in ("LIMIT", "OFFSET"):
            if self.at(word):
                self.take()
                tok = self.take()
                if tok.kind != "num" or not tok.text.isdigit():
                    raise self.malformed(tok)
                setattr(soql, word.lower(), int(tok.text))
        if self.peek().kind != "eof":
            raise self.malformed(self.peek())
        return soql

    def column(self, tok: _Tok) -> Column:
        parts = tok.text.split(".")
        if len(parts) == 1:
            f = self.field(self.sobject, parts[0], tok.pos)
            return Column(f["name"], f["name"], f)
        if len(parts) > 2:
            raise self.malformed(tok)
        ref = next(
            (
                f
                for f in self.sobject.fields.values()
                if f["type"] == "reference"
                and (f["relationshipName"] or "").lower() == parts[0].lower()
            ),
            None,
        )
        target = self.objects.get(ref["referenceTo"][0]) if ref and ref["referenceTo"] else None
        if ref is None or target is None:
            raise _error(
                "INVALID_FIELD",
                self.text,
                tok.pos,
                f"Didn't understand relationship '{parts[0]}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' "
                "after the custom relationship name. Please reference your WSDL or the "
                "describe call for the appropriate names.",
            )
        f = self.field(target, parts[1], tok.pos)
        ref_name, records = ref["name"], target.records

        def parent(rec: dict[str, Any]) -> dict[str, Any] | None:
            found = records.get(rec.get(ref_name) or "")
            return None if found is None or found.get("IsDeleted") else found

        return Column(
            f"{ref['relationshipName']}.{f['name']}",
            f["name"],
            f,
            ref["relationshipName"],
            target.name,
            parent,
        )

    def field(self, sobject: SObject, name: str, pos: int) -> dict[str, Any]:
        f = sobject.field(name)
        if f is None:
            raise _error(
                "INVALID_FIELD",
                self.text,
                pos,
                f"No such column '{name}' on entity '{sobject.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after "
                "the custom field name. Please reference your WSDL or the describe call"
                " for the appropriate names.",
            )
        return f

    def order_item(self) -> tuple[Callable[[dict[str, Any]], Any], bool]:
        tok = self.name()
        col = self.column(tok)
        desc = False
        if self.at("ASC", "DESC"):
            desc = self.take().text.upper() == "DESC"
        nulls_first = not desc
        if self.at("NULLS"):
            self.take()
            if not self.at("FIRST", "LAST"):
                raise self.malformed(self.peek())
            nulls_first = self.take().text.upper() == "FIRST"
        norm = _normalizer(col.field["type"])
        null_key = (2 if nulls_first == desc else 0, 0)
        get = col.get

        def key(rec: dict[str, Any]) -> Any:
            value = get(rec)
            return null_key if value is None else (1, norm(value))

        return key, desc

    def disjunction(self) -> Callable[[dict[str, Any]], bool]:
        terms = [self.conjunction()]
        while self.at("OR"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda r: any(t(r) for t in terms))

    def conjunction(self) -> Callable[[dict[str, Any]], bool]:
        factors = [self.factor()]
        while self.at("AND"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda r: all(f(r) for f in factors))

    def factor(self) -> Callable[[dict[str, Any]], bool]:
        if self.at("NOT"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek().text == "(":
            self.take()
            inner = self.disjunction()
            if self.take().text != ")":
                raise self.malformed(self.toks[self.i - 1])
            return inner
        return self.condition()

    def literal(self, f: dict[str, Any], like: bool = False) -> Any:
        tok = self.take()
        upper = tok.text.upper()
        value: Any
        if tok.kind == "str":
            kind, value = "string", _unescape(tok.text[1:-1], like)
        elif tok.kind == "dt":
            kind, value = "datetime", parse_datetime(tok.text)
        elif tok.kind == "date":
            kind, value = "date", tok.text
        elif tok.kind == "num":
            kind, value = "number", float(tok.text) if "." in tok.text else int(tok.text)
        elif tok.kind == "name" and upper in ("TRUE", "FALSE"):
            kind, value = "boolean", upper == "TRUE"
        elif tok.kind == "name" and upper == "NULL":
            return None
        else:
            raise self.malformed(tok)
        want, word = _KINDS.get(f["type"], ("string", "string"))
        if kind != want:
            quotes = "be" if want == "string" else "not be"
            raise _error(
                "INVALID_FIELD",
                self.text,
                tok.pos,
                f"value of filter criterion for field '{f['name']}' must be of type "
                f"{word} and should {quotes} enclosed in quotes",
            )
        if f["type"] in ("id", "reference"):
            value = normalize_id(value) or value
        return value

    def condition(self) -> Callable[[dict[str, Any]], bool]:
        col = self.column(self.name())
        f = col.field
        norm = _normalizer(f["type"])
        get = col.get
        tok = self.take()
        if tok.kind == "op":
            value = self.literal(f)
            return _compare(get, norm, "!=" if tok.text == "<>" else tok.text, value)
        negate = tok.kind == "name" and tok.text.upper() == "NOT"
        if negate:
            tok = self.take()
        word = tok.text.upper() if tok.kind == "name" else ""
        if word == "IN":
            if self.take().text != "(":
                raise self.malformed(self.toks[self.i - 1])
            values = [self.literal(f)]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal(f))
            if self.take().text != ")":
                raise self.malformed(self.toks[self.i - 1])
            wanted = {None if v is None else norm(v) for v in values}

            def within(r: dict[str, Any]) -> bool:
                value = get(r)
                return (None if value is None else norm(value)) in wanted

            return (lambda r: not within(r)) if negate else within
        if word == "LIKE" and not negate:
            pattern = self.literal({"type": "string", "name": f["name"]}, like=True)
            regex = _like_regex(str(pattern))
            return lambda r: (v := get(r)) is not None and regex.fullmatch(str(v)) is not None
        raise self.malformed(tok)


def _normalizer(type_: str) -> Callable[[Any], Any]:
    if type_ in _STRINGS:
        return lambda v: v.casefold() if isinstance(v, str) else v
    return lambda v: v


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _compare(
    get: Callable[[dict[str, Any]], Any], norm: Callable[[Any], Any], op: str, value: Any
) -> Callable[[dict[str, Any]], bool]:
    if value is None:
        if op == "=":
            return lambda r: get(r) is None
        if op == "!=":
            return lambda r: get(r) is not None
        return lambda r: False
    target = norm(value)
    if op == "=":
        return lambda r: (v := get(r)) is not None and norm(v) == target
    if op == "!=":
        return lambda r: (v := get(r)) is None or norm(v) != target
    test = _OPS[op]
    return lambda r: (v := get(r)) is not None and test(norm(v), target)
