"""A Parquet writer for one fixed shape of table: columns that are a required 32-bit integer, or a required list
of required 32-bit integers or UTF-8 strings — the token shard's (schemas/token_shard.schema.json).

Why not Arrow's writer: for the list columns it builds repetition and definition levels value by value and widens
the loss mask to int32 before compressing it (~8 ns per token for the two token columns, half as much again as
the zstd of the ids; BENCHMARKS.md, tokens, sixth pass). Here a row's levels are two RLE runs, whatever its
length, and the loss mask is dictionary-encoded with its own values as the indices (dictionary [0, 1, …, max]), so
a page of it is a few RLE runs, left uncompressed; the ids and the small per-segment columns are compressed (zstd,
Arrow's codec).

Byte layout (the Parquet format, https://parquet.apache.org/docs/file-format/; Thrift compact protocol):
    "PAR1" · per row group, per column: [dictionary page] data page(s) · FileMetaData · u32 LE length · "PAR1"
- Data pages are v1, each holding whole rows: `PageHeader` · body; the body is, for a list column,
  u32 LE length · repetition levels · u32 LE length · definition levels (both RLE/bit-packed hybrid, bit width 1),
  then the values: PLAIN (int32 little endian; strings as u32 LE length · UTF-8 bytes) or, for a dictionary
  column, a bit-width byte · RLE runs of indices. The body is compressed with the column's codec.
- Levels of a required list of required items (max repetition 1, max definition 1): a row of n ≥ 1 items is
  repetition [0, 1 × (n−1)], definition [1 × n]; an empty row is one entry (repetition 0, definition 0), no value.
- The footer's key-value metadata holds `ARROW:schema` (base64 of the Arrow IPC schema, as Arrow writes it), so
  pyarrow reads back the exact Arrow types (uint8 items, the dictionary-typed `source`, non-nullable fields);
  readers without Arrow read the Parquet logical types (LIST, STRING, INT(8, unsigned)).
- Min/max statistics on the columns that ask for them; no page index, bloom filter or checksums (all
  optional in the format).

Strictly validated: every column of every row group is given, with the row count of the group; an integer that
does not fit the column's type is refused (ValueError) before any byte of the group is written.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

MAGIC = b"PAR1"

# parquet.thrift enums
INT32, BYTE_ARRAY = 1, 6
REQUIRED, REPEATED = 0, 2
CONVERTED_UTF8, CONVERTED_LIST, CONVERTED_UINT_8 = 0, 3, 11
PLAIN, RLE, RLE_DICTIONARY = 0, 3, 8
UNCOMPRESSED, ZSTD = 0, 6
DATA_PAGE, DICTIONARY_PAGE = 0, 2

# Thrift compact protocol field types
_BOOL_TRUE, _BYTE, _I16, _I32, _I64, _BINARY, _LIST, _STRUCT = 1, 3, 4, 5, 6, 8, 9, 12


# --------------------------------------------------------------------------------------------------------------
# Thrift compact protocol: a struct is a list of (field id, type, value), written in field-id order


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _value(kind: int, value) -> bytes:
    if kind == _BYTE:
        return struct.pack("<b", value)
    if kind in (_I16, _I32, _I64):
        return _varint(_zigzag(int(value)))
    if kind == _BINARY:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return _varint(len(data)) + data
    if kind == _STRUCT:  # field list, or a struct encoded already
        return value if isinstance(value, bytes) else thrift_struct(value)
    if kind == _LIST:
        item_kind, items = value
        n = len(items)
        head = bytes([(n << 4) | item_kind]) if n < 15 else bytes([0xF0 | item_kind]) + _varint(n)
        return head + b"".join(_value(item_kind, v) for v in items)
    raise ValueError(f"thrift type {kind}")


def thrift_struct(fields: list[tuple[int, int, object]]) -> bytes:
    """A Thrift compact struct of (field id, type, value) (None values are left out; True/False are booleans)."""
    out, last = bytearray(), 0
    for fid, kind, value in sorted(f for f in fields if f[2] is not None):
        if kind == "bool":
            kind, payload = (_BOOL_TRUE if value else 2), b""
        else:
            payload = _value(kind, value)
        delta = fid - last
        out += bytes([(delta << 4) | kind]) if 0 < delta <= 15 else bytes([kind]) + _varint(_zigzag(fid))
        out += payload
        last = fid
    out.append(0)  # stop
    return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# RLE / bit-packed hybrid (levels and dictionary indices)


def rle_run(count: int, value: int, width: int = 1) -> bytes:
    """One RLE run: `count` repeats of `value` (a value of `width` bits, stored in whole bytes)."""
    return _varint(count << 1) + int(value).to_bytes((width + 7) // 8, "little")


def rle_runs(values: np.ndarray, width: int) -> bytes:
    """The RLE runs of an array of small non-negative integers (one run per stretch of equal values)."""
    n = len(values)
    if n == 0:
        return b""
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = np.concatenate(([0], starts, [n])).tolist()
    run_values = values[bounds[:-1]].tolist()
    return b"".join(rle_run(b - a, v, width) for a, b, v in zip(bounds, bounds[1:], run_values))


def _with_length(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def list_levels(lengths: list[int]) -> tuple[bytes, bytes]:
    """(repetition, definition) level sections (length-prefixed) of rows of required lists with these lengths."""
    rep, dfn = [], []
    for n in lengths:
        if n == 0:
            rep.append(rle_run(1, 0))
            dfn.append(rle_run(1, 0))
        else:
            rep.append(rle_run(1, 0) + (rle_run(n - 1, 1) if n > 1 else b""))
            dfn.append(rle_run(n, 1))
    return _with_length(b"".join(rep)), _with_length(b"".join(dfn))


def fixed_list_levels(rows: int, n: int) -> tuple[bytes, bytes]:
    """The same for `rows` rows of exactly n ≥ 1 items: O(rows) bytes, no pass over the items."""
    one = rle_run(1, 0) + (rle_run(n - 1, 1) if n > 1 else b"")
    return _with_length(one * rows), _with_length(rle_run(rows * n, 1))


# --------------------------------------------------------------------------------------------------------------
# Columns and the file


@dataclass(frozen=True)
class Column:
    """One column of the file: `name` (the Arrow field's), `kind` "int32" | "list_int32" | "list_uint8" |
    "list_string", and how its values are stored: `dictionary` (list_uint8: the values are their own indices;
    list_string: the distinct strings in order of first appearance), `codec` ("zstd" or "none"), and whether the
    chunk carries min/max `statistics`."""

    name: str
    kind: str
    dictionary: bool = False
    codec: str = "zstd"
    statistics: bool = False  # min/max (and null count 0) in the column chunk's metadata

    @property
    def path(self) -> list[str]:
        return [self.name] if self.kind == "int32" else [self.name, "list", "element"]

    def schema_elements(self) -> list[list[tuple]]:
        if self.kind == "int32":
            return [[(1, _I32, INT32), (3, _I32, REQUIRED), (4, _BINARY, self.name)]]
        if self.kind == "list_string":
            leaf = [(1, _I32, BYTE_ARRAY), (3, _I32, REQUIRED), (4, _BINARY, "element"), (6, _I32, CONVERTED_UTF8),
                    (10, _STRUCT, [(1, _STRUCT, [])])]  # LogicalType.STRING
        elif self.kind == "list_uint8":
            leaf = [(1, _I32, INT32), (3, _I32, REQUIRED), (4, _BINARY, "element"), (6, _I32, CONVERTED_UINT_8),
                    (10, _STRUCT, [(10, _STRUCT, [(1, _BYTE, 8), (2, "bool", False)])])]  # LogicalType.INTEGER
        else:
            leaf = [(1, _I32, INT32), (3, _I32, REQUIRED), (4, _BINARY, "element")]
        return [[(3, _I32, REQUIRED), (4, _BINARY, self.name), (5, _I32, 1), (6, _I32, CONVERTED_LIST),
                 (10, _STRUCT, [(3, _STRUCT, [])])],  # LogicalType.LIST
                [(3, _I32, REPEATED), (4, _BINARY, "list"), (5, _I32, 1)],
                leaf]


def column_kind(field: pa.Field) -> str:
    """The Column kind of an Arrow field; ValueError for a type this writer does not store."""
    kinds = {pa.int32(): "int32", pa.list_(pa.int32()): "list_int32", pa.list_(pa.uint8()): "list_uint8",
             pa.list_(pa.string()): "list_string"}
    typ = pa.list_(field.type.value_type) if pa.types.is_list(field.type) else field.type
    if typ not in kinds or field.nullable or (pa.types.is_list(field.type) and field.type.value_field.nullable):
        raise ValueError(f"field {field.name}: {field.type} (nullable {field.nullable}) is not a type this writer "
                         "stores (required int32, or a required list of required int32, uint8 or string)")
    return kinds[typ]


def _page(page_type: int, parts: list, codec: str, header_fields: list[tuple]) -> tuple[list, int]:
    """([header, compressed body], size uncompressed: header · body). `parts` (bytes or contiguous arrays) are
    the body; to compress they are copied once into an Arrow buffer (no Python bytes of a few MB per page) and
    compressed into another."""
    size = sum(memoryview(p).nbytes for p in parts)
    if codec == "zstd":
        body = pa.allocate_buffer(size)
        view, at = np.frombuffer(body, np.uint8), 0
        for part in parts:
            part = np.frombuffer(memoryview(part).cast("B"), np.uint8)
            view[at:at + len(part)] = part
            at += len(part)
        data = _ZSTD.compress(body)
    else:
        data = b"".join(parts)
    header = thrift_struct([(1, _I32, page_type), (2, _I32, size), (3, _I32, len(data))] + header_fields)
    return [header, data], len(header) + size


_ZSTD = pa.Codec("zstd", 1)  # Arrow's zstd at its default level (what its Parquet writer uses)


def _int32_values(values: np.ndarray, what: str) -> np.ndarray:
    """Contiguous little-endian int32 (a view when they are already); ValueError for a value out of range."""
    values = np.asarray(values)
    if values.dtype != np.int32:
        if values.size and (values.min() < -(1 << 31) or values.max() >= 1 << 31):
            raise ValueError(f"{what}: a value does not fit int32")
        values = values.astype(np.int32)
    return np.ascontiguousarray(values.astype("<i4", copy=False))


def _plain_strings(values) -> bytes:
    """PLAIN byte arrays: u32 LE length · UTF-8 bytes, per value."""
    return b"".join(struct.pack("<I", len(b)) + b for b in (v.encode("utf-8") for v in values))


def _statistics(col: Column, items) -> list[tuple] | None:
    """Statistics (null_count 0, min_value, max_value: ints as int32 LE, strings by their UTF-8 bytes, which is the
    order Parquet defines for both), or None for an empty column."""
    if len(items) == 0:
        return None
    if col.kind == "list_string":
        encoded = [v.encode("utf-8") for v in items]
        low, high = min(encoded), max(encoded)
    else:
        low, high = (struct.pack("<i", int(v)) for v in (items.min(), items.max()))
    return [(3, _I64, 0), (5, _BINARY, high), (6, _BINARY, low)]


class ParquetFileWriter:
    """Writes row groups of `columns` to a binary file object, then the footer (`close`). `arrow_schema` is the
    Arrow schema stored for readers (field names and order must be the columns')."""

    def __init__(self, sink, columns: list[Column], arrow_schema: pa.Schema, rows_per_page: int,
                 created_by: str):
        if [c.name for c in columns] != arrow_schema.names:
            raise ValueError(f"columns {[c.name for c in columns]} differ from the schema's {arrow_schema.names}")
        self.sink, self.columns, self.rows_per_page = sink, columns, max(1, int(rows_per_page))
        self.arrow_schema, self.created_by = arrow_schema, created_by
        self._row_groups: list[bytes] = []
        self._rows = 0
        self._offset = 0
        self._write(MAGIC)

    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self._offset += len(data)

    def write_row_group(self, values: dict[str, object], rows: int) -> None:
        """One row group of `rows` rows. Per column: an int32 column a sequence of ints; `list_int32` /
        `list_uint8` either a 2-D array (rows × n: every row n items) or a (flat values, row lengths) pair;
        `list_string` a sequence of lists of str."""
        chunks = [self._column_pages(col, values[col.name], rows) for col in self.columns]  # all checked first
        metas = []
        for col, (pages, n_values, raw, encodings, dict_page, stats) in zip(self.columns, chunks):
            start = self._offset
            for page in pages:
                self._write(page)
            size = self._offset - start
            meta = [(1, _I32, BYTE_ARRAY if col.kind == "list_string" else INT32),
                    (2, _LIST, (_I32, encodings)), (3, _LIST, (_BINARY, col.path)),
                    (4, _I32, ZSTD if col.codec == "zstd" else UNCOMPRESSED), (5, _I64, n_values),
                    (6, _I64, raw), (7, _I64, size),
                    (9, _I64, start + (len(pages[0]) + len(pages[1]) if dict_page else 0)),
                    (11, _I64, start if dict_page else None), (12, _STRUCT, stats)]
            metas.append((start, size, raw, meta))
        columns = [[(2, _I64, start), (3, _STRUCT, meta)] for start, _, _, meta in metas]
        self._row_groups.append(thrift_struct([
            (1, _LIST, (_STRUCT, columns)), (2, _I64, sum(m[2] for m in metas)), (3, _I64, rows),
            (5, _I64, metas[0][0]), (6, _I64, sum(m[1] for m in metas)), (7, _I16, len(self._row_groups))]))
        self._rows += rows

    def _column_pages(self, col: Column, data, rows: int):
        """(pages, values counted, uncompressed bytes incl. headers, encodings, has a dictionary page, statistics)."""
        if col.kind == "int32":
            items = np.asarray(data)
            if items.shape != (rows,):
                raise ValueError(f"column {col.name}: {items.shape[0] if items.ndim else 0} values for {rows} rows")
            items, lengths = _int32_values(items, col.name), None
        else:
            lengths, items = self._lists(col, data, rows)
        pages, encodings = [], [PLAIN] if lengths is None else [RLE, PLAIN]
        if col.dictionary:  # a dictionary page, then the values as RLE runs of their indices
            if col.kind == "list_uint8":  # dictionary [0, 1, …, max]: a value is its own index
                top = int(items.max()) if len(items) else 0
                indices, size, dict_body = items, top + 1, np.arange(top + 1, dtype="<i4")
            else:
                uniques = list(dict.fromkeys(items))
                index = {v: i for i, v in enumerate(uniques)}
                indices = np.fromiter((index[v] for v in items), np.int32, len(items))
                size, dict_body = len(uniques), _plain_strings(uniques)
            width = max(1, (size - 1).bit_length())
            encodings = [*encodings, RLE_DICTIONARY]
            pages.append(_page(DICTIONARY_PAGE, [dict_body], col.codec,
                               [(7, _STRUCT, [(1, _I32, size), (2, _I32, PLAIN)])]))
        offsets = None
        if lengths is not None:
            offsets = np.zeros(rows + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
        uniform = lengths is not None and rows > 0 and lengths[0] > 0 and lengths.count(lengths[0]) == rows
        n_values = 0
        for a in range(0, rows, self.rows_per_page):
            b = min(a + self.rows_per_page, rows)
            if lengths is None:
                levels, (lo, hi), entries = b"", (a, b), b - a
            else:
                rep, dfn = fixed_list_levels(b - a, lengths[0]) if uniform else list_levels(lengths[a:b])
                levels, (lo, hi) = rep + dfn, (int(offsets[a]), int(offsets[b]))
                entries = (hi - lo) + lengths[a:b].count(0)  # an empty row is one level entry, no value
            if col.dictionary:
                values = bytes([width]) + rle_runs(indices[lo:hi], width)
            elif col.kind == "list_string":
                values = _plain_strings(items[lo:hi])
            else:
                values = _int32_values(items[lo:hi], col.name)
            header = [(5, _STRUCT, [(1, _I32, entries), (2, _I32, RLE_DICTIONARY if col.dictionary else PLAIN),
                                    (3, _I32, RLE), (4, _I32, RLE)])]
            pages.append(_page(DATA_PAGE, [levels, values], col.codec, header))
            n_values += entries
        raw = sum(size for _, size in pages)
        stats = _statistics(col, items) if col.statistics else None
        return [part for page, _ in pages for part in page], n_values, raw, encodings, col.dictionary, stats

    @staticmethod
    def _lists(col: Column, data, rows: int):
        """(row lengths, flat items) of a list column's data."""
        if col.kind == "list_string":
            rows_data = list(data)
            if len(rows_data) != rows:
                raise ValueError(f"column {col.name}: {len(rows_data)} rows for {rows}")
            for row in rows_data:
                for x in row:
                    if not isinstance(x, str):
                        raise ValueError(f"column {col.name}: {type(x).__name__} item, not str")
            return [len(r) for r in rows_data], [x for r in rows_data for x in r]
        if isinstance(data, np.ndarray) and data.ndim == 2:
            if data.shape[0] != rows:
                raise ValueError(f"column {col.name}: {data.shape[0]} rows for {rows}")
            items, lengths = data.reshape(-1), [data.shape[1]] * rows
        else:
            items, lengths = data
            items, lengths = np.asarray(items), [int(n) for n in lengths]
            if len(lengths) != rows or sum(lengths) != len(items):
                raise ValueError(f"column {col.name}: lengths do not match {rows} rows of {len(items)} items")
        if col.kind == "list_int32" and items.dtype != np.int32:
            items = _int32_values(items, col.name)
        if col.kind == "list_uint8" and items.dtype != np.uint8:
            if items.size and (items.min() < 0 or items.max() > 255):
                raise ValueError(f"column {col.name}: a value does not fit uint8")
            items = items.astype(np.uint8)
        return lengths, items

    def close(self) -> None:
        """The footer: FileMetaData (schema, row groups, the Arrow schema), its length, the magic."""
        elements = [[(4, _BINARY, "schema"), (5, _I32, len(self.columns))]]
        for col in self.columns:
            elements += col.schema_elements()
        arrow_schema = base64.b64encode(self.arrow_schema.serialize().to_pybytes()).decode("ascii")
        footer = thrift_struct([
            (1, _I32, 2), (2, _LIST, (_STRUCT, elements)), (3, _I64, self._rows),
            (4, _LIST, (_STRUCT, self._row_groups)),
            (5, _LIST, (_STRUCT, [[(1, _BINARY, "ARROW:schema"), (2, _BINARY, arrow_schema)]])),
            (6, _BINARY, self.created_by),
            # TYPE_DEFINED_ORDER per leaf: readers may then use min_value / max_value
            (7, _LIST, (_STRUCT, [[(1, _STRUCT, [])] for _ in self.columns]))])
        self._write(footer + struct.pack("<I", len(footer)) + MAGIC)
