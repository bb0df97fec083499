"""Shared fixtures: a throwaway PostgreSQL server for the whole session (started once, on
first use; skipped with the reason when the PostgreSQL binaries are not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import SKIP_REASON, binaries, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if binaries() is None:
        pytest.skip(SKIP_REASON)
    with postgres_server() as url:
        yield url
