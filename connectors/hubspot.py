"""HubSpot: companies and deals through hubspot-api-client (work in progress)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HubSpotSettings(BaseModel):
    """The `settings:` block of `hubspot.yaml`."""

    model_config = ConfigDict(extra="forbid")
