"""`mappings/operate.yaml`: alerts, ad audiences and nurture tracks (all optional).

The file is optional: without it no alert is sent, `icp audiences export` lists every
tier, and no account gets a nurture track. It is validated like the other mapping files
(every mistake with its file, line and key), by `icp mappings validate` and by every run.

A webhook's URL is a secret (whoever has a Slack incoming-webhook URL can post to the
channel): the file names the environment variable that holds it (`url_env`), never the
URL itself, and the URL is never logged or stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from icp_engine.scoring.schema import Condition, condition_problems
from icp_engine.sync.validation import validate_document
from icp_engine.sync.yamlfile import ConfigProblem, YamlDocument, read_yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FILE_NAME = "operate.yaml"
Format = Literal["linkedin", "generic"]
FORMATS: tuple[Format, ...] = ("linkedin", "generic")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Webhook(_Strict):
    """One receiver: a Slack incoming webhook, or anything that takes a JSON POST."""

    name: Annotated[str, Field(min_length=1, max_length=80)] = "webhook"
    url_env: str
    """The environment variable holding the URL (the URL itself is a secret)."""
    format: Literal["slack", "json"] = "slack"

    @model_validator(mode="before")
    @classmethod
    def _no_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("url" in data or "webhook_url" in data):
            msg = (
                "a webhook URL is a secret and must not be written in YAML: put it in an "
                "environment variable and name that variable with url_env (e.g. url_env: "
                "ICP_ALERT_WEBHOOK)"
            )
            raise ValueError(msg)
        return data

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            msg = (
                f"must name an environment variable (UPPER_CASE letters, digits, _). Got {value!r}"
            )
            raise ValueError(msg)
        return value


class Alerts(_Strict):
    """`alerts:` which receivers, and when a condition is worth a message."""

    webhooks: list[Webhook] = Field(default_factory=list)
    failing_runs: Annotated[int, Field(ge=1, le=1000)] = 3
    """Alert when records have failed this many runs in a row."""
    no_success_hours: Annotated[float, Field(gt=0, le=24 * 366)] | None = 26.0
    """Alert when no run succeeded for longer than this (checked as each run starts)."""
    tier_share_points: Annotated[float, Field(gt=0, le=100)] = 5.0
    """After `icp train`: a tier's share of accounts moving this many points is significant."""
    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    """Tries per alert (with exponential backoff) before it is recorded as not sent."""


class Audiences(_Strict):
    """`audiences:` which account lists `icp audiences export` writes, and where."""

    by: Literal["tier", "segment", "nurture_track"] = "tier"
    include: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Tiers or segments to export (empty: every one)."""
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS))
    out: str = "audiences"
    """Directory the files go to (relative to where `icp` runs), unless --out says."""


class NurtureRule(_Strict):
    """An account matching `when` gets `track`; the first rule that holds wins."""

    track: Annotated[str, Field(min_length=1, max_length=255)]
    when: list[Condition] = Field(default_factory=list)


class Operate(_Strict):
    """The whole `operate.yaml`."""

    alerts: Alerts = Field(default_factory=Alerts)
    audiences: Audiences = Field(default_factory=Audiences)
    nurture: list[NurtureRule] = Field(default_factory=list)


def locate(directory: Path | None) -> Path | None:
    """`DIR/operate.yaml` if the admin has one."""
    if directory is None or not (directory / FILE_NAME).is_file():
        return None
    return directory / FILE_NAME


def load_operate(
    directory: Path | None, fields: dict[str, str] | None, problems: list[ConfigProblem]
) -> Operate:
    """Read and validate `operate.yaml` (the defaults when there is none).

    Args:
        directory: the mappings directory (None: the bundled set, which has no such file).
        fields: the account fields the CRM mapping provides, to check nurture conditions.
        problems: where every mistake found is appended.
    """
    path = locate(directory)
    if path is None:
        return Operate()
    document: YamlDocument = read_yaml(path, str(path))
    if document.data is None and not document.problems:
        return Operate()  # an empty file: every default
    before = len(problems)
    operate = validate_document(document, Operate, problems)
    if fields is not None and isinstance(document.data, dict):
        rules = document.data.get("nurture")
        for where, message in condition_problems({"routing": rules}, fields):
            problems.append(document.problem(("nurture", *where[1:]), message))
    if operate is None or len(problems) > before:
        return Operate()
    return operate


def nurture_output_problems(
    mapping: Any, operate: Operate, document: YamlDocument
) -> list[ConfigProblem]:
    """The `nurture_track` output mapped while operate.yaml has no `nurture:` rules."""
    if "nurture_track" in mapping.outputs and not operate.nurture:
        return [
            document.problem(
                ("outputs", "nurture_track"),
                f"needs nurture: rules in {FILE_NAME} (which track each account gets). "
                "Got no rules; add them or remove this output",
            )
        ]
    return []
