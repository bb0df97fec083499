"""Which allocator Arrow uses for the columns a run reads, converts and stores.

pyarrow's default pool on Linux is mimalloc, which hands large buffers (a CSV block, a
string column growing while a stored part is decoded) back to the system and takes
fresh, kernel-zeroed memory for the next one: at 200,000 accounts a quiet sync spent
3 s of system time on it. jemalloc keeps and reuses them (1.3 s). A person who sets
`ARROW_DEFAULT_MEMORY_POOL` keeps their choice.

Python objects live in glibc's heap, Arrow's buffers in jemalloc's: memory one frees is
not reused by the other until it goes back to the system (`release_memory`), so a step
that frees a million rows' objects and then builds their Arrow columns would otherwise
hold both.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os


def prefer_jemalloc() -> None:
    """Use Arrow's jemalloc pool where this pyarrow has it and no pool was chosen."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    if "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def release_memory() -> None:
    """Hand freed memory back to the system: pyarrow's pool keeps what it freed, and so
    does glibc's malloc (temporaries fragment its heap; after reading an export, about a
    third of the resident size). Call it after a step frees large structures."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL(name).malloc_trim(0)
