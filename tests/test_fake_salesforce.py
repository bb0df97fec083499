"""The fake Salesforce org, driven through simple-salesforce the way the engine drives it.

Shapes asserted here were compared with real recorded responses (query pages, queryMore,
SaveResult arrays with per-record errors, the Opportunity describe, Bulk 2.0 job info).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.util import Usage

from tests.fakes.salesforce import FakeSalesforce
from tests.waiting import wait_until

REST_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
# The keys every field of a real describe carries (recorded Opportunity describe).
DESCRIBE_FIELD_KEYS = {
    "aggregatable",
    "aiPredictionField",
    "autoNumber",
    "byteLength",
    "calculated",
    "calculatedFormula",
    "cascadeDelete",
    "caseSensitive",
    "compoundFieldName",
    "controllerName",
    "createable",
    "custom",
    "defaultValue",
    "defaultValueFormula",
    "defaultedOnCreate",
    "dependentPicklist",
    "deprecatedAndHidden",
    "digits",
    "displayLocationInDecimal",
    "encrypted",
    "externalId",
    "extraTypeInfo",
    "filterable",
    "filteredLookupInfo",
    "formulaTreatNullNumberAsZero",
    "groupable",
    "highScaleNumber",
    "htmlFormatted",
    "idLookup",
    "inlineHelpText",
    "label",
    "length",
    "mask",
    "maskType",
    "name",
    "nameField",
    "namePointing",
    "nillable",
    "permissionable",
    "picklistValues",
    "polymorphicForeignKey",
    "precision",
    "queryByDistance",
    "referenceTargetField",
    "referenceTo",
    "relationshipName",
    "relationshipOrder",
    "restrictedDelete",
    "restrictedPicklist",
    "scale",
    "searchPrefilterable",
    "soapType",
    "sortable",
    "type",
    "unique",
    "updateable",
    "writeRequiresMasterRead",
}


pytestmark = pytest.mark.org(env=False)


@pytest.fixture
def sf(org: FakeSalesforce) -> Salesforce:
    return Salesforce(
        instance_url=org.instance_url, session_id=org.access_token, session=org.session()
    )


def accounts(org: FakeSalesforce, n: int, **extra: object) -> list[str]:
    return org.add_accounts(
        [{"Name": f"Acme {i}", "NumberOfEmployees": 100 + i, **extra} for i in range(n)]
    )


def collection(*records: Mapping[str, object], all_or_none: bool = False) -> dict[str, object]:
    return {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Account"}, **r} for r in records],
    }


def content(exc: SalesforceError) -> Any:
    """The parsed error body (simple-salesforce annotates it as bytes)."""
    return exc.content


def bulk_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------- query


def test_query_pages_through_next_records_url_paths(org, sf):
    org.page_size = 3
    ids = org.add_accounts(
        [
            {
                "Name": f"Acme {i}",
                "NumberOfEmployees": 10 * i,
                "AnnualRevenue": 1000 * i,
                "Industry": "Technology",
            }
            for i in range(5)
        ]
    )
    soql = "SELECT Id, Name, NumberOfEmployees, Website, CreatedDate FROM Account ORDER BY Name"

    first = sf.query(soql)
    assert list(first) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert (first["totalSize"], first["done"], len(first["records"])) == (5, False, 3)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-3", first["nextRecordsUrl"])
    rows = list(sf.query_all_iter(soql))
    assert [r["Id"] for r in rows] == ids
    row = rows[1]
    assert list(row) == ["attributes", "Id", "Name", "NumberOfEmployees", "Website", "CreatedDate"]
    assert row["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{ids[1]}",
    }
    assert (row["NumberOfEmployees"], row["Website"]) == (10, None)
    assert REST_DATETIME.fullmatch(row["CreatedDate"])
    gets = [r for r in org.requests if r.method == "GET"][1:]  # query_all_iter's two calls
    assert gets[0].path == "/services/data/v59.0/query/" and gets[0].query == {"q": soql}
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-3", gets[1].path)
    assert gets[1].query == {} and all(r.status == 200 for r in gets)
    assert all(re.fullmatch(r"001dM\w{13}", i) for i in ids) and ids == sorted(ids)


def test_batch_size_header_lowers_the_page_size(org, sf):
    accounts(org, 250)
    page = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=200"})
    assert (page["totalSize"], len(page["records"]), page["done"]) == (250, 200, False)
    assert len(sf.query("SELECT Id FROM Account")["records"]) == 250


def test_query_all_shows_deleted_records(org, sf):
    ids = accounts(org, 3)
    before = org.records("Account")[ids[1]]["SystemModstamp"]
    org.delete("Account", ids[1])
    soql = "SELECT Id, IsDeleted, SystemModstamp FROM Account"
    assert [r["Id"] for r in sf.query_all(soql)["records"]] == [ids[0], ids[2]]
    everything = sf.query_all(soql, include_deleted=True)["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [
        (ids[0], False),
        (ids[1], True),
        (ids[2], False),
    ]
    assert org.records("Account")[ids[1]]["SystemModstamp"] > before
    assert sf.query("SELECT COUNT() FROM Account WHERE IsDeleted = true", include_deleted=True) == {
        "totalSize": 1,
        "done": True,
        "records": [],
    }


def test_where_compares_datetimes_at_millisecond_precision(org, sf):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [start]
    org.clock = lambda: clock[0]  # every record of this load gets the same stamp
    ids = accounts(org, 3)
    clock[0] = start + timedelta(seconds=2, milliseconds=250)
    org.edit("Account", ids[2], {"Industry": "Retail"})

    def changed(literal: str) -> list[str]:
        soql = (
            f"SELECT Id FROM Account WHERE SystemModstamp > {literal} ORDER BY SystemModstamp, Id"
        )
        return [r["Id"] for r in sf.query_all(soql)["records"]]

    assert changed("2026-01-01T00:00:00Z") == [ids[2]]
    assert changed(format_soql("{}", start + timedelta(seconds=1))) == [ids[2]]  # +00:00 form
    assert changed("2026-01-01T00:00:02.249+0000") == [ids[2]]
    assert changed("2026-01-01T00:00:02.250+0000") == []
    assert changed("2025-12-31T23:59:59-08:00") == []
    assert org.records("Account")[ids[2]]["SystemModstamp"] == clock[0]


def test_soql_filters_ordering_limit_and_parent_fields(org, sf):
    a, b, c = org.add_accounts(
        [
            {"Name": "Beta", "Industry": "Retail", "NumberOfEmployees": 50},
            {"Name": "alpha", "Industry": "Technology", "NumberOfEmployees": 500},
            {"Name": "Gamma", "NumberOfEmployees": 5000},
        ]
    )
    org.add_opportunities(
        [
            {
                "AccountId": b,
                "Name": "Big",
                "StageName": "Closed Won",
                "Amount": 1000,
                "CloseDate": "2026-01-31",
            }
        ]
    )

    def ids(soql: str, *args: object) -> list[str]:
        return [r["Id"] for r in sf.query_all(format_soql(soql, *args))["records"]]

    assert ids("SELECT Id FROM Account ORDER BY Name") == [b, a, c]  # case-insensitive sort
    assert ids("SELECT Id FROM Account ORDER BY Industry DESC NULLS LAST") == [b, a, c]
    assert ids("SELECT Id FROM Account WHERE Industry IN {}", ["retail", "Technology"]) == [a, b]
    assert ids("SELECT Id FROM Account WHERE Industry NOT IN ('Retail')") == [b, c]
    assert ids("SELECT Id FROM Account WHERE Industry = null") == [c]
    assert ids(
        "SELECT Id FROM Account WHERE Industry != 'Retail' AND "
        "(NumberOfEmployees >= 500 OR Name LIKE 'B%')"
    ) == [b, c]
    assert ids("SELECT Id FROM Account WHERE Name = {}", "it's \\ here") == []
    assert ids("SELECT Id FROM Account ORDER BY NumberOfEmployees DESC LIMIT 2") == [c, b]
    opp = sf.query(
        "SELECT Id, Account.Name, Amount, IsWon, IsClosed, CloseDate "
        "FROM Opportunity WHERE Account.NumberOfEmployees > 100"
    )["records"][0]
    assert opp["Account"]["Name"] == "alpha"
    assert opp["Account"]["attributes"]["type"] == "Account"
    assert (opp["Amount"], opp["IsWon"], opp["IsClosed"], opp["CloseDate"]) == (
        1000.0,
        True,
        True,
        "2026-01-31",
    )


def test_bad_soql_answers_the_documented_errors(sf):
    with pytest.raises(SalesforceMalformedRequest) as bad_field:
        sf.query("SELECT Id, Foo__c FROM Account")
    assert content(bad_field.value) == [
        {
            "message": "\nSELECT Id, Foo__c FROM Account\n           ^\nERROR at Row:1:Column:12\n"
            "No such column 'Foo__c' on entity 'Account'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. "
            "Please reference your WSDL or the describe call for the appropriate names.",
            "errorCode": "INVALID_FIELD",
        }
    ]
    # Each answer names the query, a caret under the column at fault, then the reason.
    # INVALID_TYPE is word for word what a real org answered (CumulusCI's recorded cassette
    # cumulusci/utils/salesforce/tests/cassettes/TestCountSObjects.test_count_sobjects__errors
    # .yaml); dateTime literals are unquoted (SOQL reference,
    # "Date Formats and Date Literals"), and a quoted one is refused with INVALID_FIELD.
    cases = {
        "select count() from XYZZY": (
            "INVALID_TYPE",
            21,
            "sObject type 'XYZZY' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
        ),
        "SELECT Id FROM Account WHERE": ("MALFORMED_QUERY", 29, "unexpected token: <EOF>"),
        "SELECT Id FROM Account WHERE SystemModstamp > '2024-01-01T00:00:00Z'": (
            "INVALID_FIELD",
            47,
            "value of filter criterion for field 'SystemModstamp' must be of type dateTime "
            "and should not be enclosed in quotes",
        ),
    }
    for soql, (code, column, reason) in cases.items():
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query(soql)
        located = f"\n{soql}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n"
        assert content(err.value) == [{"message": located + reason, "errorCode": code}]


# ---------------------------------------------------------------- describe


def test_describe_has_the_recorded_shape_and_follows_field_changes(org, sf):
    described = sf.Account.describe()
    assert (described["name"], described["custom"], described["keyPrefix"]) == (
        "Account",
        False,
        "001",
    )
    assert described["queryable"] and described["updateable"]
    fields = {f["name"]: f for f in described["fields"]}
    assert all(set(f) == DESCRIBE_FIELD_KEYS for f in fields.values())
    score = fields["ICP_Score__c"]
    assert (
        score["type"],
        score["precision"],
        score["scale"],
        score["custom"],
        score["updateable"],
        score["soapType"],
    ) == ("double", 3, 0, True, True, "xsd:double")
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["ICP_Tier__c"]["restrictedPicklist"] is False
    assert [p["value"] for p in fields["ICP_Tier__c"]["picklistValues"]] == list("ABCD")
    child = described["childRelationships"][0]
    assert (child["childSObject"], child["field"], child["relationshipName"]) == (
        "Opportunity",
        "AccountId",
        "Opportunities",
    )
    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert (opp["AccountId"]["referenceTo"], opp["AccountId"]["relationshipName"]) == (
        ["Account"],
        "Account",
    )
    assert opp["IsWon"]["updateable"] is False and opp["Amount"]["scale"] == 2

    org.remove_field("Account", "ICP_Route__c")
    org.set_field("Account", "ICP_Tier__c", restrictedPicklist=True)
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert "ICP_Route__c" not in fields and fields["ICP_Tier__c"]["restrictedPicklist"]
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT ICP_Route__c FROM Account")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Widget__c.describe()


def test_tooling_creates_custom_fields_when_allowed(org, sf):
    payload = {
        "FullName": "Account.ICP_Fit__c",
        "Metadata": {
            "label": "ICP Fit",
            "type": "Picklist",
            "valueSet": {"valueSetDefinition": {"value": [{"fullName": "Good", "label": "Good"}]}},
        },
    }
    created = sf.restful("tooling/sobjects/CustomField", method="POST", json=payload)
    assert created["success"] and created["id"].startswith("00N") and created["errors"] == []
    fit = org.fields("Account")["ICP_Fit__c"]
    assert (fit["type"], fit["custom"], fit["picklistValues"][0]["value"]) == (
        "picklist",
        True,
        "Good",
    )
    with pytest.raises(SalesforceMalformedRequest) as duplicate:
        sf.restful("tooling/sobjects/CustomField", method="POST", json=payload)
    assert content(duplicate.value)[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    org.can_customize = False
    payload["FullName"] = "Account.Other__c"
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.restful("tooling/sobjects/CustomField", method="POST", json=payload)
    assert content(refused.value) == [
        {
            "message": "insufficient access rights on cross-reference id",
            "errorCode": "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        }
    ]


# ---------------------------------------------------------------- collections


def test_collections_update_reports_each_record(org, sf):
    ok, gone, locked, invalid, long_text, readonly = accounts(org, 6)
    org.delete("Account", gone)
    org.lock_rows([locked])
    org.add_validation_rule(
        "Account",
        lambda r: (
            "Tier A needs a score of 80"
            if (r["ICP_Tier__c"] == "A" and (r["ICP_Score__c"] or 0) < 80)
            else None
        ),
    )
    stamp = org.records("Account")[ok]["SystemModstamp"]

    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json=collection(
            {"Id": ok, "ICP_Score__c": 91, "ICP_Tier__c": "A"},
            {"id": "001xx000003DHP0AAO", "Name": "Updated Account Name"},
            {"Id": gone, "ICP_Tier__c": "B"},
            {"Id": locked, "ICP_Tier__c": "B"},
            {"Id": invalid, "ICP_Score__c": 10, "ICP_Tier__c": "A"},
            {"Id": long_text, "ICP_Reasons__c": "x" * 256},
            {"Id": readonly, "SystemModstamp": "2020-01-01T00:00:00Z"},
            {"Id": "garbage", "ICP_Tier__c": "B"},
        ),
    )

    def failed(code: str, message: str, fields: list[str], rid: str | None = None) -> dict:
        out: dict[str, object] = {} if rid is None else {"id": rid}
        return {
            **out,
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": fields}],
        }

    assert results == [
        {"id": ok, "success": True, "errors": []},
        failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []),
        failed("ENTITY_IS_DELETED", "entity is deleted", [], gone),
        failed(
            "UNABLE_TO_LOCK_ROW",
            f"unable to obtain exclusive access to this record or 1 records: {locked}",
            [],
            locked,
        ),
        failed("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Tier A needs a score of 80", [], invalid),
        failed(
            "STRING_TOO_LONG",
            f"ICP Reasons: data value too large: {'x' * 256} (max length=255)",
            ["ICP_Reasons__c"],
            long_text,
        ),
        failed(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: SystemModstamp. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            ["SystemModstamp"],
            readonly,
        ),
        failed("MALFORMED_ID", "Account ID: id value of incorrect type: garbage", ["Id"]),
    ]
    store = org.records("Account")
    assert (store[ok]["ICP_Score__c"], store[ok]["ICP_Tier__c"]) == (91.0, "A")
    assert store[ok]["SystemModstamp"] > stamp
    assert store[locked]["ICP_Tier__c"] is None and store[invalid]["ICP_Tier__c"] is None
    again = sf.restful(
        "composite/sobjects", method="PATCH", json=collection({"Id": locked, "ICP_Tier__c": "B"})
    )
    assert again == [{"id": locked, "success": True, "errors": []}]  # the lock was transient


def test_numbers_are_stored_at_scale_and_empty_strings_as_null(org, sf):
    (rid,) = org.add_accounts([{"Name": "Acme", "ICP_Segment__c": "Mid-market"}])
    sf.restful(
        "composite/sobjects",
        method="PATCH",
        json=collection(
            {"Id": rid, "ICP_Score__c": 87.4, "ICP_Segment__c": "", "AnnualRevenue": "1234.5"}
        ),
    )
    raw = org.session().get(
        f"{org.instance_url}/services/data/v59.0/query/",
        params={"q": "SELECT ICP_Score__c, ICP_Segment__c, AnnualRevenue FROM Account"},
        headers={"Authorization": f"Bearer {org.access_token}"},
    )
    assert '"ICP_Score__c":87.0' in raw.text
    row = raw.json()["records"][0]
    assert (row["ICP_Score__c"], row["ICP_Segment__c"]) == (87.0, None)
    assert row["AnnualRevenue"] == 1235.0  # currency scale 0, half-up
    assert raw.headers["Content-Type"] == "application/json;charset=UTF-8"
    stamp = org.records("Account")[rid]["SystemModstamp"]
    sf.restful(
        "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Score__c": 87.5})
    )
    assert org.records("Account")[rid]["ICP_Score__c"] == 88.0  # half-up
    sf.restful(
        "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Score__c": 88})
    )
    assert org.records("Account")[rid]["SystemModstamp"] > stamp  # even when unchanged
    out_of_range = sf.restful(
        "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Score__c": 1000})
    )
    assert out_of_range[0]["errors"][0]["statusCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_collections_request_level_errors(org, sf):
    ids = accounts(org, 201)
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful(
            "composite/sobjects",
            method="PATCH",
            json=collection(*({"Id": i, "ICP_Tier__c": "B"} for i in ids)),
        )
    assert content(too_many.value) == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.restful(
            "composite/sobjects", method="PATCH", json=collection({"Id": ids[0], "Score__c": 1})
        )
    assert content(unknown.value)[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as wrong_type:
        sf.restful(
            "composite/sobjects",
            method="PATCH",
            json=collection({"Id": ids[0], "ICP_Score__c": "high"}),
        )
    assert content(wrong_type.value)[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert all(r["ICP_Tier__c"] is None for r in org.records("Account").values())


def test_all_or_none_rolls_everything_back(org, sf):
    good, gone = accounts(org, 2)
    org.delete("Account", gone)
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json=collection(
            {"Id": good, "ICP_Tier__c": "A"}, {"Id": gone, "ICP_Tier__c": "B"}, all_or_none=True
        ),
    )
    assert results[0] == {
        "id": good,
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": (
                    "Record rolled back because not all records were valid and the request "
                    "was using AllOrNone header"
                ),
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert org.records("Account")[good]["ICP_Tier__c"] is None


def test_single_record_get_and_update(org, sf):
    (rid,) = accounts(org, 1)
    assert sf.Account.update(rid, {"ICP_Tier__c": "C", "ICP_Score__c": 55}) == 204
    record = sf.Account.get(rid)
    assert (record["ICP_Tier__c"], record["ICP_Score__c"]) == ("C", 55.0)
    assert record["attributes"]["url"].endswith(f"/sobjects/Account/{rid}")
    org.add_validation_rule("Account", lambda r: "no D" if r["ICP_Tier__c"] == "D" else None)
    with pytest.raises(SalesforceMalformedRequest) as invalid:
        sf.Account.update(rid, {"ICP_Tier__c": "D"})
    assert content(invalid.value) == [
        {"message": "no D", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": []}
    ]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.update("001xx000003DHP0AAO", {"ICP_Tier__c": "A"})


# ---------------------------------------------------------------- Bulk API 2.0


def test_bulk_ingest_update_with_results(org, sf):
    ok, cleared, locked, gone = org.add_accounts(
        [{"Name": f"Acme {i}", "ICP_Segment__c": "SMB", "ICP_Tier__c": "C"} for i in range(4)]
    )
    org.lock_rows([locked])
    org.delete("Account", gone)
    rows = [
        {"Id": ok, "ICP_Tier__c": "A", "ICP_Segment__c": ""},
        {"Id": cleared, "ICP_Tier__c": "#N/A", "ICP_Segment__c": "Enterprise"},
        {"Id": locked, "ICP_Tier__c": "B", "ICP_Segment__c": ""},
        {"Id": gone, "ICP_Tier__c": "B", "ICP_Segment__c": ""},
        {"Id": "001xx000003DHP0AAO", "ICP_Tier__c": "B", "ICP_Segment__c": ""},
    ]

    (summary,) = sf.bulk2.Account.update(records=rows, wait=0)
    assert summary["numberRecordsProcessed"] == 5 and summary["numberRecordsFailed"] == 3
    store = org.records("Account")
    assert (store[ok]["ICP_Tier__c"], store[ok]["ICP_Segment__c"]) == ("A", "SMB")  # blank kept
    assert (store[cleared]["ICP_Tier__c"], store[cleared]["ICP_Segment__c"]) == (None, "Enterprise")
    failed_csv = sf.bulk2.Account.get_failed_records(summary["job_id"])
    assert failed_csv.splitlines()[0].startswith('"sf__Id","sf__Error",')
    failed = {r["Id"]: r for r in bulk_rows(failed_csv)}
    assert failed[locked]["sf__Error"] == (
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"
    )
    assert failed[gone]["sf__Error"] == "ENTITY_IS_DELETED:entity is deleted:--"
    unknown = failed["001xx000003DHP0AAO"]
    assert (unknown["sf__Id"], unknown["sf__Error"]) == (
        "",
        "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
    )
    done = bulk_rows(sf.bulk2.Account.get_successful_records(summary["job_id"]))
    assert sorted((r["sf__Id"], r["sf__Created"]) for r in done) == sorted(
        [(ok, "false"), (cleared, "false")]
    )
    calls = [(r.method, r.path.split("/jobs/")[-1]) for r in org.requests if "/jobs/" in r.path]
    job = summary["job_id"]
    assert calls[:4] == [
        ("POST", "ingest"),
        ("PUT", f"ingest/{job}/batches"),
        ("PATCH", f"ingest/{job}"),
        ("GET", f"ingest/{job}"),
    ]
    put = next(r for r in org.requests if r.method == "PUT")
    assert put.headers["content-type"].startswith("text/csv") and put.status == 201


def test_bulk_job_lifecycle_polls_and_unprocessed_rows(org, sf):
    ids = accounts(org, 3)
    org.bulk_polls_to_complete = 3
    base = f"{org.instance_url}/services/data/v59.0/jobs/ingest"
    http = org.session()
    http.headers["Authorization"] = f"Bearer {org.access_token}"
    job = http.post(
        base,
        json={
            "object": "Account",
            "operation": "update",
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        },
    ).json()
    assert (job["id"][:3], job["state"], job["apiVersion"], job["contentUrl"]) == (
        "750",
        "Open",
        59.0,
        f"services/data/v59.0/jobs/ingest/{job['id']}/batches",
    )
    body = "Id,ICP_Tier__c\n" + "".join(f"{i},B\n" for i in ids)
    put = http.put(f"{base}/{job['id']}/batches", data=body, headers={"Content-Type": "text/csv"})
    assert (put.status_code, put.content) == (201, b"")
    assert (
        http.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}).json()["state"]
        == "UploadComplete"
    )
    states = [http.get(f"{base}/{job['id']}").json() for _ in range(3)]
    assert [s["state"] for s in states] == ["InProgress", "InProgress", "JobComplete"]
    assert (states[-1]["jobType"], states[-1]["numberRecordsProcessed"]) == ("V2Ingest", 3)

    org.bulk_polls_to_complete, org.bulk_leave_unprocessed = 1, 1
    with pytest.raises(SalesforceOperationError):
        sf.bulk2.Account.update(records=[{"Id": i, "ICP_Tier__c": "C"} for i in ids], wait=0)
    job_id = [r.path for r in org.requests if r.method == "PUT"][-1].split("/")[-2]
    for spelling in ("unprocessedrecords", "unprocessedRecords"):
        left = http.get(f"{base}/{job_id}/{spelling}/")
        assert bulk_rows(left.text) == [{"Id": ids[2], "ICP_Tier__c": "C"}]
    assert [org.records("Account")[i]["ICP_Tier__c"] for i in ids] == ["C", "C", "B"]
    assert http.delete(f"{base}/{job_id}").status_code == 204


def test_bulk_query_pages_csv_with_locators(org, sf):
    ids = org.add_accounts(
        [{"Name": f"Acme, {i}", "NumberOfEmployees": i or None} for i in range(5)]
    )
    org.delete("Account", ids[4])
    pages = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name, NumberOfEmployees, IsDeleted, CreatedDate FROM Account ORDER BY Name",
            max_records=2,
            wait=0,
        )
    )
    assert len(pages) == 2
    assert pages[0].splitlines()[0] == '"Id","Name","NumberOfEmployees","IsDeleted","CreatedDate"'
    rows = [r for page in pages for r in bulk_rows(page)]
    assert [r["Id"] for r in rows] == ids[:4]
    assert (rows[0]["Name"], rows[0]["NumberOfEmployees"], rows[0]["IsDeleted"]) == (
        "Acme, 0",
        "",
        "false",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows[0]["CreatedDate"])
    job_id = next(r.path for r in org.requests if r.path.endswith("/results")).split("/")[-2]
    http = org.session()
    http.headers["Authorization"] = f"Bearer {org.access_token}"
    url = f"{org.instance_url}/services/data/v59.0/jobs/query/{job_id}"
    info = http.get(url).json()
    assert (info["jobType"], info["operation"], info["object"], info["state"]) == (
        "V2Query",
        "query",
        "Account",
        "JobComplete",
    )
    first = http.get(f"{url}/results", params={"maxRecords": 3})
    assert first.headers["Sforce-NumberOfRecords"] == "3"
    last = http.get(
        f"{url}/results", params={"maxRecords": 3, "locator": first.headers["Sforce-Locator"]}
    )
    assert (last.headers["Sforce-NumberOfRecords"], last.headers["Sforce-Locator"]) == ("1", "null")
    assert last.headers["Content-Type"] == "text/csv"
    everything = list(sf.bulk2.Account.query_all("SELECT Id FROM Account", wait=0))
    assert len(bulk_rows(everything[0])) == 5


# ---------------------------------------------------------------- failures, limits, auth


def test_injected_failures_and_dropped_connections(org, sf):
    (rid,) = accounts(org, 1)
    org.fail(503, path_contains="composite/sobjects")
    with pytest.raises(SalesforceGeneralError) as unavailable:
        sf.restful(
            "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Tier__c": "A"})
        )
    assert unavailable.value.status == 503
    assert content(unavailable.value) == [
        {"message": "Server Unavailable", "errorCode": "SERVER_UNAVAILABLE"}
    ]
    assert org.records("Account")[rid]["ICP_Tier__c"] is None  # not applied
    org.fail(502, method="GET")
    with pytest.raises(SalesforceGeneralError) as edge:
        sf.query("SELECT Id FROM Account")
    assert "<html>" in content(edge.value)
    org.drop(after_apply=True, method="PATCH")
    with pytest.raises(requests.ConnectionError):
        sf.restful(
            "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Tier__c": "B"})
        )
    assert org.records("Account")[rid]["ICP_Tier__c"] == "B"  # applied, answer lost
    org.drop(method="PATCH")
    with pytest.raises(requests.ConnectionError):
        sf.restful(
            "composite/sobjects", method="PATCH", json=collection({"Id": rid, "ICP_Tier__c": "C"})
        )
    assert org.records("Account")[rid]["ICP_Tier__c"] == "B"
    assert [r.status for r in org.requests] == [503, 502, 0, 0]
    org.slow(0.2)
    started = time.monotonic()
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 1
    assert time.monotonic() - started >= 0.2


def test_revoked_session_expires_and_password_clients_log_in_again(org, sf):
    accounts(org, 1)
    relogin = Salesforce(
        username=org.username,
        password=org.password,
        security_token=org.security_token,
        session=org.redirecting_session(),
    )
    org.revoke_session()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM Account")
    assert content(expired.value) == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert relogin.query("SELECT Id FROM Account")["totalSize"] == 1  # new SOAP login
    assert relogin.session_id == org.access_token


def test_daily_limit_and_api_usage_header(org, sf):
    org.daily_limit, org.api_usage = 10, 8
    assert sf.limits()["DailyApiRequests"] == {"Max": 10, "Remaining": 1}
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"] == Usage(used=10, total=10)
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account")
    assert content(refused.value) == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert (org.api_usage, org.api_calls) == (10, 2)


def test_password_login_through_the_redirecting_session(org):
    accounts(org, 2)
    client = Salesforce(
        username=org.username,
        password=org.password,
        security_token=org.security_token,
        session=org.redirecting_session(),
    )
    assert client.sf_instance == org.instance_url.removeprefix("https://")
    assert client.query("SELECT COUNT() FROM Account")["totalSize"] == 2
    login = org.requests[0]
    assert (login.method, login.path, login.status) == ("POST", "/services/Soap/u/59.0", 200)
    assert org.api_calls == 1  # logins are not counted
    with pytest.raises(SalesforceAuthenticationFailed) as bad:
        Salesforce(
            username=org.username,
            password="wrong",
            security_token=org.security_token,
            session=org.redirecting_session(),
            domain="test",
        )
    assert bad.value.code == "INVALID_LOGIN"


def test_jwt_bearer_login(org):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client = Salesforce(
        username=org.username,
        consumer_key=org.consumer_key,
        privatekey=pem,
        session=org.redirecting_session(),
    )
    assert client.session_id == org.access_token
    assert client.query("SELECT COUNT() FROM Account")["totalSize"] == 0
    form = dict(p.split("=", 1) for p in org.requests[0].body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    with pytest.raises(SalesforceAuthenticationFailed) as bad:
        Salesforce(
            username=org.username,
            consumer_key="other",
            privatekey=pem,
            session=org.redirecting_session(),
        )
    assert bad.value.code == "invalid_client_id"


def test_oauth_password_and_client_credentials_grants(org):
    password_grant = Salesforce(
        username=org.username,
        password=org.password,
        consumer_key=org.consumer_key,
        consumer_secret=org.consumer_secret,
        session=org.redirecting_session(),
    )
    assert password_grant.query("SELECT COUNT() FROM Account")["totalSize"] == 0
    client_credentials = Salesforce(
        consumer_key=org.consumer_key,
        consumer_secret=org.consumer_secret,
        domain="acme.my",
        session=org.redirecting_session(domains=["acme.my"]),
    )
    assert client_credentials.session_id == org.access_token
    with pytest.raises(SalesforceAuthenticationFailed) as bad:
        Salesforce(
            username=org.username,
            password="nope",
            consumer_key=org.consumer_key,
            consumer_secret=org.consumer_secret,
            session=org.redirecting_session(),
        )
    assert (bad.value.code, bad.value.auth_message) == ("invalid_grant", "authentication failure")


def test_a_client_killed_mid_write_still_gets_its_write_applied(org):
    (rid,) = accounts(org, 1)
    org.slow(0.3, method="PATCH")
    script = textwrap.dedent(f"""
        from simple_salesforce import Salesforce
        sf = Salesforce(instance_url={org.instance_url!r}, session_id={org.access_token!r})
        sf.restful("composite/sobjects", method="PATCH",
                   json={collection({"Id": rid, "ICP_Tier__c": "A"})!r})
    """)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": org.ca_path}  # how the engine is pointed here
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    wait_until(
        lambda: any(r.method == "PATCH" for r in org.requests),
        "the client's PATCH reached the org",
        timeout=20,
        alive=lambda: child.poll() is None,
    )
    child.send_signal(signal.SIGKILL)
    child.wait()
    wait_until(lambda: org.requests[-1].status != 0, "the org finished the save", timeout=20)
    assert org.records("Account")[rid]["ICP_Tier__c"] == "A"  # the org finished the save
    assert org.requests[-1].status == 200


def test_api_versions_up_to_the_orgs_newest(org, sf):
    http = org.session()
    versions = http.get(f"{org.instance_url}/services/data/").json()
    assert versions[-1] == {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}
    newer = Salesforce(
        instance_url=org.instance_url, session_id=org.access_token, session=http, version="60.0"
    )
    with pytest.raises(SalesforceResourceNotFound):
        newer.query("SELECT Id FROM Account")
    older = Salesforce(
        instance_url=org.instance_url, session_id=org.access_token, session=http, version="52.0"
    )
    assert older.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_clock_stamps_never_tie_by_default(org):
    stamps = [org.now() for _ in range(50)]
    assert all(b - a >= timedelta(milliseconds=1) for a, b in itertools.pairwise(stamps))
    assert all(s.microsecond % 1000 == 0 and s.tzinfo == UTC for s in stamps)
    ids = accounts(org, 3)
    created = [org.records("Account")[i]["CreatedDate"] for i in ids]
    assert created == sorted(set(created))


def test_keep_alive_and_concurrent_clients(org):
    ids = accounts(org, 40)
    org.latency = 0.05
    session = org.session()
    client = Salesforce(instance_url=org.instance_url, session_id=org.access_token, session=session)
    for _ in range(3):
        client.query("SELECT Id FROM Account LIMIT 1")
    assert org.connections == 1  # one TLS connection, reused

    def write(chunk: list[str]) -> None:
        own = Salesforce(
            instance_url=org.instance_url, session_id=org.access_token, session=org.session()
        )
        own.restful(
            "composite/sobjects",
            method="PATCH",
            json=collection(*({"Id": i, "ICP_Route__c": "AE"} for i in chunk)),
        )

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [ids[k : k + 5] for k in range(0, 40, 5)]))
    assert all(org.records("Account")[i]["ICP_Route__c"] == "AE" for i in ids)
    body = json.loads(org.requests[-1].body)
    assert body["allOrNone"] is False and len(body["records"]) == 5
