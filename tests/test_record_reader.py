"""RecordReader with --limit (and skip): the same records as a full read cut to skip…skip+limit, across files, with
the batch a limited task decodes cut to what it can use."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.io.records import RecordReader


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("records")
    rows = [{"id": f"r{i:03d}", "text": f"t{i}", "n": i} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(rows[:5]), path / "00000.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pylist(rows[5:]), path / "00001.parquet", row_group_size=3)
    return path


@pytest.mark.parametrize("skip,limit", [(0, 1), (0, 3), (4, 3), (2, 7), (0, 12), (0, 50), (11, 5)])
@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_limited_reads_are_the_full_reads_prefix(folder, skip, limit, batch_size):
    full = [(d.id, d.text, d.metadata["n"]) for d in RecordReader(str(folder), text_field="text").run()]
    assert len(full) == 12
    reader = RecordReader(str(folder), text_field="text", limit=limit, skip=skip, batch_size=batch_size)
    got = [(d.id, d.text, d.metadata["n"]) for d in reader.run()]
    assert got == full[skip:skip + limit]
