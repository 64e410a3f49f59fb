"""Row sharding: N tasks on one Parquet file each get a contiguous, disjoint share; together, every row once."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.io.row_shards import RowShardedRecordReader, row_range


@pytest.mark.parametrize("total,world", [(0, 3), (1, 4), (10, 3), (1000, 7)])
def test_ranges_partition_the_rows(total, world):
    ranges = [row_range(total, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_tasks_share_one_file_by_rows(tmp_path):
    rows = [{"id": f"r{i:04d}", "text": f"t{i}"} for i in range(1000)]
    pq.write_table(pa.Table.from_pylist(rows[:700]), tmp_path / "00000.parquet", row_group_size=64)
    pq.write_table(pa.Table.from_pylist(rows[700:]), tmp_path / "00001.parquet", row_group_size=50)
    seen = []
    for rank in range(3):
        ids = [d.id for d in RowShardedRecordReader(str(tmp_path)).run(rank=rank, world_size=3)]
        assert 300 <= len(ids) <= 334
        seen += ids
    assert seen == [r["id"] for r in rows]  # every row once, in order
    limited = list(RowShardedRecordReader(str(tmp_path), limit=5).run(rank=1, world_size=3))
    assert [d.id for d in limited] == [f"r{i:04d}" for i in range(333, 338)]


def test_no_files_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="No files"):
        list(RowShardedRecordReader(str(tmp_path)).run())


def test_several_folders_read_as_one_sequence(tmp_path):
    for k, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        pq.write_table(pa.Table.from_pylist([{"id": f"{folder}{i}", "text": ""} for i in range(5 + k)]),
                       tmp_path / folder / "00000.parquet")
    ids = [d.id for r in range(2) for d in RowShardedRecordReader(
        str(tmp_path / "a"), extra_folders=[str(tmp_path / "b")]).run(rank=r, world_size=2)]
    assert ids == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(6)]
