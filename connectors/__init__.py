"""CRM connectors: one module per CRM, all speaking the contract in `connectors.base`."""

from __future__ import annotations

from pathlib import Path

from icp_engine.connectors.base import Connector
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.mapping import CrmMapping
from pydantic import BaseModel

AVAILABLE = ("salesforce", "hubspot", "csv", "warehouse")


def settings_model(crm: str) -> type[BaseModel] | None:
    """The pydantic model for the `settings:` block of `<crm>.yaml`, if the CRM has one."""
    if crm == "csv":
        from icp_engine.connectors.csvfiles import CsvSettings

        return CsvSettings
    if crm == "salesforce":
        from icp_engine.connectors.salesforce.connector import SalesforceSettings

        return SalesforceSettings
    if crm == "hubspot":
        from icp_engine.connectors.hubspot.connector import HubSpotSettings

        return HubSpotSettings
    if crm == "warehouse":
        from icp_engine.connectors.warehouse_source import WarehouseSettings

        return WarehouseSettings
    return None


def create(
    crm: str, mapping: CrmMapping, source: Path | None = None, out: Path | None = None
) -> Connector:
    """The connector for `crm`, configured from the mapping (and, for APIs, the environment).

    API connectors read their credentials from the environment when `connect()` runs.

    Raises:
        SourceError: a CSV run without `--source`, or an unknown CRM.
    """
    if crm == "csv":
        from icp_engine.connectors.csvfiles import CsvConnector

        if source is None:
            msg = (
                "--crm csv needs --source DIR (the folder holding Account.csv and Opportunity.csv)"
            )
            raise SourceError(msg)
        return CsvConnector(mapping, source, out)
    if crm == "salesforce":
        from icp_engine.connectors.salesforce.connector import SalesforceConnector

        return SalesforceConnector(mapping)
    if crm == "hubspot":
        from icp_engine.connectors.hubspot.connector import HubSpotConnector

        return HubSpotConnector(mapping)
    if crm == "warehouse":
        from icp_engine.connectors.warehouse_source import WarehouseConnector

        return WarehouseConnector(mapping)
    msg = f"unknown CRM {crm!r}; available: {', '.join(AVAILABLE)}"
    raise SourceError(msg)
