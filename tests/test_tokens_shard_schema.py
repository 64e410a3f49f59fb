"""The token shard's Parquet form: non-nullable fields derived from schemas/token_shard.schema.json (`x-arrow-nullable`),
no min/max statistics on the per-token columns, and shards written before (nullable) still read the same."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.io.schemas import _arrow_field, arrow_schema
from datakit.tokens import arrow_buffers
from datakit.tokens.packing import Document, pack
from datakit.tokens.shards import ShardWriter, iter_documents, iter_rows


def _rows(seq_len: int = 64):
    rng = np.random.default_rng(3)
    docs = [Document(rng.integers(0, 151_000, n).astype(np.int32), (rng.random(n) < 0.7).astype(np.uint8),
                     "code" if k % 3 else "issues", f"s{k}", copies=2 if k == 4 else 1)
            for k, n in enumerate([5, 64, 130, 17, 40, 63, 1, 90])]
    return list(pack(docs, seq_len, eod_id=151643, window=4))


def test_token_shard_fields_and_items_are_non_nullable_and_other_schemas_are_not():
    shard = arrow_schema("token_shard")
    for f in shard:
        assert not f.nullable, f.name
        if pa.types.is_list(f.type):
            assert not f.type.value_field.nullable, f.name
    sample = arrow_schema("sample")  # records without the marker keep Arrow's nullable fields
    assert all(f.nullable for f in sample)
    assert sample.field("tools").type.value_field.nullable
    with pytest.raises(TypeError, match="x-arrow-nullable"):
        _arrow_field("x", {"type": ["integer", "null"], "x-arrow-nullable": False}, {})
    with pytest.raises(TypeError, match="true or false"):
        _arrow_field("x", {"type": "integer", "x-arrow-nullable": "no"}, {})


def test_shard_is_required_in_parquet_without_token_statistics(tmp_path):
    path = tmp_path / "00000.parquet"
    with ShardWriter(path, row_group_rows=2) as w:
        for row in _rows():
            w.write(row)
    pf = pq.ParquetFile(path)
    assert "optional" not in str(pf.metadata.schema)  # every group and leaf `required`: no definition levels
    assert pf.schema_arrow.equals(arrow_schema("token_shard"))
    stats = {}
    for g in range(pf.metadata.num_row_groups):
        rg = pf.metadata.row_group(g)
        for i in range(rg.num_columns):
            c = rg.column(i)
            stats.setdefault(c.path_in_schema.split(".")[0], set()).add(
                c.statistics is not None and c.statistics.has_min_max)
            if c.path_in_schema.startswith("source."):
                assert "RLE_DICTIONARY" in c.encodings
    assert stats.pop("input_ids") == stats.pop("loss_mask") == {False}
    assert all(v == {True} for v in stats.values()), stats


def test_shards_written_nullable_before_read_back_the_same(tmp_path):
    rows = _rows()
    new, old = tmp_path / "new" / "00000.parquet", tmp_path / "old" / "00000.parquet"
    with ShardWriter(new) as w:
        for row in rows:
            w.write(row)
    nullable = pa.schema([pa.field(f.name, pa.list_(f.type.value_type) if pa.types.is_list(f.type) else f.type)
                          for f in arrow_schema("token_shard")])  # the schema as it was derived before
    old.parent.mkdir()
    pq.write_table(pq.read_table(new).cast(nullable), old, compression="zstd")
    assert pq.read_schema(old).field("input_ids").nullable
    got_new, got_old = list(iter_rows(new)), list(iter_rows(old))
    assert len(got_new) == len(rows) == len(got_old)
    for a, b, row in zip(got_new, got_old, rows):
        assert np.array_equal(a["input_ids"], row.input_ids) and np.array_equal(b["input_ids"], row.input_ids)
        assert np.array_equal(a["loss_mask"], b["loss_mask"]) and a["loss_mask"].dtype == b["loss_mask"].dtype
        assert {k: v for k, v in a.items() if k not in ("input_ids", "loss_mask")} == \
               {k: v for k, v in b.items() if k not in ("input_ids", "loss_mask")}
    docs_new, docs_old = list(iter_documents([new])), list(iter_documents([old]))
    assert [(d[0], d[1], d[2].tolist(), d[3].tolist()) for d in docs_new] == \
           [(d[0], d[1], d[2].tolist(), d[3].tolist()) for d in docs_old]


def test_a_null_in_a_non_nullable_field_is_refused():
    schema = pa.schema([pa.field("padding", pa.int32(), nullable=False),
                        pa.field("source", pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=False)])
    assert arrow_buffers.table({"padding": [1], "source": [["a"]]}, schema).num_rows == 1
    with pytest.raises(ValueError, match="padding: a null"):
        arrow_buffers.table({"padding": [None], "source": [["a"]]}, schema)
    with pytest.raises(ValueError, match="source: a null"):
        arrow_buffers.table({"padding": [1], "source": [["a", None]]}, schema)
