"""A run's Arrow columns use jemalloc where pyarrow has it, unless the person chose a pool."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

PROBE = (
    "from icp_engine.connectors.arrow_memory import prefer_jemalloc; import pyarrow as pa; "
    "prefer_jemalloc(); print(pa.default_memory_pool().backend_name)"
)


def backend(env: dict[str, str]) -> str:
    found = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return found.stdout.strip()


@pytest.mark.skipif(
    "jemalloc" not in pa.supported_memory_backends(), reason="this pyarrow has no jemalloc"
)
def test_jemalloc_unless_a_pool_is_chosen() -> None:
    base = {"PATH": "/usr/bin:/bin"}
    assert backend(base) == "jemalloc"
    assert backend({**base, "ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
