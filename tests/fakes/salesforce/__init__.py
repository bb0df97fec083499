"""A fake Salesforce org behind a real HTTPS server: REST, SOQL and Bulk 2.0 wire formats.

`org` (the `FakeSalesforce` tests start), `server` (HTTP), `login`, `rest`, `bulk`,
`describe`, `permissions`, `writes`, the SOQL family (`soql_lexer`, `soql_query`, `soql`),
`store` and `values` (records and field values), `wire` (replies and errors), `faults`.
"""

from tests.fakes.salesforce.org import FakeSalesforce

__all__ = ["FakeSalesforce"]
