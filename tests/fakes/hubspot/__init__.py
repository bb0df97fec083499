"""A fake HubSpot portal behind a real HTTP server, speaking the CRM v3/v4 wire formats.

`portal` (the `FakeHubSpot` tests start), `http` (server, auth, limits, faults), `api`
(object endpoints), `meta` (associations, properties, pipelines), `search`, `store`,
`schema` (property definitions), `values`, `wire` (replies and errors).
"""

from tests.fakes.hubspot.portal import FakeHubSpot, RecordedRequest, StrictClock

__all__ = ["FakeHubSpot", "RecordedRequest", "StrictClock"]
