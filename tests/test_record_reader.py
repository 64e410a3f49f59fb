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


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """Records with a struct column (`meta`) and a large column the projection leaves out, in row groups of 3; a
    second file lacks `meta` and `extra` altogether (another tool's file, or an older schema)."""
    path = tmp_path_factory.mktemp("nested")
    rows = [{"id": f"r{i:03d}", "text": f"t{i}", "extra": "x" * 1000 + str(i),
             "meta": {"repo": f"o/r{i % 3}", "files": [f"f{i}.py"], "tree": "big " * 50}} for i in range(10)]
    rows[4]["meta"] = None
    pq.write_table(pa.Table.from_pylist(rows), path / "00000.parquet", row_group_size=3)
    pq.write_table(pa.Table.from_pylist([{"id": "z000", "text": "plain"}]), path / "00001.parquet")
    return path, rows


def test_a_projection_reads_only_its_columns_and_full_records_reads_the_rest(nested):
    """`columns` reads those columns (a struct's field alone as `meta.repo`; what a file lacks is left out) and
    says where each record was read; `FullRecords` gives back every column of it, exactly as a full read, for any
    row of any row group, in any order."""
    from datakit.io.records import READ_FROM, FullRecords, projected_columns

    path, rows = nested
    schema = pq.read_schema(path / "00000.parquet")
    assert projected_columns(schema, ["id", "meta.repo", "meta.nope", "nope", "text.x"]) == ["id", "meta.repo"]
    docs = list(RecordReader(str(path), text_field="text", columns=["id", "text", "meta.repo"]).run())
    assert [sorted(k for k in d.metadata if k != READ_FROM) for d in docs] == [["id", "meta", "text"]] * 10 + [
        ["id", "text"]]
    assert [d.metadata["meta"] for d in docs[:5]] == [{"repo": "o/r0"}, {"repo": "o/r1"}, {"repo": "o/r2"},
                                                      {"repo": "o/r0"}, None]
    whole = [d.metadata for d in RecordReader(str(path), text_field="text").run()]
    assert READ_FROM not in whole[0]
    full = FullRecords()
    for i in (7, 0, 1, 9, 3, 10, 2):  # across row groups and files, back and forth
        assert full(docs[i].metadata) == whole[i]
    assert full(whole[5]) is whole[5]  # a record read whole is already whole
