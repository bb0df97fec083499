"""Edits keep the admin's file as written; suggestions find the field meant and the value
meant, and nothing else."""

from __future__ import annotations

import icp_engine.mappings as bundled
import pandas as pd
import pytest
import yaml
from icp_engine.sync.mapedit import Edit, EditError, apply_edits, dump, load
from icp_engine.sync.sourcedata import Column, SourceData, profile
from icp_engine.sync.suggest import suggest, uncaught


def text(name: str) -> str:
    return bundled.default(name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", bundled.FILES)
def test_a_file_read_and_written_back_unchanged_is_byte_identical(name: str) -> None:
    assert dump(load(text(name))) == text(name)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), "lines were added or removed"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_a_weight_edit_changes_that_line_only() -> None:
    after = apply_edits({"icp": text("icp.yaml")}, [Edit("weight", "0.3", group="bonus", index=1)])
    assert changed_lines(text("icp.yaml"), after["icp"]) == [
        ("      weight: 0.05", "      weight: 0.3")
    ]


def test_mapping_a_shorthand_field_grows_a_block_in_place() -> None:
    before = text("csv.yaml")
    after = apply_edits(
        {"mapping": before}, [Edit("value", "Gold", name="rating", canonical="Hot")]
    )["mapping"]
    assert "      rating:\n        field: Rating\n        values:\n          Hot: [Gold]\n" in after
    assert yaml.safe_load(after)["objects"]["account"]["fields"]["source"] == "AccountSource"


def test_a_spelling_means_one_thing_so_mapping_it_moves_it() -> None:
    after = apply_edits(
        {"mapping": text("csv.yaml")},
        [Edit("value", "Retail", name="industry", canonical="Consumer")],
    )["mapping"]
    values = yaml.safe_load(after)["objects"]["account"]["fields"]["industry"]["values"]
    assert "Retail" not in values["E-commerce/Retail"] and values["Consumer"] == ["Retail"]


def test_a_new_extra_field_goes_before_the_blank_line_that_ends_its_block() -> None:
    before = text("csv.yaml")
    after = apply_edits(
        {"mapping": before}, [Edit("field", "Lead_Score__c", kind="opportunity", name="score")]
    )["mapping"]
    assert "      modified_at: SystemModstamp\n      score: Lead_Score__c\n\n# What" in after


def test_an_edit_naming_what_is_not_there_is_refused_plainly() -> None:
    with pytest.raises(EditError, match=r"criteria\.bonus\.9: not in the file"):
        apply_edits({"icp": text("icp.yaml")}, [Edit("weight", "1", group="bonus", index=9)])
    with pytest.raises(EditError, match="op"):
        Edit.from_json({"op": "delete everything"})


# -- suggestions ---------------------------------------------------------------------------


def hubspot_like() -> SourceData:
    """A HubSpot-style header: lowercase property names, labels, numbers as numbers."""
    accounts = {
        "hs_object_id": Column("hs_object_id", "number", "Record ID"),
        "name": Column("name", "text", "Company name"),
        "domain": Column("domain", "text", "Company Domain Name"),
        "industry": Column("industry", "picklist", "Industry", 1.0, {"COMPUTER_SOFTWARE": 9}),
        "numberofemployees": Column("numberofemployees", "number", "Number of Employees"),
        "annualrevenue": Column("annualrevenue", "number", "Annual Revenue"),
        "country": Column("country", "text", "Country/Region"),
        "founded_year": Column("founded_year", "text", "Year Founded"),
        "createdate": Column("createdate", "datetime", "Create Date"),
        "hs_lastmodifieddate": Column("hs_lastmodifieddate", "datetime", "Last Modified Date"),
    }
    return SourceData("a HubSpot portal", {"account": accounts, "opportunity": {}})


def test_fields_are_matched_by_name_synonyms_and_type() -> None:
    mapping = {"objects": {"account": {"fields": {}}, "opportunity": {"fields": {}}}}
    proposed = {
        s.edit.name: s.edit.value for s in suggest(mapping, hubspot_like()) if s.edit.op == "field"
    }
    assert proposed == {
        "account_id": "hs_object_id",
        "name": "name",
        "domain": "domain",
        "industry": "industry",
        "employees": "numberofemployees",
        "annual_revenue": "annualrevenue",
        "country": "country",
        "created_at": "createdate",
        "modified_at": "hs_lastmodifieddate",
    }


def test_a_working_mapping_gets_no_field_proposals() -> None:
    data = yaml.safe_load(text("csv.yaml"))
    columns = {
        kind: {
            (spec["field"] if isinstance(spec, dict) else spec): Column(
                spec["field"] if isinstance(spec, dict) else spec, "text"
            )
            for spec in data["objects"][kind]["fields"].values()
        }
        for kind in ("account", "opportunity")
    }
    assert suggest(data, SourceData("export", columns)) == []


def test_a_number_field_is_never_proposed_for_a_text_one() -> None:
    columns = {"Employees": Column("Employees", "text", "", 1.0, {"many": 3})}
    mapping = {"objects": {"account": {"fields": {}}}}
    source = SourceData("export", {"account": columns, "opportunity": {}})
    assert [s for s in suggest(mapping, source) if s.edit.name == "employees"] == []


def test_value_suggestions_come_from_the_data_with_counts() -> None:
    data = yaml.safe_load(text("csv.yaml"))
    values = {"Technology": 40, "Softwares": 7, "Fintech Services": 3, "Agriculture": 2}
    columns = {"Industry": Column("Industry", "text", "", 0.9, values)}
    source = SourceData("export", {"account": columns, "opportunity": {}})
    proposals = suggest(data, source)
    by_value = {s.edit.value: s for s in proposals if s.edit.op == "value"}
    assert by_value["Softwares"].edit.canonical == "Technology/SaaS"
    assert "7 records say 'Softwares'" in by_value["Softwares"].why
    assert by_value["Fintech Services"].edit.canonical == "Financial Services"
    assert "Technology" not in by_value  # already mapped
    assert "Agriculture" not in by_value  # nothing close: left for the admin, and said so
    assert uncaught(data, source) == {"account.industry": [("Agriculture", 2)]}


def test_profile_counts_values_and_fill_and_splits_multi_select() -> None:
    column = profile("Tech", pd.Series(["Salesforce;Slack", "Slack", "", "Gong;Slack"]))
    assert column.fill == 0.75
    assert column.values == {"Slack": 3, "Salesforce": 1, "Gong": 1}
    numbers = profile("N", pd.Series(["1", "2,000", "", "3.5"]))
    assert numbers.type == "number" and numbers.values == {}


def test_the_sample_query_stays_within_a_url_hubspot_accepts() -> None:
    # HubSpot answers 414 URI Too Long past ~8,000 characters of properties in a GET.
    from icp_engine.connectors.base import FieldInfo
    from icp_engine.sync.config import load_config
    from icp_engine.sync.sourcedata import NAME_BUDGET, _wide_mapping

    mapping = load_config("hubspot", None).mapping
    described = {
        kind: {
            f"custom_property_number_{n:04d}": FieldInfo(f"custom_property_number_{n:04d}", "text")
            for n in range(1000)
        }
        for kind in ("account", "opportunity")
    }
    described["account"]["industry"] = FieldInfo("industry", "picklist")
    _, names = _wide_mapping(mapping, described)
    for kind in ("account", "opportunity"):
        assert sum(len(name) + 12 for name in names[kind].values()) <= NAME_BUDGET
        assert len(names[kind]) > 50
    assert "industry" in names["account"].values()  # a mapped field is read first


def test_the_editor_says_when_sync_scores_with_learned_criteria_instead(tmp_path) -> None:
    from icp_engine.sync.cli.editor import _criteria_notice
    from icp_engine.sync.versions import VersionStore

    maps = tmp_path / "mappings"
    maps.mkdir()
    (maps / "icp.yaml").write_text(text("icp.yaml"))
    state = tmp_path / "state"
    assert _criteria_notice(maps, state) == ""  # nothing learned: icp.yaml scores
    store = VersionStore(state)
    store.activate(store.save(1, yaml.safe_load(text("icp.yaml")), {}, "learned"))
    notice = _criteria_notice(maps, state)
    assert "learned criteria v0001" in notice and "rollback --manual" in notice
    pinned = text("icp.yaml") + "\nscoring: {source: manual}\n"
    (maps / "icp.yaml").write_text(pinned)
    assert _criteria_notice(maps, state) == ""  # pinned: icp.yaml scores
