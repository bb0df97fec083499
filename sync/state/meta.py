"""The names of the per-CRM values a run keeps in the state's key/value table.

One place names them, so the runner, `icp status` and the tests agree on every key.
"""

from __future__ import annotations

from dataclasses import dataclass


def pace_key(step: str) -> str:
    """Seconds per unit of work a timed step took last time (`sync.progress.timed_stage`)."""
    return f"pace.{step}"


@dataclass(frozen=True)
class MetaKeys:
    """The meta keys of one CRM (`MetaKeys("hubspot").mapping == "hubspot.mapping"`)."""

    crm: str

    @property
    def mapping(self) -> str:
        """Fingerprint of the mapping the last finished run used (a change forces a full pull)."""
        return f"{self.crm}.mapping"

    @property
    def criteria(self) -> str:
        """Fingerprint of the criteria that last scored (a change rescores every account)."""
        return f"{self.crm}.criteria"

    @property
    def criteria_label(self) -> str:
        """Which criteria last scored, for `icp status` (`learned v0003 (...)`)."""
        return f"{self.crm}.criteria_label"

    @property
    def connector_memo(self) -> str:
        """What the connector learned about the CRM (JSON), kept even by a dry run."""
        return f"{self.crm}.connector_memo"
