"""RecordWriter publishes a shard only when its task ends well: a task that raises leaves `.tmp` files that no
reader globs (the rerun overwrites them), never a partial `{rank}.parquet` under its final name."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from datakit.io.records import PARTIAL, RecordWriter

ROWS = [{"id": f"r{i}", "stage": "t", "role": None, "reason": "why", "detail": "", "record": "{}"} for i in range(100)]


def _documents(fail_at: int | None):
    for i, row in enumerate(ROWS):
        if i == fail_at:
            raise RuntimeError("the task failed here")
        yield Document(text="", id=row["id"], metadata=row)


def test_a_failing_task_publishes_nothing_and_its_rerun_publishes_everything(tmp_path):
    writer = RecordWriter(str(tmp_path), "quarantine", batch_size=16)
    with pytest.raises(RuntimeError, match="failed here"):
        for _ in writer.run(_documents(fail_at=70), rank=3):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00003.parquet" + PARTIAL]

    rerun = RecordWriter(str(tmp_path), "quarantine", batch_size=16)
    for _ in rerun.run(_documents(fail_at=None), rank=3):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00003.parquet"]
    assert pq.read_table(tmp_path / "00003.parquet").column("id").to_pylist() == [r["id"] for r in ROWS]


def test_a_generator_closed_early_publishes_what_was_written(tmp_path):
    writer = RecordWriter(str(tmp_path), "quarantine", batch_size=16)
    run = writer.run(_documents(fail_at=None), rank=0)
    for _ in zip(range(40), run):
        pass
    run.close()  # GeneratorExit inside the writer's `with`: not a failure
    assert pq.read_table(tmp_path / "00000.parquet").num_rows == 40
