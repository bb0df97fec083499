"""Which allocator Arrow uses for the columns a run reads, converts and stores.

pyarrow's default pool on Linux is mimalloc, which hands large buffers (a CSV block, a
string column growing while a stored part is decoded) back to the system and takes
fresh, kernel-zeroed memory for the next one: at 200,000 accounts a quiet sync spent
3 s of system time on it. jemalloc keeps and reuses them (1.3 s). A person who sets
`ARROW_DEFAULT_MEMORY_POOL` keeps their choice.
"""

from __future__ import annotations

import os


def prefer_jemalloc() -> None:
    """Use Arrow's jemalloc pool where this pyarrow has it and no pool was chosen."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    if "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())
