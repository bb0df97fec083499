"""Sample companies and deals loaded into the fake HubSpot portal (tests and benchmarks)."""

from __future__ import annotations

import random

from tests.fakes.hubspot import FakeHubSpot

INDUSTRIES = ["COMPUTER_SOFTWARE", "BANKING", "RETAIL", "HOSPITAL_HEALTH_CARE", "MACHINERY"]


def seed_portal(
    portal: FakeHubSpot, companies: int, deals_per_company: float = 2.0, seed: int = 7
) -> list[str]:
    """Add `companies` companies and about `deals_per_company` deals each; return the ids."""
    rng = random.Random(seed)
    ids = portal.add_companies(
        [
            {
                "name": f"Company {i}",
                "domain": f"company{i}.example",
                "industry": rng.choice(INDUSTRIES),
                "numberofemployees": str(rng.randint(5, 2000)),
                "annualrevenue": str(rng.randint(0, 50) * 100_000),
                "country": rng.choice(["US", "Germany", "UK", "France"]),
            }
            for i in range(companies)
        ]
    )
    stages = ["closedwon", "closedlost", "qualifiedtobuy"]
    portal.add_deals(
        [
            {
                "dealname": f"Deal {i}",
                "amount": str(rng.randint(1, 100) * 1000),
                "dealstage": rng.choice(stages),
                "closedate": "2025-06-30",
                "_company": ids[i % companies],
            }
            for i in range(round(companies * deals_per_company))
        ]
    )
    return ids
