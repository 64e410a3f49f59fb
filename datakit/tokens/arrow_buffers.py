"""Arrow arrays built from numpy buffers, so writing a shard never imports pandas.

`pa.array(...)` and `pa.table({name: python list})` import pandas on first use (pyarrow checks whether the input
is a pandas object), which costs ~1 s of start-up per process. These helpers build the same arrays with
`pa.Array.from_buffers` for the types the token shards and the mixture ledger use: fixed-width integers and
floats, booleans, strings, and lists of those (nested lists too), with nulls. Any other type falls back to
`pa.array` (correct, only slower to import). `array(values, type=...)` replaces `pa.array(values, type=...)`,
`table(columns, schema)` replaces `pa.table(columns, schema=schema)`;
`read_table(path, columns)` replaces `pq.read_table`, whose `pyarrow.dataset` import pulls pandas in too.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

__all__ = ["array", "table", "fixed_lists", "fixed_width_lists", "read_table"]


def _np_dtype(typ: pa.DataType) -> np.dtype | None:
    if pa.types.is_integer(typ):
        return np.dtype(f"<{'i' if pa.types.is_signed_integer(typ) else 'u'}{typ.bit_width // 8}")
    if pa.types.is_floating(typ) and typ.bit_width in (32, 64):
        return np.dtype(f"<f{typ.bit_width // 8}")
    return None


def _validity(values: Sequence[Any]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when nothing is null) and the null count."""
    if isinstance(values, np.ndarray):
        return None, 0
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None), nulls


def _offsets(lengths: Sequence[int], large: bool = False) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def array(values: Sequence[Any] | np.ndarray, type: pa.DataType) -> pa.Array:
    """An Arrow array of `type` holding `values` (a list, possibly with None, or a numpy array; an Arrow array is
    cast if need be)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values if values.type == type else values.cast(type)
    n = len(values)
    dtype = _np_dtype(type)
    if dtype is not None:
        validity, nulls = _validity(values)
        if nulls:
            values = [0 if v is None else v for v in values]
        data = np.ascontiguousarray(values, dtype=dtype)
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(data)], null_count=nulls)
    if pa.types.is_boolean(type):
        validity, nulls = _validity(values)
        bits = np.fromiter((bool(v) for v in values), dtype=bool, count=n)
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(np.packbits(bits, bitorder="little"))],
                                     null_count=nulls)
    if pa.types.is_string(type) or pa.types.is_large_string(type):
        validity, nulls = _validity(values)
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        offsets = _offsets([len(b) for b in encoded], large=pa.types.is_large_string(type))
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
                                     null_count=nulls)
    if pa.types.is_list(type) or pa.types.is_large_list(type):
        validity, nulls = _validity(values)
        rows = [() if v is None else v for v in values]
        offsets = _offsets([len(r) for r in rows], large=pa.types.is_large_list(type))
        value_dtype = _np_dtype(type.value_type)
        if value_dtype is not None and all(isinstance(r, np.ndarray) for r in rows):
            flat = np.concatenate(rows).astype(value_dtype, copy=False) if rows else np.empty(0, value_dtype)
        else:
            flat = [x for r in rows for x in r]
        child = array(flat, type.value_type)
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(offsets)], null_count=nulls,
                                     children=[child])
    return pa.array(values, type=type)  # other types: pyarrow's own conversion


def table(columns: dict[str, Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """`pa.table(columns, schema=schema)` without the pandas import: each field built by `array`. A null in a
    non-nullable field (or list item) raises ValueError: Arrow would not check it, and Parquet would be wrong."""
    missing = [f.name for f in schema if f.name not in columns]
    if missing:
        raise KeyError(f"columns missing for fields {missing}")
    arrays = [array(columns[f.name], type=f.type) for f in schema]
    for f, arr in zip(schema, arrays):
        items = arr.values if pa.types.is_list(f.type) and not f.type.value_field.nullable else None
        if (not f.nullable and arr.null_count) or (items is not None and items.null_count):
            raise ValueError(f"{f.name}: a null in a non-nullable field of the schema; give every row a value")
    return pa.Table.from_arrays(arrays, schema=schema)


def _list_type(typ: pa.DataType) -> pa.DataType:
    """`typ` when it is a list type already (e.g. a schema's list<item not null>), else list<typ>."""
    return typ if pa.types.is_list(typ) else pa.list_(typ)


def fixed_lists(arrays: Sequence[np.ndarray], typ: pa.DataType) -> pa.ListArray:
    """Rows of numpy arrays as one list<typ> array (or of the list type `typ`): one flat buffer + offsets (no
    per-token Python objects)."""
    return array(list(arrays), _list_type(typ))


def fixed_width_lists(block: np.ndarray, typ: pa.DataType) -> pa.ListArray:
    """The lines of a 2-D numpy block as one list<typ> array (or of the list type `typ`) over the block's own
    buffer (no copy)."""
    list_type = _list_type(typ)
    rows, width = block.shape
    data = np.ascontiguousarray(block, dtype=_np_dtype(list_type.value_type)).reshape(-1)
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    child = pa.Array.from_buffers(list_type.value_type, len(data), [None, pa.py_buffer(data)])
    return pa.Array.from_buffers(list_type, rows, [None, pa.py_buffer(offsets)], children=[child])


def read_table(path, columns: Sequence[str] | None = None) -> pa.Table:
    """One Parquet file as a table (`pq.read_table` for a single file, without importing `pyarrow.dataset`)."""
    import pyarrow.parquet as pq

    from datakit.io.storage import arrow

    src, fs = arrow(path)
    return pq.ParquetFile(src, filesystem=fs).read(columns=columns)
