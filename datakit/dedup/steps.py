"""The dedup stage's steps, one per phase (datakit/dedup/stages.py runs them in order):

1. `DedupKeys` + `SampleMinhashSignature` (N tasks): per sample its group, exact hash and keep key (a sidecar
   `keys/{rank:05d}.parquet`, row = the sample's index in the task) and datatrove's MinHash signature of its near
   text, salted by group so that samples of different groups never share a bucket.
2. datatrove's `MinhashDedupBuckets` (one task per bucket): pairs that share a bucket signature.
3. datatrove's `MinhashDedupCluster` + `ChooseKept` (one task): near clusters joined with the exact groups; in each
   component the copy with the smallest `keep_key` is kept. `ChooseKept` rewrites datatrove's `{rank:06d}.remove`
   files with that choice (datatrove's own keeps whichever root its union-by-size found) and writes
   `decisions/{rank:05d}.parquet` (idx, id, kept id, reason).
4. `DedupFilter` (N tasks, the same reader as phase 1): datatrove's `MinhashDedupFilter` drops the removed
   indices; each dropped sample is counted per source and copied to `filtered/` with the kept id.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashDedupFilter, MinhashDedupSignature
from datatrove.utils.text import simplify_text
import xxhash

from datakit.dedup.content import dedup_texts, exact_hash, group, keep_key
from datakit.io.records import skip_pyarrow_pandas_probe
from datakit.pipeline.step import CountingStep

KEYS_SCHEMA = pa.schema([("idx", pa.uint32()), ("id", pa.string()), ("group", pa.string()), ("exact", pa.string()),
                         ("key", pa.string())])
DECISIONS_SCHEMA = pa.schema([("idx", pa.uint32()), ("id", pa.string()), ("kept", pa.string()),
                              ("reason", pa.string()), ("component", pa.uint32())])
_GROUP_SEP = "\x00"


def _replace(path: Path, write) -> None:
    """Write through a temporary name, then rename: a killed task leaves no half file under the real name (and a
    leftover dot-file, which pyarrow's folder reads skip, is overwritten by the rerun)."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def _write_table(table: pa.Table, path: Path) -> None:
    _replace(path, lambda tmp: pq.write_table(table, tmp))


def source_of(row: dict) -> str:
    from datakit.tokens.mixture import SOURCE_BY_KIND

    return SOURCE_BY_KIND.get(row.get("kind"), "other")


class DedupKeys(PipelineStep):
    """Writes each sample's group, exact hash and keep key; passes it on with `text` = group + NUL + near text."""

    name = "🔑 dedup keys"
    type = "🫂 - DEDUP"

    def __init__(self, keys_folder: str):
        super().__init__()
        self.keys_folder = keys_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        rows = {name: [] for name in KEYS_SCHEMA.names}
        for idx, doc in enumerate(data):
            record = doc.metadata
            exact, near = dedup_texts(record)
            g = group(record)
            for name, value in zip(KEYS_SCHEMA.names, (idx, record["id"], g, exact_hash(g, exact),
                                                       json.dumps(keep_key(record)))):
                rows[name].append(value)
            doc.text = g + _GROUP_SEP + near
            yield doc
        Path(self.keys_folder).mkdir(parents=True, exist_ok=True)
        skip_pyarrow_pandas_probe()
        _write_table(pa.table(rows, schema=KEYS_SCHEMA), Path(self.keys_folder) / f"{rank:05d}.parquet")


def _xxhash64(text: str) -> int:
    return xxhash.xxh64_intdigest(text.encode("utf-8"))


# odd 64-bit multipliers, one per position in an n-gram (wrapping arithmetic): n-gram hash = Σ word hash × K[i]
_POSITION_KEYS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                           0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                          dtype=np.uint64)


class SampleMinhashSignature(MinhashDedupSignature):
    """datatrove's signature step on `group NUL near-text`, with its shingling vectorised: the same n-gram sets
    (the word tokenizer's words of `simplify_text`, n at a time), each n-gram hashed as a wrapping linear
    combination of its words' xxh64 (each distinct word hashed once) rather than xxh64 of the joined n-gram
    (datatrove's path also passes `str`, which xxhash 3.x refuses), duplicates dropped before the signature. The
    shingles are XORed with a hash of the group: a bijection, so Jaccard within a group is unchanged, and across
    groups shingles coincide only by chance. ASCII texts skip the diacritics pass (a no-op on them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.n_grams > len(_POSITION_KEYS):
            raise ValueError(f"n_grams must be ≤ {len(_POSITION_KEYS)}, got {self.config.n_grams}")
        self._ascii_norm = dataclasses.replace(self.config.norm_config, norm_unicode_diacritics=False)

    def get_shingles(self, text: str) -> np.ndarray:
        g, _, body = text.partition(_GROUP_SEP)
        norm = self._ascii_norm if body.isascii() else self.config.norm_config
        words = self.word_tokenizer.word_tokenize(simplify_text(body, norm))
        n = self.config.n_grams
        if len(words) < n:
            return np.empty((0, 1), dtype=np.uint64)
        codes: dict[str, int] = {}
        index = np.fromiter((codes.setdefault(w, len(codes)) for w in words), dtype=np.int64, count=len(words))
        word_hash = np.fromiter((xxhash.xxh64_intdigest(w.encode("utf-8")) for w in codes), dtype=np.uint64,
                                count=len(codes))[index]
        count = len(words) - n + 1
        with np.errstate(over="ignore"):
            shingles = np.zeros(count, dtype=np.uint64)
            for i in range(n):
                shingles += word_hash[i:i + count] * _POSITION_KEYS[i]
        return (np.unique(shingles) ^ np.uint64(_xxhash64(g))).reshape((-1, 1))


class EveryBand(PipelineStep):
    """datatrove's MinhashDedupBuckets for every band in turn, in one task (as `bands` tasks would run it)."""

    name = "🎯 MinHash stage 2, every band"
    type = "🫂 - DEDUP"

    def __init__(self, step: PipelineStep, bands: int):
        super().__init__()
        self.step, self.bands = step, bands

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for band in range(self.bands):
            self.step.run(None, band, self.bands)


class ChooseKept(PipelineStep):
    """One task, after datatrove's MinhashDedupCluster: joins its clusters with the exact-hash groups (union-find)
    and keeps, in each component, the copy with the smallest keep key."""

    name = "🏅 choose kept"
    type = "🫂 - DEDUP"

    def __init__(self, keys_folder: str, clusters_folder: str, decisions_folder: str, tasks: int):
        super().__init__()
        self.keys_folder, self.clusters_folder = Path(keys_folder), Path(clusters_folder)
        self.decisions_folder, self.tasks = Path(decisions_folder), tasks

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        keys = [pq.read_table(self.keys_folder / f"{r:05d}.parquet") for r in range(self.tasks)]
        offsets = np.cumsum([0] + [t.num_rows for t in keys])
        parent = list(range(int(offsets[-1])))

        def find(x: int) -> int:
            root = x
            while parent[root] != root:
                root = parent[root]
            while parent[x] != root:
                parent[x], x = root, parent[x]
            return root

        def union(a: int, b: int) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        exact = [h for t in keys for h in t.column("exact").to_pylist()]
        first: dict[str, int] = {}
        for node, h in enumerate(exact):
            if first.setdefault(h, node) != node:
                union(first[h], node)
        del first
        cluster_first: dict[int, int] = {}
        for path in sorted(self.clusters_folder.glob("*.clusters")):  # (doc index, cluster id) pairs, per task
            file_rank = int(path.name.split(".")[0])
            pairs = np.fromfile(path, dtype="<u4").reshape(-1, 2)
            for doc, cluster in pairs.tolist():
                node = int(offsets[file_rank]) + doc
                if cluster_first.setdefault(cluster, node) != node:
                    union(cluster_first[cluster], node)
        members: dict[int, list[int]] = {}  # root (a component's smallest node) → its nodes, for components of 2+
        for node in range(len(parent)):
            root = find(node)
            if root != node:
                members.setdefault(root, [root]).append(node)
        ids = [i for t in keys for i in t.column("id").to_pylist()]
        key_col = [k for t in keys for k in t.column("key").to_pylist()]
        task_of = np.searchsorted(offsets, np.arange(len(parent)), side="right") - 1
        out = [{name: [] for name in DECISIONS_SCHEMA.names} for _ in range(self.tasks)]
        for component, (root, nodes) in enumerate(sorted(members.items())):
            kept = min(nodes, key=lambda n: (json.loads(key_col[n]), n))
            self.stat_update("components")
            self.stat_update("component_docs", value=len(nodes))
            for node in sorted(nodes):
                if node == kept:
                    continue
                reason = "exact_duplicate" if exact[node] == exact[kept] else "near_duplicate"
                self.stat_update(reason)
                r = int(task_of[node])
                for name, value in zip(DECISIONS_SCHEMA.names, (node - int(offsets[r]), ids[node], ids[kept],
                                                                reason, component)):
                    out[r][name].append(value)
        for folder in (self.decisions_folder, self.clusters_folder):  # no clusters folder when near is off
            folder.mkdir(parents=True, exist_ok=True)
        skip_pyarrow_pandas_probe()
        for r, rows in enumerate(out):
            _write_table(pa.table(rows, schema=DECISIONS_SCHEMA), self.decisions_folder / f"{r:05d}.parquet")
            # datatrove's filter reads `{rank:06d}.remove`: sorted uint32 indices of the documents to drop
            _replace(self.clusters_folder / f"{r:06d}.remove",
                     lambda tmp, idx=sorted(rows["idx"]): tmp.write_bytes(b"".join(struct.pack("<I", i) for i in idx)))
        return None


class _Excluded:
    """The exclusion writer handed to datatrove's MinhashDedupFilter: each dropped document goes to `drop`."""

    def __init__(self, drop):
        self.drop = drop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, doc, rank: int = 0) -> None:
        self.drop(doc, rank)


class DedupFilter(CountingStep):
    """Phase 4: datatrove's MinhashDedupFilter with datakit's counting. Units are the sources (agentless,
    commit_bundles, synthetic, sft): read = written + filtered (exact_duplicate, near_duplicate), and each filtered
    sample is in `filtered/` with `detail` = "kept <id>"."""

    name = "🫂 dedup filter"
    type = "🫂 - DEDUP"

    def __init__(self, clusters_folder: str, decisions_folder: str, quarantine_dir: str):
        super().__init__("dedup", quarantine_dir)
        self.clusters_folder, self.decisions_folder = clusters_folder, decisions_folder

    def run(self, data, rank: int = 0, world_size: int = 1):
        table = pq.read_table(f"{self.decisions_folder}/{rank:05d}.parquet")
        decided = {i: (kept, reason) for i, kept, reason in zip(
            table.column("idx").to_pylist(), table.column("kept").to_pylist(), table.column("reason").to_pylist())}
        current = [-1]

        def numbered():
            for idx, doc in enumerate(data):
                current[0] = idx
                self.read(source_of(doc.metadata))
                yield doc

        def drop(doc, _rank):
            kept, reason = decided.pop(current[0])
            self.filter_out(source_of(doc.metadata), reason, record=doc.metadata, detail=f"kept {kept}", rank=rank)

        inner = MinhashDedupFilter(self.clusters_folder, exclusion_writer=_Excluded(drop))
        try:
            for doc in inner.run(numbered(), rank, world_size):
                self.written(source_of(doc.metadata))
                yield doc
        finally:
            self.close_outputs()
        if decided:
            raise RuntimeError(f"dedup: task {rank} read fewer samples than phase 1 did ({len(decided)} decided "
                               "ones never came): the input changed between phases; rerun the stage with --force")
