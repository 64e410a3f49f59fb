"""datakit's Parquet writer for token shards (datakit/tokens/parquet_file.py) against the real readers: pyarrow,
polars and `datasets` read back exactly what Arrow's own writer would have stored, on row shapes the packer never
makes too (empty lists, rows of different lengths, one-row pages, mask values past 1, non-ASCII strings)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datakit.io.schemas import arrow_schema
from datakit.tokens.parquet_file import Column, ParquetFileWriter, column_kind, rle_runs, thrift_struct
from datakit.tokens.shards import COLUMNS, ShardWriter, iter_rows

SCHEMA = arrow_schema("token_shard")


def _group(rng: np.random.Generator, rows: int, width: int | None, mask_top: int = 1) -> dict:
    """Column values of one row group: uniform rows of `width` tokens, or (width None) rows of 0–40 tokens."""
    lengths = [width] * rows if width is not None else [int(rng.integers(0, 41)) for _ in range(rows)]
    ids = [rng.integers(0, 151_665, n).astype(np.int32) for n in lengths]
    mask = [rng.integers(0, mask_top + 1, n).astype(np.uint8) for n in lengths]
    segs = [int(rng.integers(0, 4)) for _ in range(rows)]
    words = ["agentless", "sft", "commit_bundles", "synthetic", "ünï", "日本", "x" * 300, ""]
    return {
        "input_ids": ids, "loss_mask": mask,
        "doc_lens": [rng.integers(1, 9, k).astype(np.int32) for k in segs],
        "source": [[words[int(i)] for i in rng.integers(0, len(words), k)] for k in segs],
        "sample_ids": [[f"owner/repo#{int(rng.integers(0, 10**6))}@{j}" for j in range(k)] for k in segs],
        "chunk_index": [rng.integers(0, 3, k).astype(np.int32) for k in segs],
        "padding": [int(rng.integers(0, 5)) for _ in range(rows)],
        "repeat": [rng.integers(0, 5, k).astype(np.int32) for k in segs],
    }


def _writer_input(group: dict) -> dict:
    """The writer's forms: a 2-D block where every row has one length, else (flat values, row lengths)."""
    out = {}
    for name, values in group.items():
        if name in ("source", "sample_ids", "padding"):
            out[name] = values
            continue
        lengths = [len(v) for v in values]
        if name in ("input_ids", "loss_mask") and lengths and len(set(lengths)) == 1 and lengths[0]:
            out[name] = np.stack(values)
        else:
            dtype = np.uint8 if name == "loss_mask" else np.int32
            out[name] = (np.concatenate(values) if sum(lengths) else np.zeros(0, dtype), lengths)
    return out


def _arrow_table(group: dict) -> pa.Table:
    return pa.table({f.name: pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in group[f.name]],
                                      f.type) for f in SCHEMA}, schema=SCHEMA)


def _write(groups: list[dict], rows_per_page: int, columns=COLUMNS) -> bytes:
    sink = io.BytesIO()
    writer = ParquetFileWriter(sink, columns, SCHEMA, rows_per_page, created_by="datakit test")
    for g in groups:
        writer.write_row_group(_writer_input(g), len(g["padding"]))
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("width,rows_per_page,mask_top", [(64, 3, 1), (64, 1, 1), (None, 2, 1), (None, 64, 255),
                                                           (1, 5, 0), (0, 2, 1)])
def test_readers_get_what_arrow_would_store(width, rows_per_page, mask_top):
    rng = np.random.default_rng(7)
    groups = [_group(rng, rows, width, mask_top) for rows in (5, 1, 9)]
    data = _write(groups, rows_per_page)
    want = pa.concat_tables([_arrow_table(g) for g in groups])
    got = pq.read_table(pa.py_buffer(data))
    assert got.schema.equals(SCHEMA) and got.equals(want)
    pf = pq.ParquetFile(pa.py_buffer(data))
    assert pf.metadata.num_row_groups == 3 and [pf.metadata.row_group(i).num_rows for i in range(3)] == [5, 1, 9]
    assert pf.read_row_group(2).equals(_arrow_table(groups[2]))
    assert pa.Table.from_batches(list(pf.iter_batches(batch_size=2))).equals(want)  # batches across pages
    assert pq.read_table(pa.py_buffer(data), columns=["loss_mask", "padding"]).equals(
        want.select(["loss_mask", "padding"]))
    # the same file through Arrow's writer reads the same with polars
    import polars as pl

    arrow_written = io.BytesIO()
    pq.write_table(want, arrow_written)
    assert pl.read_parquet(io.BytesIO(data)).equals(pl.read_parquet(io.BytesIO(arrow_written.getvalue())))


def test_datasets_reads_a_shard(tmp_path):
    import datasets

    rng = np.random.default_rng(3)
    groups = [_group(rng, 4, 32), _group(rng, 3, 32)]
    path = tmp_path / "00000.parquet"
    path.write_bytes(_write(groups, 2))
    ds = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))
    want = pa.concat_tables([_arrow_table(g) for g in groups]).to_pylist()
    assert len(ds) == 7 and [dict(r) for r in ds] == want


def test_metadata_statistics_and_encodings():
    rng = np.random.default_rng(5)
    group = _group(rng, 6, 16)
    md = pq.read_metadata(pa.py_buffer(_write([group], 4)))
    assert md.created_by == "datakit test" and md.num_rows == 6
    assert "optional" not in str(md.schema)
    flat = {name: [x for row in group[name] for x in (row.tolist() if isinstance(row, np.ndarray) else row)]
            for name in group if name != "padding"}
    flat["padding"] = group["padding"]
    for i in range(md.num_columns):
        c = md.row_group(0).column(i)
        name = c.path_in_schema.split(".")[0]
        spec = next(col for col in COLUMNS if col.name == name)
        assert c.compression == ("ZSTD" if spec.codec == "zstd" else "UNCOMPRESSED")
        assert ("RLE_DICTIONARY" in c.encodings) == spec.dictionary
        if spec.statistics and flat[name]:
            assert c.statistics.has_min_max and c.statistics.null_count == 0
            key = (lambda s: s.encode("utf-8")) if isinstance(flat[name][0], str) else (lambda v: v)
            assert (c.statistics.min, c.statistics.max) == (min(flat[name], key=key), max(flat[name], key=key))
        else:
            assert c.statistics is None or not c.statistics.has_min_max


def test_same_input_same_bytes_and_an_empty_file():
    rng = np.random.default_rng(1)
    groups = [_group(rng, 3, 8)]
    assert _write(groups, 2) == _write(groups, 2)
    empty = _write([], 2)
    table = pq.read_table(pa.py_buffer(empty))
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 255), max_size=30), min_size=1, max_size=8), st.integers(1, 4))
def test_any_list_shapes_read_back(masks, rows_per_page):
    """Rows of any lengths (empty ones too) and any uint8 values: every reader sees the rows as given."""
    rows = len(masks)
    group = {
        "input_ids": [np.arange(len(m), dtype=np.int32) * 7 for m in masks],
        "loss_mask": [np.array(m, np.uint8) for m in masks],
        "doc_lens": [np.array(m[:2], np.int32) for m in masks],
        "source": [[chr(0x41 + v % 60) for v in m[:3]] for m in masks],
        "sample_ids": [[] for _ in masks],
        "chunk_index": [np.zeros(0, np.int32) for _ in masks],
        "padding": list(range(rows)),
        "repeat": [np.array(m[:1], np.int32) for m in masks],
    }
    data = _write([group], rows_per_page)
    assert pq.read_table(pa.py_buffer(data)).equals(_arrow_table(group))


def test_bad_values_are_refused_before_a_byte_of_the_group():
    rng = np.random.default_rng(2)
    sink = io.BytesIO()
    writer = ParquetFileWriter(sink, COLUMNS, SCHEMA, 4, created_by="t")
    size = len(sink.getvalue())
    bad = _writer_input(_group(rng, 3, 8))
    bad["repeat"] = (np.array([1 << 40], np.int64), [1, 0, 0])
    with pytest.raises(ValueError, match="repeat: a value does not fit int32"):
        writer.write_row_group(bad, 3)
    bad = _writer_input(_group(rng, 3, 8))
    bad["loss_mask"] = (np.array([0, 300] + [1] * 22), [8, 8, 8])
    with pytest.raises(ValueError, match="loss_mask: a value does not fit uint8"):
        writer.write_row_group(bad, 3)
    bad = _writer_input(_group(rng, 3, 8))
    bad["padding"] = [0, 0]
    with pytest.raises(ValueError, match="padding: 2 values for 3 rows"):
        writer.write_row_group(bad, 3)
    bad = _writer_input(_group(rng, 3, 8))
    bad["sample_ids"] = [[b"bytes"], [], []]
    with pytest.raises(ValueError, match="sample_ids: bytes item, not str"):
        writer.write_row_group(bad, 3)
    assert len(sink.getvalue()) == size
    with pytest.raises(ValueError, match="differ from the schema"):
        ParquetFileWriter(io.BytesIO(), COLUMNS[::-1], SCHEMA, 4, created_by="t")


def test_rle_runs_and_thrift_encoding():
    assert rle_runs(np.array([1, 1, 1, 0, 1], np.uint8), 1) == bytes([6, 1, 2, 0, 2, 1])
    assert rle_runs(np.array([300, 300], np.int32), 9) == bytes([4]) + (300).to_bytes(2, "little")
    # compact protocol: field deltas, zigzag varints, a long list header, the stop byte
    assert thrift_struct([(1, 5, 1), (2, 5, -1)]) == bytes([0x15, 2, 0x15, 1, 0])
    assert thrift_struct([(20, 5, 0)]) == bytes([0x05, 40, 0, 0])
    assert thrift_struct([(1, 9, (5, list(range(16))))])[:3] == bytes([0x19, 0xF5, 16])


def test_shard_writer_rows_read_back(tmp_path):
    """ShardWriter's rows through iter_rows (the export's reader) are the rows written."""
    from datakit.tokens.packing import Document, Packer

    rng = np.random.default_rng(4)
    docs = [Document(rng.integers(0, 1000, int(n)).astype(np.int32), np.ones(int(n), np.uint8), "agentless",
                     f"s{i}") for i, n in enumerate(rng.integers(1, 300, 60))]
    rows = list(Packer(128, 151643).pack(docs))
    with ShardWriter(tmp_path / "00000.parquet", row_group_rows=8) as w:
        for row in rows:
            w.write(row)
    back = list(iter_rows(tmp_path / "00000.parquet"))
    assert len(back) == len(rows)
    for row, got in zip(rows, back):
        assert got["input_ids"].tolist() == row.input_ids.tolist()
        assert got["loss_mask"].tolist() == row.loss_mask.tolist()
        assert got["doc_lens"] == row.doc_lens.tolist() and got["sample_ids"] == list(row.sample_ids)
        assert got["padding"] == row.padding


def test_rows_built_in_the_writers_block_make_the_same_file(tmp_path):
    """The tokens stage builds each row in the ShardWriter's row group block (`Packer(row_buffer=
    writer.row_buffer)`): the file is byte for byte the one written from rows the packer allocated, and a row
    from elsewhere (another length: its own row group) still goes in between."""
    from datakit.tokens.packing import Document, PackedRow, Packer

    def docs():
        rng = np.random.default_rng(8)
        return [Document(rng.integers(0, 151643, int(n)).astype(np.int32), rng.integers(0, 2, int(n)).astype(
            np.uint8), "agentless", f"s{i}", copies=1 + i % 3) for i, n in enumerate(rng.integers(1, 400, 90))]

    odd = PackedRow(np.arange(5, dtype=np.int32), np.array([5], np.int32), np.ones(5, np.uint8), ["x"], ["x0"], [0], 0)
    with ShardWriter(tmp_path / "copied.parquet", row_group_rows=4) as w:
        for k, row in enumerate(Packer(128, 151643, window=20, window_tokens=2000).pack(docs())):
            w.write(row)
            if k == 6:
                w.write(odd)
    with ShardWriter(tmp_path / "in_place.parquet", row_group_rows=4) as w:
        packer = Packer(128, 151643, window=20, window_tokens=2000, row_buffer=w.row_buffer)
        for k, row in enumerate(packer.pack(docs())):
            w.write(row)
            if k == 6:
                w.write(odd)
    assert (tmp_path / "in_place.parquet").read_bytes() == (tmp_path / "copied.parquet").read_bytes()
    assert len(list(iter_rows(tmp_path / "in_place.parquet"))) == packer.stats.rows + 1


def test_column_kinds_come_from_the_schema():
    """COLUMNS is the token_shard schema's fields in order, each stored by the kind of its Arrow type; a type the
    writer cannot store is refused by name."""
    assert [(c.name, c.kind) for c in COLUMNS] == [
        ("input_ids", "list_int32"), ("doc_lens", "list_int32"), ("loss_mask", "list_uint8"),
        ("source", "list_string"), ("sample_ids", "list_string"), ("chunk_index", "list_int32"),
        ("padding", "int32"), ("repeat", "list_int32")]
    assert [c.name for c in COLUMNS if c.statistics] == ["doc_lens", "source", "sample_ids", "chunk_index",
                                                         "padding", "repeat"]
    assert isinstance(COLUMNS[0], Column)
    with pytest.raises(ValueError, match="field x: int64"):
        column_kind(pa.field("x", pa.int64(), nullable=False))
    with pytest.raises(ValueError, match="nullable True"):
        column_kind(pa.field("x", pa.int32()))
