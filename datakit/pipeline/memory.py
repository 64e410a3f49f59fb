"""Freed memory handed back to the OS between units of a task's work, so a long task's peak RSS stays flat.

glibc keeps the space of freed allocations in its heaps once its mmap threshold has adapted to large blocks, and
Arrow's pool keeps what its buffers freed: without a release, a task's peak RSS grows with the work it has done
though nothing it holds does (BENCHMARKS.md, "Flat memory").
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory(arrow_pool: bool = False) -> None:
    """glibc's heaps trimmed (`malloc_trim(0)`), and with `arrow_pool` Arrow's default pool's unused memory
    released too. ~1 ms."""
    if arrow_pool:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
