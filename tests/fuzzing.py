"""What the fuzzers (tests/test_fuzz_*.py) share: the CI settings, any-JSON values, and ways to break a real
value or a real file (so the cases stay close to what a reader meets: a real event or row, a real file, damaged)."""

from __future__ import annotations

import copy
import tracemalloc

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# >= 200 cases per fuzzer, the same ones every run (CI is deterministic), no per-case time limit
FUZZ = settings(max_examples=200, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def json_values(keys=st.text(max_size=4), words=st.nothing(), max_leaves: int = 6):
    """Any JSON value, nested (64-bit integers: what orjson writes), keys drawn from `keys`."""
    leaves = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
              | st.text(max_size=6) | words)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=max_leaves)


def paths_of(value, prefix=()):
    """Every key path inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*prefix, i))


@st.composite
def mutated(draw, values, replacements):
    """A copy of one of `values` with one to four fields (at any depth) replaced by one of `replacements` or
    removed."""
    value = copy.deepcopy(draw(st.sampled_from(values)))
    paths = [p for p in paths_of(value) if p]
    for _ in range(draw(st.integers(1, 4)) if paths else 0):
        path = draw(st.sampled_from(paths))
        parent = value
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.integers(0, 4)) == 0:
                parent.pop(path[-1])
            else:
                parent[path[-1]] = draw(replacements)
        except (KeyError, IndexError, TypeError):  # an earlier change removed or retyped the parent
            continue
    return value


def damaged(draw, data: bytes, kind: str) -> bytes:
    """`data` cut at a random byte, with one byte changed, or with random bytes spliced in."""
    if kind == "cut":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    if kind == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if kind == "splice":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.binary(min_size=1, max_size=10)) + data[i:]
    return data


def traced_peak(read) -> tuple[object, int]:
    """(what `read()` returns, the peak bytes Python allocated while it ran): a memory bound a test can assert."""
    tracemalloc.start()
    try:
        got = read()
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
