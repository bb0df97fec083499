"""Salesforce: Accounts and Opportunities through simple-salesforce (work in progress)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SalesforceSettings(BaseModel):
    """The `settings:` block of `salesforce.yaml`."""

    model_config = ConfigDict(extra="forbid")

    api_version: Annotated[str, Field(pattern=r"^\d{2}\.0$")] | None = None
    """REST API version (`SF_API_VERSION` overrides; default simple-salesforce's)."""
    bulk_write_threshold: Annotated[int, Field(ge=1)] = 10_000
    """Records to write above which a Bulk API 2.0 ingest job replaces sObject Collections."""
    bulk_pull_threshold: Annotated[int, Field(ge=1)] = 200_000
    """Rows a query returns above which it runs as a Bulk API 2.0 query job."""
    api_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Stop before this share of the org's daily API allowance is used."""
    timeout: Annotated[float, Field(gt=0)] = 120.0
    """Seconds to wait for one HTTP response."""
