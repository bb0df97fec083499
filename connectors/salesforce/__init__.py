"""Salesforce: Accounts and Opportunities read and Account fields written through simple-salesforce.

Parts: `session` (login from the environment, the call counter, Salesforce's errors),
`connector` (the `Connector` the sync loop uses: pull by SOQL or Bulk API 2.0),
`write` (sObject Collections and Bulk updates, creating output fields), `access`
(field-level access for the integration user), `ids` (15- and 18-character record Ids).
The connector is imported when first asked for (PEP 562): the CSV reader uses `ids` alone,
and importing `connector` brings simple-salesforce and requests (about 0.2 s per run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icp_engine.connectors.salesforce.ids import to_18

if TYPE_CHECKING:
    from icp_engine.connectors.salesforce.connector import SalesforceConnector, SalesforceSettings

__all__ = ["SalesforceConnector", "SalesforceSettings", "to_18"]


def __getattr__(name: str) -> Any:
    if name in ("SalesforceConnector", "SalesforceSettings"):
        from icp_engine.connectors.salesforce import connector

        return getattr(connector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
