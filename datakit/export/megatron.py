"""Megatron indexed dataset (`MMIDIDX`, version 1) writer and strict reader, and the blend file (DESIGN §6).

The format is megatron-core's `megatron/core/datasets/indexed_dataset.py` (`_IndexWriter` / `_IndexReader`,
`IndexedDatasetBuilder`); megatron-core's `IndexedDataset(prefix)` and `GPTDataset` read what this module writes
(tests/test_megatron.py). A dataset is two files next to each other, `PREFIX.bin` and `PREFIX.idx`.

`.bin`: the tokens of every sequence, concatenated, in the token dtype (little-endian), nothing else.

`.idx` (all integers little-endian; N = sequence count, D = document-index count):

| offset    | size | type     | field                                                                      |
|-----------|------|----------|----------------------------------------------------------------------------|
| 0         | 9    | bytes    | magic `b"MMIDIDX\\x00\\x00"`                                              |
| 9         | 8    | `<Q`     | version, always 1                                                          |
| 17        | 1    | `<B`     | token dtype code (megatron's `DType`): 1 uint8, 2 int8, 3 int16, 4 int32,  |
|           |      |          | 5 int64, 6 float64, 7 float32, 8 uint16; datakit writes 4                  |
| 18        | 8    | `<Q`     | N, the number of sequences                                                 |
| 26        | 8    | `<Q`     | D, the length of the document-index array (= documents + 1)                |
| 34        | 4·N  | int32[N] | sequence lengths, in tokens                                                |
| 34+4N     | 8·N  | int64[N] | sequence pointers: byte offset of each sequence in `.bin`                  |
|           |      |          | (0, then the cumulative lengths × itemsize)                                |
| 34+12N    | 8·D  | int64[D] | document indices: the sequence index where each document starts,          |
|           |      |          | starting with 0 and ending with N                                          |
| 34+12N+8D |      |          | end of file (a multimodal dataset adds int8[N] sequence modes; not here)   |

datakit writes int32 tokens (code 4): Qwen2.5's vocabulary (151,665 ids, padded 152,064) does not fit uint16,
which megatron only uses for vocabularies under 65,500. `GPTDataset` samples windows over *sequences* (it splits
train/valid/test by sequence and concatenates them in shuffled order); the documents matter to BERT/T5-style
datasets and to tools that count samples. `MMapIndexedWriter` writes one document per `end_document()`.

The blend file (`write_blend`) holds ``w1 prefix1 w2 prefix2 …`` on one line with normalised weights: pass it as
``--data-path $(cat blend.txt)`` or with Megatron-LM's ``--data-args-path blend.txt``.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from datakit.io.storage import as_path, fsync, is_url, replace

__all__ = [
    "DTYPE_CODES",
    "INDEX_HEADER",
    "INDEX_VERSION",
    "MMapIndexedWriter",
    "check_vocab_fits",
    "read_index",
    "write_blend",
]

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
_HEADER_SIZE = 9 + 8 + 1 + 8 + 8  # 34
# megatron-core's DType enum
DTYPE_CODES: dict[type, int] = {
    np.uint8: 1,
    np.int8: 2,
    np.int16: 3,
    np.int32: 4,
    np.int64: 5,
    np.float64: 6,
    np.float32: 7,
    np.uint16: 8,
}
_CODE_DTYPES = {code: np.dtype(t) for t, code in DTYPE_CODES.items()}
_INT_CODES = {code for code, dt in _CODE_DTYPES.items() if dt.kind in "iu"}


def _token_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.type not in DTYPE_CODES or dt.kind not in "iu":
        raise ValueError(
            f"token dtype {dt} is not one megatron's indexed dataset stores as integers "
            f"(use one of: {', '.join(sorted(np.dtype(t).name for t in DTYPE_CODES if np.dtype(t).kind in 'iu'))})"
        )
    return dt


def _paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    p = _name(prefix)
    return as_path(p + ".bin"), as_path(p + ".idx")


def _name(prefix) -> str:
    """A prefix as text: a local path, or a URL (datakit.io.storage: an export onto object storage)."""
    return str(prefix) if is_url(prefix) else os.fspath(prefix)


def check_vocab_fits(vocab_size: int, dtype: Any) -> None:
    """ValueError if token ids 0..vocab_size-1 do not all fit `dtype` (e.g. 151,665 ids in uint16)."""
    dt = _token_dtype(dtype)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    top = np.iinfo(dt).max
    if vocab_size - 1 > top:
        raise ValueError(
            f"a vocabulary of {vocab_size} ids does not fit {dt.name} (largest id {top}); use int32"
        )


class MMapIndexedWriter:
    """Write `prefix.bin` / `prefix.idx` (MMIDIDX v1), atomically.

    Tokens go to `prefix.bin.tmp` as they are added; `finalize()` writes `prefix.idx.tmp`, fsyncs both and renames
    them into place (`.bin` first, then `.idx`), so a reader never sees a half-written pair under the final names.
    Used as a context manager it finalizes on a clean exit and, on an exception, removes the temporary files and
    leaves any previous `prefix.bin/.idx` untouched.

    `add_sequence` appends one sequence; `end_document` closes a document after the last added sequence;
    `add_document` adds several sequences as one document. Sequences added after the last `end_document` are
    closed as a document by `finalize`. Pass `vocab_size` to check it fits `dtype` before anything is written.
    """

    def __init__(self, prefix: str | os.PathLike, dtype: Any = np.int32, *, vocab_size: int | None = None) -> None:
        self.dtype = _token_dtype(dtype)
        if vocab_size is not None:
            check_vocab_fits(vocab_size, self.dtype)
        self.vocab_size = vocab_size
        self.prefix = _name(prefix)
        self.bin_path, self.idx_path = _paths(self.prefix)
        self._bin_tmp = self.bin_path.with_name(self.bin_path.name + ".tmp")
        self._idx_tmp = self.idx_path.with_name(self.idx_path.name + ".tmp")
        self.bin_path.parent.mkdir(parents=True, exist_ok=True)
        self._bin = self._bin_tmp.open("wb")
        self._bin_hash = hashlib.sha256()
        self._lengths: list[int] = []
        self._doc_indices: list[int] = [0]
        self._tokens = 0
        self._result: dict[str, Any] | None = None
        self._closed = False

    # -- context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> MMapIndexedWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    # -- writing ---------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.prefix}: writer is already finalized or aborted")

    def add_sequence(self, ids: np.ndarray) -> None:
        """Append one sequence of token ids (1-D, non-empty, every id within the dtype and the vocabulary)."""
        self._check_open()
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"a sequence must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError("empty sequence: megatron's GPTDataset cannot sample from zero-length sequences")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"token ids must be integers, got {arr.dtype}")
        if arr.dtype != self.dtype:
            lo, hi = int(arr.min()), int(arr.max())
            info = np.iinfo(self.dtype)
            if lo < info.min or hi > info.max:
                raise ValueError(f"token ids {lo}..{hi} do not fit {self.dtype.name}")
        if self.vocab_size is not None:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(f"token ids {lo}..{hi} outside the vocabulary 0..{self.vocab_size - 1}")
        data = np.ascontiguousarray(arr, dtype=self.dtype.newbyteorder("<")).tobytes()
        self._bin.write(data)
        self._bin_hash.update(data)
        self._lengths.append(int(arr.size))
        self._tokens += int(arr.size)

    def end_document(self) -> None:
        """Mark a document boundary after the last added sequence (a document holds at least one sequence)."""
        self._check_open()
        if len(self._lengths) == self._doc_indices[-1]:
            raise ValueError("end_document() without a sequence since the last document boundary")
        self._doc_indices.append(len(self._lengths))

    def add_document(self, sequences: Sequence[np.ndarray]) -> None:
        """Add several sequences as one document."""
        if len(sequences) == 0:
            raise ValueError("add_document() needs at least one sequence")
        for seq in sequences:
            self.add_sequence(seq)
        self.end_document()

    def finalize(self) -> dict[str, Any]:
        """Write the index and move both files into place. Returns (and on a second call, returns again)
        ``{"sequences", "documents", "tokens", "bin_sha256", "idx_sha256"}``.

        A writer given no sequence gives a valid empty pair (0 sequences, document indices ``[0]``), but
        megatron-core cannot mmap an empty `.bin`: leave such a prefix out of the blend."""
        if self._result is not None:
            return self._result
        self._check_open()
        if len(self._lengths) != self._doc_indices[-1]:
            self._doc_indices.append(len(self._lengths))
        try:
            n = len(self._lengths)
            lengths = np.asarray(self._lengths, dtype="<i4")
            pointers = np.zeros(n, dtype="<i8")
            if n > 1:
                np.cumsum(lengths[:-1].astype("<i8") * self.dtype.itemsize, out=pointers[1:])
            doc_indices = np.asarray(self._doc_indices, dtype="<i8")
            index = b"".join(
                [
                    INDEX_HEADER,
                    struct.pack("<Q", INDEX_VERSION),
                    struct.pack("<B", DTYPE_CODES[self.dtype.type]),
                    struct.pack("<Q", n),
                    struct.pack("<Q", len(doc_indices)),
                    lengths.tobytes(),
                    pointers.tobytes(),
                    doc_indices.tobytes(),
                ]
            )
            self._bin.flush()
            fsync(self._bin)
            self._bin.close()
            with self._idx_tmp.open("wb") as f:
                f.write(index)
                f.flush()
                fsync(f)
            replace(self._bin_tmp, self.bin_path)
            replace(self._idx_tmp, self.idx_path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._result = {
            "sequences": n,
            "documents": len(doc_indices) - 1,
            "tokens": self._tokens,
            "bin_sha256": self._bin_hash.hexdigest(),
            "idx_sha256": hashlib.sha256(index).hexdigest(),
        }
        return self._result

    def abort(self) -> None:
        """Drop what was written (the temporary files); the final paths are left as they were."""
        self._closed = True
        if not self._bin.closed:
            self._bin.close()
        for tmp in (self._bin_tmp, self._idx_tmp):
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


def read_index(prefix: str | os.PathLike, *, check_bin: bool = True) -> dict[str, Any]:
    """Read and strictly validate `prefix.idx` (and, with `check_bin`, the size of `prefix.bin`).

    Checks the magic, the version (1), the dtype code, that the file is exactly as long as its counts say, that
    the lengths are non-negative, that the pointers are the cumulative byte offsets, and that the document indices
    start at 0, never decrease and end at the sequence count. Raises ValueError naming the file and what is wrong.
    Returns ``{"version", "dtype", "dtype_code", "sequences", "documents", "tokens", "sequence_lengths",
    "sequence_pointers", "document_indices"}`` (``documents`` = len(document_indices) - 1).
    """
    bin_path, idx_path = _paths(prefix)
    if not idx_path.is_file():
        raise ValueError(f"{idx_path}: no such index file")
    data = idx_path.read_bytes()
    where = str(idx_path)
    if len(data) < _HEADER_SIZE:
        raise ValueError(f"{where}: truncated header ({len(data)} bytes, need {_HEADER_SIZE})")
    if data[:9] != INDEX_HEADER:
        raise ValueError(f"{where}: bad magic {data[:9]!r}, expected {INDEX_HEADER!r}")
    (version,) = struct.unpack_from("<Q", data, 9)
    if version != INDEX_VERSION:
        raise ValueError(f"{where}: unsupported version {version}, expected {INDEX_VERSION}")
    (code,) = struct.unpack_from("<B", data, 17)
    if code not in _CODE_DTYPES:
        raise ValueError(f"{where}: unknown dtype code {code} (known: {sorted(_CODE_DTYPES)})")
    if code not in _INT_CODES:
        raise ValueError(f"{where}: dtype code {code} ({_CODE_DTYPES[code].name}) is not an integer token dtype")
    dtype = _CODE_DTYPES[code]
    n, d = struct.unpack_from("<QQ", data, 18)
    expected = _HEADER_SIZE + 4 * n + 8 * n + 8 * d
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "trailing bytes"
        raise ValueError(
            f"{where}: {kind}: {len(data)} bytes, but {n} sequences and {d} document indices need {expected}"
        )
    off = _HEADER_SIZE
    lengths = np.frombuffer(data, dtype="<i4", count=n, offset=off).astype(np.int32)
    pointers = np.frombuffer(data, dtype="<i8", count=n, offset=off + 4 * n).astype(np.int64)
    doc_indices = np.frombuffer(data, dtype="<i8", count=d, offset=off + 12 * n).astype(np.int64)
    if n and lengths.min() < 0:
        i = int(np.flatnonzero(lengths < 0)[0])
        raise ValueError(f"{where}: sequence {i} has negative length {int(lengths[i])}")
    expected_ptr = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=expected_ptr[1:])
    if not np.array_equal(pointers, expected_ptr):
        i = int(np.flatnonzero(pointers != expected_ptr)[0])
        raise ValueError(
            f"{where}: sequence pointer {i} is {int(pointers[i])}, expected {int(expected_ptr[i])} "
            f"(cumulative lengths × {dtype.itemsize} bytes)"
        )
    if d < 1:
        raise ValueError(f"{where}: empty document index (needs at least [0])")
    if doc_indices[0] != 0:
        raise ValueError(f"{where}: document indices start at {int(doc_indices[0])}, expected 0")
    if doc_indices[-1] != n:
        raise ValueError(f"{where}: document indices end at {int(doc_indices[-1])}, expected the sequence count {n}")
    if d > 1 and np.any(np.diff(doc_indices) < 0):
        i = int(np.flatnonzero(np.diff(doc_indices) < 0)[0]) + 1
        raise ValueError(f"{where}: document index {i} ({int(doc_indices[i])}) is smaller than the one before")
    tokens = int(lengths.sum(dtype=np.int64))
    if check_bin:
        if not bin_path.is_file():
            raise ValueError(f"{bin_path}: no such data file")
        size = bin_path.stat().st_size
        if size != tokens * dtype.itemsize:
            raise ValueError(
                f"{bin_path}: {size} bytes, but the index holds {tokens} tokens of {dtype.itemsize} bytes "
                f"({tokens * dtype.itemsize})"
            )
    return {
        "version": int(version),
        "dtype": dtype,
        "dtype_code": int(code),
        "sequences": int(n),
        "documents": int(d) - 1,
        "tokens": tokens,
        "sequence_lengths": lengths,
        "sequence_pointers": pointers,
        "document_indices": doc_indices,
    }


def write_blend(path: str | os.PathLike, entries: Sequence[tuple[float, str | os.PathLike]]) -> None:
    """Write ``w1 prefix1 w2 prefix2 …`` (one line) for Megatron's ``--data-path`` / ``--data-args-path``.

    Weights must be finite and >= 0 with a positive sum; they are normalised to sum to 1. Prefixes are written as
    given (relative or absolute), without `.bin`/`.idx`, and may not contain whitespace (Megatron splits on it).
    The file is written atomically (temporary file, then rename).
    """
    if not entries:
        raise ValueError("write_blend needs at least one (weight, prefix) entry")
    weights, prefixes = [], []
    for i, entry in enumerate(entries):
        try:
            w, p = entry
        except (TypeError, ValueError):
            raise ValueError(f"entry {i}: expected (weight, prefix), got {entry!r}") from None
        w = float(w)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"entry {i}: weight {w!r} must be finite and >= 0")
        p = os.fspath(p)
        if not p or any(c.isspace() for c in p):
            raise ValueError(f"entry {i}: prefix {p!r} is empty or contains whitespace")
        if p.endswith((".bin", ".idx")):
            raise ValueError(f"entry {i}: {p!r} looks like a file, give the prefix without .bin/.idx")
        weights.append(w)
        prefixes.append(p)
    total = math.fsum(weights)
    if total <= 0:
        raise ValueError("the weights sum to 0")
    text = " ".join(f"{w / total!r} {p}" for w, p in zip(weights, prefixes)) + "\n"
    from datakit.io.records import write_text_atomic

    write_text_atomic(path, text)
