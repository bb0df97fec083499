"""Salesforce: Accounts and Opportunities read and Account fields written through simple-salesforce.

Parts: `session` (login from the environment, the call counter, Salesforce's errors),
`connector` (the `Connector` the sync loop uses: pull by SOQL or Bulk API 2.0),
`write` (sObject Collections and Bulk updates, creating output fields), `access`
(field-level access for the integration user), `ids` (15- and 18-character record Ids).
"""

from icp_engine.connectors.salesforce.connector import SalesforceConnector, SalesforceSettings
from icp_engine.connectors.salesforce.ids import to_18

__all__ = ["SalesforceConnector", "SalesforceSettings", "to_18"]
