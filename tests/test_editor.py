"""`icp mappings edit` and `suggest`, through the CLI: the server's guards over real HTTP,
the suggestions as a YAML diff, and the page driven in headless Chromium (Debian's
`chromium` + `chromium-driver`; .ci/run installs them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
import requests
import yaml
from click.testing import CliRunner
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ed") / "export"
    write_sample_crm(directory, accounts=120)
    return directory


@pytest.fixture
def workdir(base_export: Path, tmp_path: Path) -> Path:
    """A CSV admin's folder: ./export (with one value no map catches) and ./mappings."""
    export = tmp_path / "export"
    shutil.copytree(base_export, export)
    text = (export / "Account.csv").read_text(encoding="utf-8")
    text = text.replace(",Software,", ",Softwares,", 3)  # a spelling no value map catches
    (export / "Account.csv").write_text(text, encoding="utf-8")
    maps = tmp_path / "mappings"
    maps.mkdir()
    for name in ("csv.yaml", "icp.yaml"):
        (maps / name).write_text(bundled.default(name).read_text(encoding="utf-8"))
    return tmp_path


def icp(cwd: Path, *args: str) -> tuple[int, str, str]:
    here = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(here)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def editor(workdir: Path) -> Iterator[str]:
    """`icp mappings edit --crm csv --source export --no-browser` running; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from icp_engine.sync.cli import main; main()", "mappings", "edit",
         "--source", "export", "--no-browser"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = ""
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
            if found:
                url = found.group(0)
                break
        assert url, process.stderr.read() if process.stderr else "no URL printed"
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_no_token_no_page_and_no_cross_site_post(editor: str) -> None:
    base = editor.split("/?", maxsplit=1)[0]
    token = editor.split("token=")[1]
    assert requests.get(base + "/", timeout=10).status_code == 403
    assert requests.get(base + "/?token=wrong", timeout=10).status_code == 403
    page = requests.get(editor, timeout=10)
    assert page.status_code == 200 and "Mapping editor" in page.text
    assert "Access-Control-Allow-Origin" not in page.headers
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in page.text
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    ok = {"Content-Type": "application/json", "X-ICP-Token": token}
    assert requests.post(base + "/api/check", json={}, headers=ok, timeout=30).status_code == 200
    refused = [
        ({"Content-Type": "application/json"}, 403),  # no token
        ({**ok, "Origin": "https://evil.example"}, 403),  # another site's script
        ({**ok, "Content-Type": "text/plain"}, 415),  # a cross-site form
        ({**ok, "Host": "evil.example:80"}, 403),  # DNS rebinding
    ]
    for headers, status in refused:
        response = requests.post(base + "/api/save", data="{}", headers=headers, timeout=10)
        assert response.status_code == status, headers


def test_check_reports_the_validators_messages_and_a_preview(editor: str, workdir: Path) -> None:
    base, token = editor.split("/?", maxsplit=1)[0], editor.split("token=")[1]
    headers = {"X-ICP-Token": token}
    edits = [{"op": "weight", "group": "must_have", "index": 0, "value": "-1"}]
    result = requests.post(base + "/api/check", json={"edits": edits}, headers=headers, timeout=30)
    body = result.json()
    line = (workdir / "mappings/icp.yaml").read_text().splitlines().index("      weight: 0.25") + 1
    assert any(
        e.startswith(f"mappings/icp.yaml:{line}: criteria.must_have.0.weight:")
        for e in body["errors"]
    ), body["errors"]
    saved = requests.post(base + "/api/save", json={"edits": edits}, headers=headers, timeout=30)
    assert saved.json()["saved"] is False
    assert "weight: 0.25" in (workdir / "mappings/icp.yaml").read_text()  # nothing written
    edits = [{"op": "weight", "group": "must_have", "index": 0, "value": "0.6"}]
    body = requests.post(
        base + "/api/check", json={"edits": edits}, headers=headers, timeout=30
    ).json()
    assert body["errors"] == []
    preview = body["preview"]
    assert preview["accounts"] == 120
    assert (
        sum(t["before"] for t in preview["tiers"])
        == sum(t["after"] for t in preview["tiers"])
        == 120
    )
    assert preview["changed_tier"] > 0 and preview["samples"][0]["reasons"]


def test_a_file_edited_elsewhere_meanwhile_is_not_overwritten(editor: str, workdir: Path) -> None:
    base, token = editor.split("/?", maxsplit=1)[0], editor.split("token=")[1]
    headers = {"X-ICP-Token": token}
    icp_yaml = workdir / "mappings/icp.yaml"
    icp_yaml.write_text(icp_yaml.read_text().replace("  A: 70", "  A: 75"))  # vim, git pull...
    edits = [{"op": "weight", "group": "bonus", "index": 0, "value": "0.1"}]
    body = requests.post(base + "/api/save", json={"edits": edits}, headers=headers, timeout=30)
    assert body.json()["saved"] is False
    assert "changed on disk since the editor read it" in body.json()["errors"][0]
    assert "A: 75" in icp_yaml.read_text() and "weight: 0.07" in icp_yaml.read_text()
    requests.get(editor, timeout=10)  # reloading the page starts from the file as it is now
    body = requests.post(base + "/api/save", json={"edits": edits}, headers=headers, timeout=30)
    assert body.json()["saved"] is True
    assert "A: 75" in icp_yaml.read_text() and "weight: 0.1\n" in icp_yaml.read_text()


def test_suggest_proposes_the_real_column_for_a_typo_as_a_diff(workdir: Path) -> None:
    csv_yaml = workdir / "mappings/csv.yaml"
    csv_yaml.write_text(
        csv_yaml.read_text().replace("employees: NumberOfEmployees", "employees: NumberOfEmployes")
    )
    code, out, err = icp(workdir, "mappings", "suggest", "--source", "export")
    assert code == 0, err
    assert "-      employees: NumberOfEmployes" in out
    assert "+      employees: NumberOfEmployees" in out
    assert "'Softwares'" in out and "Technology/SaaS" in out  # a value-map proposal
    assert "NumberOfEmployes" in csv_yaml.read_text()  # not written without --write
    before = csv_yaml.read_text()
    code, out, _ = icp(workdir, "mappings", "suggest", "--source", "export", "--write")
    assert code == 0
    after = csv_yaml.read_text()
    changed = [
        line for line in after.splitlines() if line not in before.splitlines()
    ]  # only the proposals: every comment and line around them is kept
    assert sorted(changed) == sorted(
        [
            "      employees: NumberOfEmployees",
            next(line for line in after.splitlines() if "Technology/SaaS:" in line),
        ]
    )
    assert icp(workdir, "mappings", "validate", "--source", "export")[0] == 0


# -- the page in a real browser ------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium "
            "chromium-driver; .ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1600",
    ):  # fmt: skip
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="icp-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_admin_edits_the_mapping_in_the_page(browser: object, editor: str, workdir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver: object = browser
    wait = WebDriverWait(driver, 30)  # type: ignore[arg-type]
    find = driver.find_element  # type: ignore[attr-defined]
    driver.get(editor)  # type: ignore[attr-defined]
    wait.until(lambda d: "Valid" in find(By.ID, "status").text)

    # pick a field: the opportunity's lead source now comes from another column
    Select(find(By.CSS_SELECTOR, '[data-field="opportunity.lead_source"]')).select_by_value("Type")
    wait.until(lambda d: "unsaved change" in find(By.ID, "pending").text)

    # map a value: 'Softwares' (highlighted, unmapped) means Technology/SaaS
    row = '[data-value="account.industry::Softwares"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert "unmapped" in find(By.CSS_SELECTOR, row).get_attribute("class")
    means = find(By.CSS_SELECTOR, f"{row} input.map-target")
    assert means.get_attribute("value") == "Technology/SaaS"  # suggested, one click to map
    find(By.CSS_SELECTOR, f"{row} .map-btn").click()
    wait.until(lambda d: "→ Technology/SaaS" in find(By.CSS_SELECTOR, row).text)
    # one with no suggestion: type what it means
    row = '[data-value="account.industry::Hospitality"]'
    means = find(By.CSS_SELECTOR, f"{row} input.map-target")
    assert means.get_attribute("value") == ""
    means.send_keys("Media")
    find(By.CSS_SELECTOR, f"{row} .map-btn").click()
    wait.until(lambda d: "→ Media" in find(By.CSS_SELECTOR, row).text)

    # a bad weight: the validator's own message appears, and Save is refused
    weight = find(By.CSS_SELECTOR, '[data-weight="must_have.0"]')
    weight.clear()
    weight.send_keys("heavy")
    wait.until(lambda d: "criteria.must_have.0.weight" in find(By.ID, "problems").text)
    assert "Got 'heavy'" in find(By.ID, "problems").text
    assert not find(By.ID, "save").is_enabled()

    # fix it; the preview shows tiers before and after
    weight = find(By.CSS_SELECTOR, '[data-weight="must_have.0"]')
    weight.clear()
    weight.send_keys("0.3")
    wait.until(lambda d: find(By.ID, "save").is_enabled())
    assert "accounts change tier" in find(By.ID, "preview").text
    find(By.ID, "save").click()
    wait.until(lambda d: "Saved" in find(By.ID, "status").text)

    csv_text = (workdir / "mappings/csv.yaml").read_text()
    icp_text = (workdir / "mappings/icp.yaml").read_text()
    saved = yaml.safe_load(csv_text)
    fields = saved["objects"]
    assert fields["opportunity"]["fields"]["lead_source"] == "Type"
    industry = fields["account"]["fields"]["industry"]["values"]
    assert "Softwares" in industry["Technology/SaaS"] and "Hospitality" in industry["Media"]
    assert yaml.safe_load(icp_text)["criteria"]["must_have"][0]["weight"] == 0.3
    # comments and layout kept: only the edited lines differ from the bundled files
    changed = {}
    for name, text in (("csv.yaml", csv_text), ("icp.yaml", icp_text)):
        original = bundled.default(name).read_text(encoding="utf-8").splitlines()
        assert len(text.splitlines()) == len(original)
        pairs = zip(original, text.splitlines(), strict=True)
        changed[name] = [new.split(":")[0].strip() for old, new in pairs if old != new]
    assert changed == {
        "csv.yaml": ["Technology/SaaS", "Media", "lead_source"],
        "icp.yaml": ["weight"],
    }
    code, _, err = icp(workdir, "mappings", "validate", "--source", "export")
    assert code == 0, err
    assert json.loads(icp(workdir, "mappings", "validate", "--json")[1])["errors"] == []
