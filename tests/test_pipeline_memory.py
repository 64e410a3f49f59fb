"""datakit/pipeline/memory.py: the collector's settings inside `fewer_collections`, and put back after it."""

from __future__ import annotations

import gc

import pytest

from datakit.pipeline.memory import fewer_collections


def test_fewer_collections_sets_and_restores_the_collector():
    before = gc.get_threshold()
    cycle = []
    cycle.append(cycle)  # an object that exists on entry: frozen inside the block
    with fewer_collections(threshold=12_345):
        assert gc.get_threshold() == (12_345, 20, 20)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the settings come back on an error too")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_fewer_collections_spans_a_generator_and_is_undone_when_it_is_closed():
    """The tokens step holds it across its yields: the consumer runs with the settings, closing undoes them."""
    before = gc.get_threshold()

    def step():
        with fewer_collections(threshold=5_000):
            yield from range(3)

    it = step()
    assert next(it) == 0 and gc.get_threshold()[0] == 5_000
    it.close()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0



def test_objects_frozen_before_stay_frozen():
    """A process that froze its objects itself (before forking workers, say) keeps them frozen after the block."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        # a frozen object still dies by its reference count (another thread's, xdist's), so the count may drop by
        # a few; an unfreeze would empty it
        with fewer_collections():
            assert gc.get_freeze_count() >= frozen - 1000
        assert gc.get_freeze_count() >= frozen - 1000
    finally:
        gc.unfreeze()
