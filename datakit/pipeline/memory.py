"""Freed memory handed back to the OS between units of a task's work, so a long task's peak RSS stays flat.

glibc keeps the space of freed allocations in its heaps once its mmap threshold has adapted to large blocks, and
Arrow's pool keeps what its buffers freed: without a release, a task's peak RSS grows with the work it has done
though nothing it holds does (BENCHMARKS.md, "Flat memory").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc


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


@contextlib.contextmanager
def fewer_collections(threshold: int = 20_000):
    """Python's cyclic garbage collector run less often inside the block: what exists on entry is frozen (never
    traversed again) and a young collection waits for `threshold` new containers instead of 700. A step that
    makes a few dicts and objects per record and keeps a batch of them alive spent ~2.7 % of a tokens task in
    collections that found nothing (0.3 % with this; BENCHMARKS.md, tokens, seventh pass). The settings and the
    frozen objects are restored on exit."""
    before = gc.get_threshold()
    freezing = gc.get_freeze_count() == 0  # objects frozen by someone else stay theirs: frozen, and after too
    if freezing:
        gc.freeze()
    gc.set_threshold(threshold, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freezing:
            gc.unfreeze()
