"""The fake HubSpot portal's schema: object names, property definitions, deal pipelines.

Shapes follow what HubSpot's CRM v3 APIs return (checked against recorded responses):
property definitions as `GET /crm/v3/properties/{object}` lists them, the default deal
pipeline as `GET /crm/v3/pipelines/deals` returns it.
"""

from __future__ import annotations

from typing import Any

OBJECT_TYPES = {
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
TYPE_IDS = {"companies": "0-2", "deals": "0-3"}
SINGULAR = {"companies": "company", "deals": "deal"}
UPPER = {"companies": "COMPANY", "deals": "DEAL"}

# Properties returned when a read names none (as HubSpot does for each object).
DEFAULT_READ = {
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "deals": (
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ),
}
ALWAYS_READ = ("hs_object_id", "createdate", "hs_lastmodifieddate")
SEARCHABLE_TEXT = {"companies": ("name", "domain", "website"), "deals": ("dealname",)}

# Association types (v4 category/typeId/label, v3 type name) for the deal <-> company pair.
AssocType = tuple[str, int, str | None, str]
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[AssocType, ...]] = {
    ("deals", "companies"): (
        ("HUBSPOT_DEFINED", 5, "Primary", "deal_to_company"),
        ("HUBSPOT_DEFINED", 341, None, "deal_to_company_unlabeled"),
    ),
    ("companies", "deals"): (
        ("HUBSPOT_DEFINED", 6, "Primary", "company_to_deal"),
        ("HUBSPOT_DEFINED", 342, None, "company_to_deal_unlabeled"),
    ),
}

_EPOCH = "1970-01-01T00:00:00Z"
_DEFINED_AT = "2019-08-06T02:41:52.110Z"


# --- property definitions ----------------------------------------------------------------


def option(value: str, label: str | None = None, order: int = 0) -> dict[str, Any]:
    return {"label": label or value, "value": value, "displayOrder": order, "hidden": False}


def options(values: list[str] | list[tuple[str, str]]) -> list[dict[str, Any]]:
    out = []
    for order, item in enumerate(values):
        value, label = item if isinstance(item, tuple) else (item, item)
        out.append(option(value, label, order))
    return out


def definition(
    name: str,
    label: str,
    kind: str,
    field_type: str,
    group: str,
    *,
    choices: list[dict[str, Any]] | None = None,
    read_only: bool = False,
    calculated: bool = False,
    hubspot_defined: bool = True,
    external_options: bool = False,
    order: int = -1,
    stamp: str = _DEFINED_AT,
) -> dict[str, Any]:
    """A property definition in the shape `GET /crm/v3/properties/{object}` returns."""
    prop: dict[str, Any] = {
        "updatedAt": stamp,
        "createdAt": stamp,
        "name": name,
        "label": label,
        "type": kind,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": choices or [],
        "displayOrder": order,
        "calculated": calculated,
        "externalOptions": external_options,
        "hasUniqueValue": False,
        "hidden": False,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "dataSensitivity": "non_sensitive",
    }
    if hubspot_defined:
        prop["hubspotDefined"] = True
    else:
        prop["createdUserId"] = "1000001"
        prop["updatedUserId"] = "1000001"
    prop["archived"] = False
    return prop


INDUSTRIES = [
    "ACCOUNTING", "AIRLINES_AVIATION", "APPAREL_FASHION", "ARCHITECTURE_PLANNING",
    "AUTOMOTIVE", "BANKING", "BIOTECHNOLOGY", "BROADCAST_MEDIA", "BUILDING_MATERIALS",
    "CAPITAL_MARKETS", "CHEMICALS", "COMPUTER_GAMES", "COMPUTER_HARDWARE",
    "COMPUTER_NETWORK_SECURITY", "COMPUTER_NETWORKING", "COMPUTER_SOFTWARE", "CONSTRUCTION",
    "CONSUMER_ELECTRONICS", "CONSUMER_GOODS", "CONSUMER_SERVICES", "E_LEARNING",
    "EDUCATION_MANAGEMENT", "ELECTRICAL_ELECTRONIC_MANUFACTURING", "ENTERTAINMENT",
    "FINANCIAL_SERVICES", "FOOD_BEVERAGES", "GOVERNMENT_ADMINISTRATION",
    "GOVERNMENT_RELATIONS", "HEALTH_WELLNESS_AND_FITNESS", "HIGHER_EDUCATION",
    "HOSPITAL_HEALTH_CARE", "HOSPITALITY", "INDUSTRIAL_AUTOMATION",
    "INFORMATION_TECHNOLOGY_AND_SERVICES", "INSURANCE", "INTERNET", "INVESTMENT_MANAGEMENT",
    "LEGAL_SERVICES", "LOGISTICS_AND_SUPPLY_CHAIN", "MACHINERY", "MANAGEMENT_CONSULTING",
    "MARKETING_AND_ADVERTISING", "MECHANICAL_OR_INDUSTRIAL_ENGINEERING", "MEDIA_PRODUCTION",
    "MEDICAL_DEVICES", "MILITARY", "NONPROFIT_ORGANIZATION_MANAGEMENT", "OIL_ENERGY",
    "ONLINE_MEDIA", "PHARMACEUTICALS", "PRIMARY_SECONDARY_EDUCATION", "PUBLIC_SAFETY",
    "PUBLISHING", "REAL_ESTATE", "RESTAURANTS", "RETAIL", "STAFFING_AND_RECRUITING",
    "SUPERMARKETS", "TELECOMMUNICATIONS", "TRANSPORTATION_TRUCKING_RAILROAD", "UTILITIES",
    "VENTURE_CAPITAL_PRIVATE_EQUITY", "WHOLESALE",
]  # fmt: skip

WEB_TECHNOLOGIES = [
    ("salesforce", "Salesforce"), ("hubspot", "HubSpot"), ("marketo", "Marketo"),
    ("google_analytics", "Google Analytics"), ("google_tag_manager", "Google Tag Manager"),
    ("segment", "Segment"), ("intercom", "Intercom"), ("zendesk", "Zendesk"),
    ("shopify", "Shopify"), ("wordpress", "WordPress"), ("stripe", "Stripe"),
    ("amazon_web_services", "Amazon Web Services"), ("cloudflare", "Cloudflare"),
    ("slack", "Slack"), ("microsoft_office_365", "Microsoft Office 365"),
]  # fmt: skip

TRAFFIC_SOURCES = [
    "ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS",
    "OTHER_CAMPAIGNS", "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL", "AI_REFERRALS",
]  # fmt: skip
DEAL_TYPES = [("newbusiness", "New Business"), ("existingbusiness", "Existing Business")]
_BOOL = [("true", "True"), ("false", "False")]


def _title(code: str) -> str:
    return code.replace("_", " ").title()


def default_properties() -> dict[str, dict[str, dict[str, Any]]]:
    """Definitions per object type, keyed by property name (a fresh copy each call)."""
    co, de = "companyinformation", "dealinformation"
    companies = [
        definition("name", "Company name", "string", "text", co),
        definition("domain", "Company Domain Name", "string", "text", co),
        definition(
            "industry",
            "Industry",
            "enumeration",
            "select",
            co,
            choices=options([(code, _title(code)) for code in INDUSTRIES]),
        ),
        definition(
            "type",
            "Type",
            "enumeration",
            "select",
            co,
            choices=options(
                [(v, _title(v)) for v in ("PROSPECT", "CUSTOMER", "PARTNER", "RESELLER")]
                + [("VENDOR", "Vendor"), ("OTHER", "Other")]
            ),
        ),
        definition("numberofemployees", "Number of Employees", "number", "number", co),
        definition("annualrevenue", "Annual Revenue", "number", "number", co),
        definition("country", "Country/Region", "string", "text", co),
        definition("state", "State/Region", "string", "text", co),
        definition("founded_year", "Year Founded", "string", "text", co),
        definition(
            "hs_analytics_source",
            "Original Traffic Source",
            "enumeration",
            "select",
            "analyticsinformation",
            choices=options([(v, _title(v)) for v in TRAFFIC_SOURCES]),
        ),
        definition("createdate", "Create Date", "datetime", "date", co, read_only=True),
        definition(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", co, read_only=True
        ),
        definition("hs_object_id", "Record ID", "number", "number", co, read_only=True),
        # a default company property: the ids merged into this record, ";"-separated
        definition(
            "hs_merged_object_ids",
            "Merged Company IDs",
            "enumeration",
            "checkbox",
            co,
            read_only=True,
        ),
        _custom("funding_stage", "Funding Stage", "string", "text", co),
        _custom("employees_last_year", "Employees Last Year", "number", "number", co),
        # a default company property HubSpot fills in itself (source "BIDEN" in a recorded
        # v2 company answer, hull-services' hubspot fixtures; "Web Technologies (HubSpot)"
        # among the default company fields), not one a portal admin creates
        definition(
            "web_technologies",
            "Web Technologies",
            "enumeration",
            "checkbox",
            co,
            choices=options(WEB_TECHNOLOGIES),
        ),
        _custom("icp_score", "ICP Score", "number", "number", co),
        _custom("icp_tier", "ICP Tier", "enumeration", "select", co, choices=options(list("ABCD"))),
        _custom("icp_segment", "ICP Segment", "string", "text", co),
        _custom("icp_reasons", "ICP Reasons", "string", "textarea", co),
        _custom("icp_route", "ICP Route", "string", "text", co),
    ]
    deals = [
        definition("dealname", "Deal Name", "string", "text", de),
        definition("amount", "Amount", "number", "number", de),
        definition("dealstage", "Deal Stage", "enumeration", "radio", de, external_options=True),
        definition("pipeline", "Pipeline", "enumeration", "select", de, external_options=True),
        definition("closedate", "Close Date", "datetime", "date", de),
        definition("createdate", "Create Date", "datetime", "date", de, read_only=True),
        definition(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", de, read_only=True
        ),
        definition("hs_object_id", "Record ID", "number", "number", de, read_only=True),
        *[
            definition(
                name,
                label,
                "bool",
                "booleancheckbox",
                de,
                choices=options(_BOOL),
                read_only=True,
                calculated=True,
            )
            for name, label in (
                ("hs_is_closed", "Is Deal Closed?"),
                ("hs_is_closed_won", "Is Closed Won"),
                ("hs_is_closed_lost", "Is closed lost"),
            )
        ],
        definition(
            "dealtype", "Deal Type", "enumeration", "radio", de, choices=options(DEAL_TYPES)
        ),
        definition("closed_lost_reason", "Closed Lost Reason", "string", "textarea", de),
    ]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for obj, defs in (("companies", companies), ("deals", deals)):
        for order, prop in enumerate(defs):
            prop["displayOrder"] = order if prop.get("hubspotDefined") else -1
        out[obj] = {prop["name"]: prop for prop in defs}
    return out


def _custom(
    name: str,
    label: str,
    kind: str,
    field_type: str,
    group: str,
    choices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    stamp = "2025-01-15T09:30:00.000Z"
    return definition(
        name, label, kind, field_type, group, choices=choices, hubspot_defined=False, stamp=stamp
    )


def default_groups() -> dict[str, dict[str, dict[str, Any]]]:
    def group(name: str, label: str, order: int) -> dict[str, Any]:
        return {"name": name, "label": label, "displayOrder": order, "archived": False}

    return {
        "companies": {
            g["name"]: g
            for g in (
                group("companyinformation", "Company information", 0),
                group("analyticsinformation", "Web analytics history", 1),
                group("socialmediainformation", "Social media information", 2),
            )
        },
        "deals": {
            g["name"]: g
            for g in (
                group("dealinformation", "Deal information", 0),
                group("deal_activity", "Deal activity", 1),
                group("analyticsinformation", "Web analytics history", 2),
            )
        },
    }


# --- pipelines -------------------------------------------------------------------------


def stage(
    stage_id: str, label: str, order: int, probability: str, closed: bool, stamp: str = _EPOCH
) -> dict[str, Any]:
    return {
        "label": label,
        "displayOrder": order,
        "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
        "id": stage_id,
        "createdAt": stamp,
        "updatedAt": stamp,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        "archived": False,
    }


def pipeline(
    pipeline_id: str, label: str, order: int, stages: list[dict[str, Any]], stamp: str = _EPOCH
) -> dict[str, Any]:
    return {
        "label": label,
        "displayOrder": order,
        "id": pipeline_id,
        "stages": stages,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def default_pipeline() -> dict[str, Any]:
    """The default deal pipeline exactly as a new portal returns it."""
    rows = [
        ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
        ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
        ("presentationscheduled", "Presentation Scheduled", "0.6", False),
        ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
        ("contractsent", "Contract Sent", "0.9", False),
        ("closedwon", "Closed Won", "1.0", True),
        ("closedlost", "Closed Lost", "0.0", True),
    ]
    stages = [stage(sid, label, n, p, closed) for n, (sid, label, p, closed) in enumerate(rows)]
    return pipeline("default", "Sales Pipeline", 0, stages)


def stage_outcome(stage_def: dict[str, Any] | None) -> tuple[str, str, str]:
    """(hs_is_closed, hs_is_closed_won, hs_is_closed_lost) for a stage definition."""
    if stage_def is None:
        return "false", "false", "false"
    meta = stage_def["metadata"]
    closed = meta.get("isClosed") == "true"
    try:
        probability = float(meta.get("probability", "0"))
    except ValueError:
        probability = 0.0
    won = closed and probability >= 1.0
    lost = closed and probability <= 0.0
    return _b(closed), _b(won), _b(lost)


def _b(flag: bool) -> str:
    return "true" if flag else "false"
