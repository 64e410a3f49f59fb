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


@pytest.mark.parametrize("limit", [-1, 4])
def test_doc_len_stat_is_datatroves_per_document_figure(folder, limit):
    """The reader gathers `doc_len` per file and merges it once: the stat equals datatrove's update per document."""
    from datatrove.utils.stats import MetricStats

    reader = RecordReader(str(folder), text_field="text", limit=limit)
    docs = list(reader.run())
    expected = MetricStats()
    for d in docs:
        expected.update(len(d.text), "doc")
    got = reader.stats["doc_len"]
    assert (got.total, got.n, got.min, got.max) == (expected.total, expected.n, expected.min, expected.max)
    assert got.mean == pytest.approx(expected.mean) and got.variance == pytest.approx(expected.variance)
    assert got.unit == "doc" and len(docs) == (12 if limit < 0 else limit)
