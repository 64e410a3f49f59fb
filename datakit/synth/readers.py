"""Streaming readers for synthetic data: JSONL (plain or zstd), JSON documents (`.traj`, `.traj.json`, event
lists), Parquet, and `datasets` datasets on disk. Nothing is downloaded; nothing is held beyond one row (a JSON
document or a Parquet row group at most).

`iter_rows(path)` yields `(index, value)` per row, or `(index, RowError)` for a row that cannot be read (a bad
JSONL line, a truncated zstd frame, a row over `max_row_bytes`, a broken Parquet file) so the caller can quarantine it and go on: every
row read is accounted for. Memory stays bounded on hostile input: a JSONL line over the limit is read past, never
held whole (`datakit.io.lines`), a JSON document over it is not read, and zstd input is fed to the decompressor in
small slices, so a bomb yields at most ~8 MiB per call (zstd's worst case is ~32 KiB out per byte in).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import orjson

from datakit.io.lines import Oversized, split_lines

SUFFIXES = (".jsonl.zst", ".jsonl", ".traj.json", ".traj", ".json", ".parquet")
MAX_ROW_BYTES = 64 << 20  # a longer JSONL line or JSON document is one row_too_large error, not read
_READ = 1 << 20  # bytes per read of a plain file
_ZSTD_SLICE = 256  # compressed bytes per decompress call: at most ~8 MiB out (see above); ~430 MB/s out
PACKAGE_PREFIX = "datakit:"  # `datakit:demo/fixtures/synth`: a path inside the installed package


@dataclass
class RowError:
    reason: str
    detail: str
    raw: str = ""


def resolve(path: str) -> Path:
    """A recipe path; `datakit:sub/path` names data shipped inside the package (works installed or editable)."""
    if path.startswith(PACKAGE_PREFIX):
        return Path(str(resources.files("datakit").joinpath(path[len(PACKAGE_PREFIX):])))
    return Path(path).resolve()


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def list_inputs(paths: list[str], what: str = "synth input") -> list[Path]:
    """Files (by suffix) and saved datasets under `paths`, sorted per path, deduplicated; ValueError (naming the
    option, `what`) when a path does not exist or nothing readable is found."""
    found: list[Path] = []
    for p in paths:
        path = resolve(p)
        if not path.exists():
            raise ValueError(f"{what} {p} does not exist")
        if is_saved_dataset(path):
            found.append(path)
        elif path.is_dir():
            datasets = sorted(d for d in path.rglob("*") if is_saved_dataset(d))
            found += datasets
            found += sorted(f for f in path.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES)
                            and not any(d in f.parents for d in datasets))
        elif path.name.endswith(SUFFIXES):
            found.append(path)
        else:
            raise ValueError(f"{what} {p}: unknown file type (expected {', '.join(SUFFIXES)} or a saved dataset)")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ValueError(f"{what}: no {', '.join(SUFFIXES)} files or saved datasets in {paths}")
    return unique


def _lines(lines, rank: int = 0, world: int = 1, max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[tuple[int, Any]]:
    """Rows of the lines of `split_lines`, one per line."""
    for i, line in enumerate(lines):
        if i % world != rank:  # another task's line: skipped before any parsing
            continue
        if line.__class__ is Oversized:
            yield i, RowError("row_too_large", f"line {i + 1}: {line.size} bytes > max_row_bytes {max_row_bytes}",
                              line.head.decode("utf-8", "replace"))
            continue
        if not line.strip():
            yield i, RowError("empty_line", f"line {i + 1} is empty")
            continue
        try:
            yield i, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield i, RowError("malformed_json", f"line {i + 1}: {exc}", line[:4096].decode("utf-8", "replace"))


class _Truncated(Exception):
    pass


def _zstd_pieces(f, block: int = 1 << 20) -> Iterator[bytes]:
    """The decompressed pieces of a zstd file, fed in _ZSTD_SLICE slices (bounded output per call); _Truncated when
    the file ends inside a frame (a cut download: zstandard's stream reader would end quietly there). Concatenated
    frames are read one after another."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    obj, in_frame = dctx.decompressobj(), False
    while data := f.read(block):
        view, pos = memoryview(data), 0
        while pos < len(view):
            in_frame = True
            piece = view[pos:pos + _ZSTD_SLICE]
            pos += len(piece)
            out = obj.decompress(piece)
            if out:
                yield out
            if obj.eof:  # a frame ended inside the slice: the rest starts the next frame
                rest = obj.unused_data
                pos -= len(rest)
                obj, in_frame = dctx.decompressobj(), False
    if in_frame:
        raise _Truncated("the file ends inside a zstd frame (cut or incomplete)")


def _zstd_lines(path: Path, rank: int, world: int, max_row_bytes: int) -> Iterator[tuple[int, Any]]:
    import zstandard

    with open(path, "rb") as f:
        count = _Counted(split_lines(_zstd_pieces(f), max_row_bytes))
        try:
            yield from _lines(count, rank, world, max_row_bytes)
        except (_Truncated, zstandard.ZstdError) as exc:  # what was decoded counts; the rest is one error
            if rank == 0:  # reported once, by the first task
                yield count.n, RowError("truncated_zstd", f"{path.name}: after line {count.n}: {exc}")


class _Counted:
    """An iterator of lines that counts them (the line number where a broken stream stopped)."""

    def __init__(self, it):
        self.it, self.n = it, 0

    def __iter__(self):
        for x in self.it:
            self.n += 1
            yield x


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """The rows of a Parquet file; a file that cannot be read (cut, corrupted) ends in one unreadable_parquet
    error after the rows read before the fault."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    i = 0
    try:
        for batch in pq.ParquetFile(path, page_checksum_verification=True).iter_batches(batch_size=256):
            for row in batch.to_pylist():
                yield i, row
                i += 1
    except (pa.ArrowException, OSError) as exc:
        yield i, RowError("unreadable_parquet", f"{path.name}: after row {i}: {exc}")


def _dataset_rows(path: Path) -> Iterator[tuple[int, Any]]:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local only: never reach the hub
    import datasets

    ds = datasets.load_from_disk(str(path))
    parts = [ds[k] for k in sorted(ds)] if isinstance(ds, datasets.DatasetDict) else [ds]
    i = 0
    for part in parts:
        for row in part:
            yield i, row
            i += 1


def load_dataset_rows(files: list[Path], builder: str) -> Iterator[tuple[int, Any]]:
    """Rows through `datasets.load_dataset(builder, data_files=…)` (local files, offline): the library's own
    readers, for data that is easier to read that way."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    for i, row in enumerate(ds):
        yield i, row


def _json_document(path: Path, max_row_bytes: int) -> Iterator[tuple[int, Any]]:
    size = path.stat().st_size
    if size > max_row_bytes:
        yield 0, RowError("row_too_large", f"{path.name}: {size} bytes > max_row_bytes {max_row_bytes}")
        return
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        yield 0, RowError("malformed_json", f"{path.name}: {exc}")
        return
    # a list of conversations is many rows; a trajectory or an OpenHands event list is one
    if isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc) and not (
            "action" in doc[0] or "observation" in doc[0]):
        yield from enumerate(doc)
    else:
        yield 0, doc


def iter_rows(path: Path, rank: int = 0, world: int = 1, max_row_bytes: int = MAX_ROW_BYTES
              ) -> Iterator[tuple[int, Any]]:
    """The rows of one input; with world > 1 only rows i ≡ rank (mod world) (JSONL lines are skipped unparsed).
    A JSONL line or JSON document over `max_row_bytes` is a RowError("row_too_large")."""
    name = path.name
    if name.endswith(".jsonl.zst"):
        return _zstd_lines(path, rank, world, max_row_bytes)
    if name.endswith(".jsonl"):
        return _lines_of(path, rank, world, max_row_bytes)
    rows = (_dataset_rows(path) if is_saved_dataset(path) else _parquet_rows(path) if name.endswith(".parquet")
            else _json_document(path, max_row_bytes))
    return ((i, r) for i, r in rows if i % world == rank)


def _lines_of(path: Path, rank: int, world: int, max_row_bytes: int) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        yield from _lines(split_lines(iter(lambda: f.read(_READ), b""), max_row_bytes), rank, world, max_row_bytes)


def input_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
