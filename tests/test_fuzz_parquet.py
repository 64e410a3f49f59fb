"""Fuzzing the Parquet readers (datakit.io.records.RecordReader, datakit.io.row_shards.RowShardedRecordReader, the
synth reader's Parquet input) with cut and corrupted files. A stage's own file that cannot be read raises
RecordFileError naming the file and the fix (never pyarrow's bare error, which names none); a corrupted byte in
a data page is caught by the page checksum, never read as a changed record; a synthetic input file ends in one
unreadable_parquet row error after the rows before the fault. Deterministic (derandomize)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from hypothesis import given
from hypothesis import strategies as st

from datakit.io.records import RecordFileError, RecordReader, RecordWriter
from datakit.io.row_shards import RowShardedRecordReader
from datakit.synth.readers import RowError, iter_rows
from tests.fuzzing import FUZZ, damaged


ROWS = [{"id": f"r{i}", "stage": "fuzz", "role": None, "reason": "because", "detail": "d" * (i % 7),
         "record": f'{{"n": {i}, "text": "{"payload " * (i % 13)}"}}'} for i in range(200)]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[bytes, list[tuple[int, int]]]:
    """A quarantine file as the stages write it (several row groups), and the byte ranges of its data pages."""
    folder = tmp_path_factory.mktemp("records")
    writer = RecordWriter(str(folder), "quarantine", batch_size=32)
    for row in ROWS:
        writer.write(Document(text="", id=row["id"], metadata=row), 0)
    writer.close()
    path = folder / "00000.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 1
    pages = []
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            start = col.dictionary_page_offset or col.data_page_offset
            pages.append((start, col.data_page_offset + col.total_compressed_size - (col.data_page_offset - start)))
    return path.read_bytes(), pages


def read_records(folder) -> list[dict]:
    return [doc.metadata for doc in RecordReader(str(folder)).run()]


def damage(draw, blob: bytes, pages) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["cut", "flip", "flip_page", "zero", "append"]))
    if kind in ("cut", "flip"):
        return kind, damaged(draw, blob, kind)
    if kind == "append":
        return kind, blob + draw(st.binary(min_size=1, max_size=16))
    if kind == "flip_page":
        lo, hi = draw(st.sampled_from(pages))
        i = draw(st.integers(lo, hi - 1))
        return kind, blob[:i] + bytes([blob[i] ^ draw(st.integers(1, 255))]) + blob[i + 1:]
    i, n = draw(st.integers(0, len(blob) - 1)), draw(st.integers(1, 64))
    return kind, blob[:i] + b"\0" * n + blob[i + n:]


def read_damaged(tmp_path_factory, data, good, read, good_files=()) -> tuple[str, bytes, list | None]:
    """Write `good_files` intact and the next file damaged into a new folder; (kind, damaged bytes, what `read`
    got from the folder) or, when it raised RecordFileError, None after checking the error names that file."""
    blob, pages = good
    kind, broken = damage(data.draw, blob, pages)
    folder = tmp_path_factory.mktemp("broken")
    for name in good_files:
        (folder / name).write_bytes(blob)
    name = f"{len(good_files):05d}.parquet"
    (folder / name).write_bytes(broken)
    try:
        got = read(folder)
    except RecordFileError as exc:
        assert name in str(exc) and "--force" in str(exc)
        return kind, broken, None
    assert kind not in ("cut", "append"), "a cut or extended file read without an error"
    return kind, broken, got


@FUZZ
@given(st.data())
def test_fuzz_damaged_record_files(tmp_path_factory, good, data):
    kind, broken, got = read_damaged(tmp_path_factory, data, good, read_records)
    # a flip outside the pages (the footer's statistics, names) may still read; inside the pages it never
    # changes a record silently: the CRC catches it (or the flip hit a byte no record depends on)
    if got is not None and (kind == "flip_page" or broken == good[0]):
        assert got == ROWS


def read_row_sharded(folder) -> list[dict]:
    return [doc.metadata for w in range(2) for doc in RowShardedRecordReader(str(folder)).run(None, w, 2)]


@FUZZ
@given(st.data())
def test_fuzz_damaged_files_row_sharded(tmp_path_factory, good, data):
    kind, broken, got = read_damaged(tmp_path_factory, data, good, read_row_sharded, ["00000.parquet"])
    if got is not None:
        assert got[:len(ROWS)] == ROWS


@FUZZ
@given(st.data())
def test_fuzz_damaged_synth_parquet(tmp_path_factory, good, data):
    blob, pages = good
    kind, broken = damage(data.draw, blob, pages)
    path = tmp_path_factory.mktemp("synth") / "rows.parquet"
    path.write_bytes(broken)
    rows = list(iter_rows(path))
    errors = [r for _, r in rows if isinstance(r, RowError)]
    assert len(errors) <= 1 and all(e.reason == "unreadable_parquet" and "rows.parquet" in e.detail for e in errors)
    if errors:
        assert rows[-1][1] is errors[0] and [r for _, r in rows[:-1]] == ROWS[:len(rows) - 1]
    else:
        assert kind not in ("cut", "append")
    assert [i for i, _ in rows] == list(range(len(rows)))


def test_plain_garbage_names_the_file(tmp_path):
    (tmp_path / "00000.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(RecordFileError, match=r"00000\.parquet: not a readable Parquet file"):
        read_records(tmp_path)
