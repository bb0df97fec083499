"""HubSpot: companies and deals read and company properties written through hubspot-api-client.

Parts: `client` (the SDK's generated APIs behind one gate), `limits` (staying under the
portal's rate limits), `pull` (list pages for everything, search for what changed),
`properties` (property definitions, creating the `icp_*` outputs), `write` (batch updates,
bad records isolated), `connector` (the `Connector` the sync loop uses).
"""

from icp_engine.connectors.hubspot.connector import HubSpotConnector, HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
