"""Optional LLM naming of segments: a replayed cassette, and every way it can fail."""

from __future__ import annotations

import copy
import logging
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from icp_engine.scoring.naming import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_MODEL,
    describe_segments,
    request_body,
)

from tests.fakes.llm import FakeLlm
from tests.recording import CASSETTES, RECORDING, cassette

KEY = "sk-fake-secret-7f3a9c"
PLACEHOLDER = "http://llm.test"
MODEL = "fake-icp-1"


def segments() -> list[dict[str, Any]]:
    return [
        {
            "name": "SaaS 100-300",
            "rule": "industry = Technology/SaaS and employees 100-300",
            "support": 120,
            "win_rate": 0.48,
            "win_rate_ci": [0.39, 0.57],
            "acv": 42000.0,
            "cycle_days": 38.0,
            "lift": 1.6,
            "acv_vs_avg": 1.3,
            "traits": ["SaaS", "100-300 staff"],
        },
        {
            "name": "Fintech NA",
            "rule": "industry = Financial Services and region = NA",
            "support": 45,
            "win_rate": 0.41,
            "win_rate_ci": [0.28, 0.56],
            "acv": 61000.0,
            "cycle_days": 55.0,
            "lift": 1.3,
            "acv_vs_avg": 1.9,
            "traits": ["Fintech", "NA"],
        },
    ]


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_BASE_URL, ENV_API_KEY, ENV_MODEL):
        monkeypatch.delenv(name, raising=False)


class NoNetwork(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no request may be sent")


def test_without_a_base_url_nothing_is_sent():
    given = segments()
    assert describe_segments(given, session=NoNetwork()) is given
    assert describe_segments([], base_url="http://x.test/v1", model="m", session=NoNetwork()) == []


def test_cassette_names_and_describes_segments(caplog: pytest.LogCaptureFixture):
    given = segments()
    before = copy.deepcopy(given)
    caplog.set_level(logging.DEBUG)
    with ExitStack() as stack:
        real_host = stack.enter_context(FakeLlm(api_key=KEY)).url if RECORDING else ""
        base = f"{real_host or PLACEHOLDER}/v1"  # replayed: nothing listens on llm.test
        stack.enter_context(cassette("llm", "describe_segments", real_host, PLACEHOLDER))
        described = describe_segments(given, base_url=base, api_key=KEY, model=MODEL)
    assert given == before  # the input is not modified
    assert [d["name"] for d in described] == ["SaaS 100-300", "Fintech NA"]
    assert described[0]["llm_name"] == "SaaS fast movers"
    assert described[1]["llm_name"] == "Fintech fast movers"
    assert "wins 41% of deals" in described[1]["llm_description"]
    assert described[0]["hypotheses"] == [
        "SaaS buyers feel the pain we solve sooner",
        "100-300 staff buyers feel the pain we solve sooner",
    ]
    assert {k: v for k, v in described[0].items() if not k.startswith("llm_")} | {
        "hypotheses": None
    } == before[0] | {"hypotheses": None}
    recorded = (CASSETTES / "llm" / "describe_segments.yaml").read_text()
    assert KEY not in recorded and "127.0.0.1" not in recorded
    assert PLACEHOLDER in recorded
    assert KEY not in caplog.text


def test_environment_configures_the_endpoint(monkeypatch: pytest.MonkeyPatch):
    with FakeLlm(api_key=KEY) as fake:
        monkeypatch.setenv(ENV_BASE_URL, f"{fake.url}/v1")
        monkeypatch.setenv(ENV_API_KEY, KEY)
        monkeypatch.setenv(ENV_MODEL, MODEL)
        described = describe_segments(segments())
    assert fake.authorizations == [f"Bearer {KEY}"]
    assert fake.bodies[0] == request_body(MODEL, segments())
    assert fake.bodies[0]["model"] == MODEL
    assert [d["llm_name"] for d in described] == ["SaaS fast movers", "Fintech fast movers"]


def test_a_fenced_json_answer_is_accepted():
    with FakeLlm(api_key=KEY, mode="fenced") as fake:
        described = describe_segments(
            segments(), base_url=f"{fake.url}/v1", api_key=KEY, model=MODEL
        )
    assert described[0]["llm_name"] == "SaaS fast movers"


def test_only_rules_and_figures_are_sent():
    body = request_body(MODEL, [{**segments()[0], "accounts": ["Acme Corp"], "owner": "Jo"}])
    assert "Acme" not in str(body) and "Jo" not in str(body)
    assert "industry = Technology/SaaS" in body["messages"][1]["content"]


@pytest.mark.parametrize(
    ("mode", "key", "reason"),
    [
        ("error", KEY, "HTTP 500"),
        ("ok", "sk-wrong-key-0000", "HTTP 401"),
        ("garbage", KEY, "not JSON"),
        ("wrong_count", KEY, "describes 1 segments, not 2"),
        ("slow", KEY, "Timeout"),
    ],
)
def test_failures_leave_the_segments_unchanged(mode, key, reason, caplog):
    given = segments()
    before = copy.deepcopy(given)
    with (
        FakeLlm(api_key=KEY, mode=mode, delay=1.0) as fake,
        caplog.at_level(logging.WARNING, logger="icp_engine.scoring.naming"),
    ):
        result = describe_segments(
            given, base_url=f"{fake.url}/v1", api_key=key, model=MODEL, timeout=0.2
        )
    assert result is given and given == before
    assert reason in caplog.text
    assert "segments keep their rule-based names" in caplog.text
    assert key not in caplog.text and key[-4:] not in caplog.text


def test_unreachable_endpoint_leaves_the_segments_unchanged(caplog: pytest.LogCaptureFixture):
    with FakeLlm() as fake:
        url = fake.url  # the port is closed once the server stops
    given = segments()
    with caplog.at_level(logging.WARNING, logger="icp_engine.scoring.naming"):
        result = describe_segments(
            given,
            base_url=f"http://user:{KEY}@{url.removeprefix('http://')}/v1",
            api_key=KEY,
            model=MODEL,
            timeout=1,
        )
    assert result is given
    assert "ConnectionError" in caplog.text
    assert KEY not in caplog.text


def test_a_base_url_without_a_model_warns(caplog: pytest.LogCaptureFixture):
    given = segments()
    with caplog.at_level(logging.WARNING, logger="icp_engine.scoring.naming"):
        assert describe_segments(given, base_url="http://x.test/v1", session=NoNetwork()) is given
    assert ENV_MODEL in caplog.text
