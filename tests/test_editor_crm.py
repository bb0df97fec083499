"""The editor and `suggest` on an API CRM: fields from the org's describe, values and the
preview from records read through the connector (the fake Salesforce org over HTTPS,
through simple-salesforce)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
from icp_engine.sync.config import load_config
from icp_engine.sync.editor.session import EditorSession
from icp_engine.sync.mapedit import Edit
from icp_engine.sync.sourcedata import from_crm

from tests.cli_helpers import icp
from tests.fakes.salesforce import FakeSalesforce
from tests.sfdata import outputs

ACCOUNTS = 120


pytestmark = [pytest.mark.e2e, pytest.mark.org(accounts=ACCOUNTS)]


@pytest.fixture
def maps(tmp_path: Path) -> Path:
    directory = tmp_path / "mappings"
    directory.mkdir()
    for name in ("salesforce.yaml", "icp.yaml"):
        (directory / name).write_text(bundled.default(name).read_text(encoding="utf-8"))
    return directory


def test_the_preview_scores_the_org_as_sync_does(
    org: FakeSalesforce, maps: Path, tmp_path: Path
) -> None:
    code, _, err = icp("sync", "--crm", "salesforce", "--mappings", maps, "--state", tmp_path / "s")
    assert code == 0, err
    written = Counter(v["ICP_Tier__c"] for v in outputs(org).values())

    data = from_crm("salesforce", load_config("salesforce", maps).mapping, limit=10_000)
    industry = data.columns["account"]["Industry"]
    assert industry.type == "picklist" and industry.label == "Industry"
    assert industry.fill is not None and sum(industry.values.values()) == round(
        industry.fill * ACCOUNTS
    )
    session = EditorSession("salesforce", maps, data)
    checked = session.check([])
    assert checked.errors == []
    preview = session.preview(checked.config)
    assert preview is not None
    assert {t["tier"]: t["before"] for t in preview["tiers"]} == {
        tier: written.get(tier, 0) for tier in ("A", "B", "C", "D")
    }
    assert preview["changed_tier"] == 0


def test_a_field_the_org_lacks_is_an_error_when_criteria_use_it(
    org: FakeSalesforce, maps: Path
) -> None:
    org.remove_field("Account", "NumberOfEmployees")
    org.remove_field("Account", "Rating")
    data = from_crm("salesforce", load_config("salesforce", maps).mapping, limit=10_000)
    session = EditorSession("salesforce", maps, data)
    checked = session.check([])
    (error,) = [e for e in checked.errors if "NumberOfEmployees" in e]
    assert error.startswith(f"{maps / 'salesforce.yaml'}:")
    assert "objects.account.fields.employees" in error
    assert "Account has no field (or none the integration user can read) named" in error
    assert any("'Rating'" in w and "reads as empty" in w for w in checked.warnings)
    # the admin picks the field the org has instead: the error goes
    org_fields = data.columns["account"]
    assert "NumberOfEmployees" not in org_fields
    fixed = session.check([Edit("field", "Employees_Last_Year__c", name="employees")])
    assert not [e for e in fixed.errors if "employees" in e]


def test_suggest_reads_the_org(org: FakeSalesforce, maps: Path) -> None:
    text = (maps / "salesforce.yaml").read_text()
    (maps / "salesforce.yaml").write_text(text.replace("amount: Amount", "amount: Amout"))
    code, out, err = icp("mappings", "suggest", "--crm", "salesforce", "--mappings", maps)
    assert code == 0, err
    assert "-      amount: Amout" in out and "+      amount: Amount" in out
    assert "'Amout' is not in the Salesforce org" in out
