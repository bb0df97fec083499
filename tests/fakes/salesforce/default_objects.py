"""The fake Salesforce org's default sObjects: Account and Opportunity with the standard
and custom fields (ICP_*__c included) the engine sees in a typical org."""

from __future__ import annotations

from typing import Any

from tests.fakes.salesforce.describe import SObject, make_field

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
