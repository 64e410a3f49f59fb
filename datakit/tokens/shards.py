"""Tokenized Parquet shards (schemas/token_shard.schema.json) and their manifest (schemas/token_manifest.schema.json).

A task writes `{rank:05d}.parquet` through a temporary name and renames it when complete, plus
`{rank:05d}.pack.json` with its packing counts; when every task is done the stage writes `manifest.json` with
the totals and the sha256 of every shard. `verify_manifest` checks a folder against its manifest before anything
reads it (an export of shards that changed since is refused).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq

from datakit import __version__
from datakit.io.records import write_text_atomic
from datakit.io.schemas import arrow_schema
from datakit.io.storage import arrow, as_path, replace
from datakit.tokens import arrow_buffers
from datakit.tokens.parquet_file import Column, ParquetFileWriter, column_kind

MANIFEST = "manifest.json"
LEDGER_DIR = "mixture"  # per-task ledgers of documents repeated or left out (schemas/mixture_ledger.schema.json)
VALID_DIR = "valid"  # the held-out validation split (by repository): its own shards, pack counts and manifest


class ManifestError(ValueError):
    pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with as_path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# How each column of a shard is stored (datakit/tokens/parquet_file.py): the ids PLAIN + zstd; the loss mask
# dictionary-encoded with its values as indices (a page is a few RLE runs, nothing to compress); `source` a
# dictionary (a few names repeat; sample ids are unique: plain); min/max statistics on the per-segment columns only
# (a token column's min/max filters nothing).
_STORAGE = {"input_ids": {}, "loss_mask": {"dictionary": True, "codec": "none"},
            "source": {"dictionary": True, "statistics": True}}
COLUMNS = [Column(f.name, column_kind(f), **_STORAGE.get(f.name, {"statistics": True}))  # kinds from the schema
           for f in arrow_schema("token_shard")]
PAGE_VALUES = 1 << 19  # a data page holds the whole rows that fit 512 Ki token values (2 MiB of ids before zstd)


class ShardWriter:
    """Writes PackedRows to one Parquet file, atomically: `path.tmp` is renamed to `path` on close. The rows of a
    row group are copied into one block per token column and written by `ParquetFileWriter` (levels as RLE runs
    per row, no per-token Python object and no Arrow table)."""

    def __init__(self, path: str | Path, row_group_rows: int = 64):
        self.path = as_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self.schema = arrow_schema("token_shard")
        self._sink = self._tmp.open("wb")
        self._writer = None  # opened with the first row: its pages are sized by the row length
        self.row_group_rows = row_group_rows
        self._rows: list[tuple] = []  # per row of the group: doc_lens, source, sample_ids, chunk_index, padding, repeat
        # the group's tokens, a row per line: copied in, so a written row is freed; reused from group to group
        # (written when `_flush` returns), so no fresh 10 MB to page in per group
        self._ids = self._mask = None
        self._lent: tuple[np.ndarray, np.ndarray] | None = None  # the block row `row_buffer` handed out last

    def _file(self, row_len: int) -> ParquetFileWriter:
        if self._writer is None:
            self._writer = ParquetFileWriter(self._sink, COLUMNS, self.schema, max(1, PAGE_VALUES // max(1, row_len)),
                                             created_by=f"datakit version {__version__}")
        return self._writer

    def _block_for(self, n: int) -> None:
        """The group's blocks hold rows of `n` tokens (the group so far written first if its rows are longer or
        shorter: never from the Packer)."""
        if self._rows and n != self._ids.shape[1]:
            self._flush()
        if self._ids is None or self._ids.shape[1] != n:
            self._ids = np.empty((self.row_group_rows, n), np.int32)
            self._mask = np.empty((self.row_group_rows, n), np.uint8)

    def row_buffer(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, mask) arrays the next row of `n` tokens is stored in, for the Packer to build it there
        (`Packer(row_buffer=...)`): its `write` then copies nothing. Valid until that row is written."""
        self._block_for(n)
        i = len(self._rows)
        self._lent = (self._ids[i], self._mask[i])
        return self._lent

    def write(self, row) -> None:
        n = len(row.input_ids)
        lent, self._lent = self._lent, None
        if lent is not None and row.input_ids is lent[0] and row.loss_mask is lent[1]:
            i = len(self._rows)  # built in place (row_buffer): already in the block
        else:
            self._block_for(n)
            i = len(self._rows)
            self._ids[i] = row.input_ids
            self._mask[i] = row.loss_mask
        self._rows.append((row.doc_lens, row.source, row.sample_ids, row.chunk_index, row.padding,
                           row.repeat or [0] * len(row.sample_ids)))
        if len(self._rows) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        rows, n = self._rows, len(self._rows)
        self._rows = []
        doc_lens, source, sample_ids, chunk_index, padding, repeat = zip(*rows)

        def flat(lists):  # (values, row lengths) of a per-segment int column
            lengths = [len(x) for x in lists]
            return (np.concatenate(lists) if sum(lengths) else np.zeros(0, np.int32)), lengths

        self._file(self._ids.shape[1]).write_row_group({
            "input_ids": self._ids[:n], "doc_lens": flat(doc_lens), "loss_mask": self._mask[:n], "source": source,
            "sample_ids": sample_ids, "chunk_index": flat(chunk_index), "padding": padding, "repeat": flat(repeat),
        }, n)

    def close(self) -> None:
        self._flush()
        self._file(1).close()  # a shard without rows: a valid file of no row groups
        self._sink.close()
        replace(self._tmp, self.path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self._sink.close()
            self._tmp.unlink(missing_ok=True)


def iter_rows(path: str | Path, batch_rows: int = 64) -> Iterator[dict]:
    """Rows of a shard as dicts of numpy arrays / lists."""
    src, fs = arrow(path)
    pf = pq.ParquetFile(src, filesystem=fs)
    for batch in pf.iter_batches(batch_size=batch_rows):
        ids = batch.column("input_ids")
        mask = batch.column("loss_mask")
        repeat = batch.column("repeat") if "repeat" in batch.schema.names else None  # shards before the field
        for i in range(batch.num_rows):
            yield {
                "input_ids": ids[i].values.to_numpy(zero_copy_only=False),
                "loss_mask": mask[i].values.to_numpy(zero_copy_only=False),
                "doc_lens": batch.column("doc_lens")[i].as_py(),
                "source": batch.column("source")[i].as_py(),
                "sample_ids": batch.column("sample_ids")[i].as_py(),
                "chunk_index": batch.column("chunk_index")[i].as_py(),
                "padding": batch.column("padding")[i].as_py(),
                "repeat": repeat[i].as_py() if repeat is not None else [0] * len(batch.column("sample_ids")[i]),
            }


def row_documents(row: dict) -> list[dict]:
    """A row back into its document segments: sample_id, source, chunk_index, ids, loss_mask (padding dropped)."""
    docs = []
    start = 0
    for k, length in enumerate(row["doc_lens"][: len(row["sample_ids"])]):
        docs.append({
            "sample_id": row["sample_ids"][k],
            "source": row["source"][k],
            "chunk_index": row["chunk_index"][k],
            "ids": row["input_ids"][start:start + length],
            "loss_mask": row["loss_mask"][start:start + length],
        })
        start += length
    return docs


def iter_documents(paths: Iterable[str | Path]) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """Whole documents (chunks re-joined, in chunk order) from shard files: (sample_id, source, ids, mask).

    All chunks of a sample are in one shard (one task packs its own documents); within a shard they are
    gathered in order of first appearance."""
    for path in paths:
        parts: dict[str, list] = {}
        for row in iter_rows(path):
            for d in row_documents(row):
                parts.setdefault(d["sample_id"], []).append(d)
        for sample_id, chunks in parts.items():
            chunks.sort(key=lambda d: d["chunk_index"])
            if [c["chunk_index"] for c in chunks] != list(range(len(chunks))):
                raise ManifestError(f"{path}: sample {sample_id} has chunks {[c['chunk_index'] for c in chunks]}")
            yield (sample_id, chunks[0]["source"], np.concatenate([c["ids"] for c in chunks]),
                   np.concatenate([c["loss_mask"] for c in chunks]))


def write_manifest(folder: Path, shard_names: list[str], tokenizer, seq_len: int, parts: list[dict],
                   mixture: dict, recipe_hash: str | None, fmt: str = "parquet-packed",
                   extra: dict | None = None) -> dict:
    """Add up the per-task packing counts and hash the files; write manifest.json.

    `mixture` maps a source to its SourceMix. Per source the manifest reports the requested budget (unique
    tokens), the unique tokens and documents taken (before up-sampling), the tokens, documents and chunks in the
    shards (after), the factor, and from the ledgers (`mixture/*.parquet`) how many documents were repeated or
    left out (over budget / down-sampled) and their tokens; the ledger files are listed with their sha256.
    `extra` adds top-level fields (`split`, `repos`, `validation`: see token_manifest.schema.json)."""
    from datakit.tokens.mixture import effective

    per_source: dict[str, dict] = {}
    for part in parts:
        for src, counts in part["per_source"].items():
            acc = per_source.setdefault(src, {})
            for k, v in counts.items():
                acc[k] = acc.get(k, 0) + v
    ledgers = sorted((folder / LEDGER_DIR).glob("*.parquet"))
    for path in ledgers:
        table = arrow_buffers.read_table(path, columns=["source", "tokens", "decision"]).to_pydict()
        for src, tokens, decision in zip(table["source"], table["tokens"], table["decision"]):
            acc = per_source.setdefault(src, {})
            key = "repeated" if decision == "repeated" else "left_out"
            acc[f"{key}_documents"] = acc.get(f"{key}_documents", 0) + 1
            acc[f"{key}_tokens"] = acc.get(f"{key}_tokens", 0) + tokens
            if decision != "repeated":
                acc[f"{decision}_documents"] = acc.get(f"{decision}_documents", 0) + 1
    for src in set(per_source) | set(mixture):
        acc = per_source.setdefault(src, {})
        for k in ("tokens", "documents", "chunks", "unique_tokens", "unique_documents", "repeated_documents",
                  "repeated_tokens", "left_out_documents", "left_out_tokens"):
            acc.setdefault(k, 0)
        spec = effective(mixture, src)
        acc["requested_tokens"] = spec.tokens
        acc["upsample"] = spec.upsample
    tokens = sum(p["tokens"] for p in parts)
    padding = sum(p["padding_tokens"] for p in parts)
    manifest = {
        "format": fmt,
        "tokenizer": {"name": tokenizer.name, "vocab_hash": tokenizer.vocab_hash, "engine": tokenizer.engine,
                      "engine_version": getattr(tokenizer, "engine_version", None),
                      "vocab_size": tokenizer.vocab_size},
        "seq_len": seq_len,
        "eod_id": tokenizer.eod_id,
        "rows": sum(p["rows"] for p in parts),
        "documents": sum(p["documents"] for p in parts),
        "tokens": tokens,
        "padding_tokens": padding,
        "padding_ratio": padding / (tokens + padding) if tokens + padding else 0.0,
        "truncated_tokens": 0,
        "per_source": dict(sorted(per_source.items())),
        "upsampling": {src: acc["upsample"] for src, acc in sorted(per_source.items())},
        "mixture": {
            "copy_gap": max((p.get("copy_gap", 0) for p in parts), default=0),
            "copies_released_early": sum(p.get("copies_released_early", 0) for p in parts),
            "min_copy_distance": min((p["min_copy_distance"] for p in parts if p.get("min_copy_distance") is not None),
                                     default=None),
            "ledger": {f"{LEDGER_DIR}/{p.name}": file_sha256(p) for p in ledgers},
        },
        "files": {name: file_sha256(folder / name) for name in sorted(shard_names)},
        "datakit_version": __version__,
        "recipe_hash": recipe_hash,
        **(extra or {}),
    }
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_manifest(folder: str | Path) -> dict:
    """The manifest of a shard folder, after checking that exactly its files are there with their sha256 (and,
    when it has a validation split, the same of `valid/` against the manifest it names)."""
    folder = as_path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST} (is this a finished tokens output?)")
    manifest = json.loads(path.read_text())
    present = sorted(p.name for p in folder.glob("*.parquet"))
    if present != sorted(manifest["files"]):
        raise ManifestError(f"{folder}: shard files {present} differ from the manifest's {sorted(manifest['files'])}")
    for name, digest in manifest["files"].items():
        if file_sha256(folder / name) != digest:
            raise ManifestError(f"{folder}/{name}: sha256 differs from the manifest (changed after it was written)")
    valid = manifest.get("validation")
    if valid:
        if file_sha256(folder / valid["manifest"]) != valid["sha256"]:
            raise ManifestError(f"{folder}/{valid['manifest']}: sha256 differs from the manifest's validation entry")
        verify_manifest(folder / VALID_DIR)
    return manifest


def write_valid_manifest(folder: Path, tokenizer, seq_len: int, validation, recipe_hash: str | None) -> dict:
    """Write `valid/manifest.json` over the validation split's shards (every source at factor 1: the split is
    outside the mixture) and return the `validation` entry of the train manifest that names it."""
    from datakit.tokens.mixture import SourceMix

    vdir = folder / VALID_DIR
    parts = [json.loads(p.read_text()) for p in sorted(vdir.glob("*.pack.json"))]
    repos = sorted({r for p in parts for r in p.get("repos", [])})
    sources = {src for p in parts for src in p["per_source"]}
    vm = write_manifest(vdir, sorted(p.name for p in vdir.glob("*.parquet")), tokenizer, seq_len, parts,
                        {src: SourceMix(upsample=1.0) for src in sources}, recipe_hash,
                        extra={"split": "valid", "repos": repos})
    return {"manifest": f"{VALID_DIR}/{MANIFEST}", "sha256": file_sha256(vdir / MANIFEST),
            "fraction": validation.fraction, "seed": validation.seed, "listed_repos": sorted(validation.repos),
            "without_repo": validation.without_repo, "repositories": len(repos), "rows": vm["rows"],
            "documents": vm["documents"], "tokens": vm["tokens"]}
