"""datakit/tokens/arrow_buffers.py: the same Arrow data as pyarrow's own conversion, and no pandas import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.io.schemas import arrow_schema
from datakit.tokens.arrow_buffers import array, fixed_lists, fixed_width_lists, read_table, table

CASES = [
    (pa.int32(), [1, -2, 2**31 - 1, None, 0]),
    (pa.int64(), [2**40, None, -1]),
    (pa.uint8(), [0, 255, 1]),
    (pa.float64(), [0.5, None, -1e300]),
    (pa.bool_(), [True, False, None, True, True, False, False, True, True]),
    (pa.string(), ["a", "", None, "café 😀", "<|endoftext|>"]),
    (pa.large_string(), ["x", None]),
    (pa.list_(pa.int32()), [[1, 2], [], None, [3]]),
    (pa.list_(pa.string()), [["agentless", "sft"], [], ["ü", None], None]),
    (pa.list_(pa.list_(pa.int32())), [[[1], []], None, [[2, 3]]]),
    (pa.int32(), []),
    (pa.list_(pa.string()), []),
]


@pytest.mark.parametrize("typ,values", CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_same_as_pyarrow(typ, values):
    got = array(values, typ)
    got.validate(full=True)
    assert got.type == typ
    assert got.equals(pa.array(values, type=typ))
    assert got.to_pylist() == values


def test_numpy_inputs_and_fixed_lists():
    rows = [np.arange(5, dtype=np.int32), np.array([7], np.int32), np.empty(0, np.int32)]
    got = fixed_lists(rows, pa.int32())
    got.validate(full=True)
    assert got.to_pylist() == [r.tolist() for r in rows]
    mask = [np.ones(3, np.uint8), np.zeros(2, np.uint8)]
    assert fixed_lists(mask, pa.uint8()).to_pylist() == [[1, 1, 1], [0, 0]]
    assert array(np.array([3, 4], np.int64), pa.int32()).to_pylist() == [3, 4]
    assert array(got, pa.list_(pa.int32())) is got  # an Arrow array passes through


def test_tables_round_trip_through_parquet(tmp_path):
    shard = arrow_schema("token_shard")
    cols = {"input_ids": [np.arange(4, dtype=np.int32)], "doc_lens": [[3, 1]], "loss_mask": [np.ones(4, np.uint8)],
            "source": [["agentless", "padding"]], "sample_ids": [["s1"]], "chunk_index": [[0]], "padding": [1],
            "repeat": [[0]]}
    cols = {f.name: cols[f.name] for f in shard if f.name in cols}
    shard = pa.schema([f for f in shard if f.name in cols])
    want = pa.table(cols, schema=shard)
    got = table(cols, shard)
    assert got.equals(want)
    pq.write_table(got, tmp_path / "s.parquet")
    assert pq.read_table(tmp_path / "s.parquet").equals(want)
    assert read_table(tmp_path / "s.parquet", columns=["padding"]).equals(want.select(["padding"]))
    with pytest.raises(KeyError, match="missing"):
        table({}, shard)


def test_no_pandas_import():
    code = ("import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq\n"
            "from datakit.tokens.arrow_buffers import table, fixed_lists\n"
            "s = pa.schema([('ids', pa.list_(pa.int32())), ('name', pa.string()), ('n', pa.int64())])\n"
            "t = table({'ids': [np.arange(3, dtype=np.int32)], 'name': ['x'], 'n': [1]}, s)\n"
            "w = pq.ParquetWriter(sys.argv[1], s, compression='zstd'); w.write_table(t); w.close()\n"
            "from datakit.tokens.arrow_buffers import read_table\n"
            "assert read_table(sys.argv[1], ['n']).num_rows == 1\n"
            "print('pandas' in sys.modules)\n")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code, f"{d}/t.parquet"], capture_output=True, text=True,
                             check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_fixed_width_lists_is_fixed_lists_of_the_lines():
    block = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = fixed_width_lists(block[:2], pa.int32())  # the first lines of a larger block, as ShardWriter passes
    got.validate(full=True)
    assert got.equals(fixed_lists(list(block[:2]), pa.int32()))
    assert fixed_width_lists(np.ones((2, 3), np.uint8), pa.uint8()).to_pylist() == [[1, 1, 1]] * 2


def test_shard_writer_copies_rows_into_row_groups(tmp_path):
    """ShardWriter copies each row's tokens into its row group's block (the row is freed once written): the rows
    read back equal, row groups of `row_group_rows`, and a row of another length starts a group of its own."""
    from datakit.tokens.packing import PackedRow
    from datakit.tokens.shards import ShardWriter, iter_rows

    def row(k, n):
        ids = np.arange(k, k + n, dtype=np.int32)
        return PackedRow(ids, np.array([n - 1, 1], np.int32), (ids % 2).astype(np.uint8), ["code"], [f"s{k}"],
                         [0], 1, [0])

    rows = [row(k, 8) for k in range(5)] + [row(100, 6)]
    with ShardWriter(tmp_path / "00000.parquet", row_group_rows=2) as w:
        for r in rows:
            w.write(r)
    back = list(iter_rows(tmp_path / "00000.parquet"))
    assert [b["input_ids"].tolist() for b in back] == [r.input_ids.tolist() for r in rows]
    assert [b["loss_mask"].tolist() for b in back] == [r.loss_mask.tolist() for r in rows]
    assert [b["sample_ids"] for b in back] == [r.sample_ids for r in rows]
    meta = pq.ParquetFile(tmp_path / "00000.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2, 2, 1, 1]
