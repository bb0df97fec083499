"""CRM connectors: one module per CRM, all speaking the contract in `connectors.base`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from connectors.base import Connector
from connectors.errors import SourceError
from connectors.mapping import CrmMapping

AVAILABLE = ("csv",)


def settings_model(crm: str) -> type[BaseModel] | None:
    """The pydantic model for the `settings:` block of `<crm>.yaml`, if the CRM has one."""
    if crm == "csv":
        from connectors.csvfiles import CsvSettings

        return CsvSettings
    return None


def create(
    crm: str, mapping: CrmMapping, source: Path | None = None, out: Path | None = None
) -> Connector:
    """The connector for `crm`, configured from the mapping (and, for APIs, the environment).

    Raises:
        SourceError: a CSV run without `--source`, or a CRM this version cannot reach yet.
    """
    if crm == "csv":
        from connectors.csvfiles import CsvConnector

        if source is None:
            msg = (
                "--crm csv needs --source DIR (the folder holding Account.csv and Opportunity.csv)"
            )
            raise SourceError(msg)
        return CsvConnector(mapping, source, out)
    msg = f"the {crm} connector is not part of this version yet; available: {', '.join(AVAILABLE)}"
    raise SourceError(msg)
