"""Pipeline steps of the `tokens` stage: Samples → rendered token documents (with loss masks) → packed shards."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from datakit.io.records import FullRecords
from datakit.io.storage import arrow, as_path
from datakit.pipeline.memory import fewer_collections, release_freed_memory
from datakit.pipeline.step import CountingStep
from datakit.tokens.mixture import SOURCE_BY_KIND, Mixer, SourceMix, Validation, repo_of
from datakit.tokens.shards import LEDGER_DIR, VALID_DIR, ShardWriter

BATCH = 256  # samples encoded together (the engines release the GIL and batch internally)


def check_text(text: str) -> str | None:
    """Why a text cannot be tokenized as a training document, or None."""
    if not text:
        return "empty"
    if "\x00" in text:
        return "nul_byte"
    if not text.isascii():  # O(1) for str; only a non-ASCII text can hold a lone surrogate (worth a UTF-8 copy)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_surrogate"
    return None


def encodable_text(text, stable: bool = False) -> tuple[str | None, str | bytes]:
    """(why the text cannot be tokenized or None, what to encode). The reader hands texts on as UTF-8 bytes
    (`RecordReader(text_as_bytes=True)`): bytes `utf8.stable_texts` found to be an NFC text (`stable`) or ASCII
    go to the engine as they are (no str is ever made of them), any other is decoded (NFC needs a str; invalid
    UTF-8 → `invalid_utf8`). A str is checked as it is."""
    if stable:
        return None, text
    if isinstance(text, bytes):
        if not text:
            return "empty", text
        if b"\x00" in text:
            return "nul_byte", text
        if text.isascii():
            return None, text
        try:
            # valid UTF-8 decodes to no lone surrogate: nothing left to check (check_text would encode it again)
            return None, text.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid_utf8", text
    text = text or ""
    return check_text(text), text


# what the stage reads of a Sample (`RecordReader(columns=...)`): render, mixture, validation split; a rejected
# sample's other columns are read again for its quarantine record (`FullRecords`)
SAMPLE_COLUMNS = ("id", "kind", "text", "messages", "tools", "meta.repo", "source.repo")


def as_record(sample: dict) -> dict:
    """A sample as it is stored (its text a str), for the quarantine."""
    text = sample.get("text")
    return {**sample, "text": text.decode("utf-8", "replace")} if isinstance(text, bytes) else sample


# The loss mask of a plain document (all ones) as a read-only zero-stride view: no memory per token in the packing
# window (a fifth of its bytes) and no allocation per document; the packer copies it into each row.
_ONES = np.lib.stride_tricks.as_strided(np.ones(1, np.uint8), shape=(1 << 40,), strides=(0,), writeable=False)


def use_lean_arrow_pool() -> str:
    """Arrow allocates through its jemalloc pool from here on in this process (its default pool is mimalloc), or
    through malloc where this pyarrow has no jemalloc; returns the pool's name. In the tokens stage the Sample
    reader is what allocates through Arrow (the shard writer a few MB of pages at a time): mimalloc kept ~30 MiB
    more of the reader's freed batches than glibc after `malloc_trim`, and glibc's heaps ~30 MiB more than
    jemalloc at 2 GB (the 2 GB stage's peak RSS 341 → 309-319 MiB, CPU the same; BENCHMARKS.md, tokens, eighth
    pass). Buffers allocated before stay with the pool that made them."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # pyarrow built without jemalloc (ArrowNotImplementedError)
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return pool.backend_name


class InterleavedRecordReader(PipelineStep):
    """Samples from several stage outputs (a recipe's `inputs:`), one record from each in turn, so the sources mix
    in the token stream from the start. Each folder is sharded over the tasks by file, as `RecordReader` does."""

    name = "📖 interleaved RecordReader"
    type = "📖 - READER"

    def __init__(self, folders: list[str], text_field: str | None = None, limit: int = -1,
                 text_as_bytes: bool = False, batch_size: int = 1000, columns: list[str] | None = None):
        super().__init__()
        self.batch_size = batch_size
        self.columns = columns
        self.folders = folders
        self.text_field = text_field
        self.limit = limit
        self.text_as_bytes = text_as_bytes

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datakit.io.records import RecordReader

        streams = [RecordReader(f, text_field=self.text_field, limit=self.limit,
                                text_as_bytes=self.text_as_bytes, batch_size=self.batch_size,
                                columns=self.columns).run(None, rank, world_size)
                   for f in self.folders if any(as_path(f).glob("*.parquet"))]
        while streams:
            for stream in list(streams):
                doc = next(stream, None)
                if doc is None:
                    streams.remove(stream)
                else:
                    yield doc


class TokenizeSamples(CountingStep):
    """Render each Sample (plain document + EOD, or ChatML with an assistant-only loss mask), apply the mixture
    (per-task budgets of unique tokens, up-sampling factors) and yield each token document once with its number
    of copies; the packer spreads the copies. Unit `documents` (unique documents: read = written + quarantined +
    filtered). Documents of the repositories `validation` holds out go, once each, to the valid split (metadata
    `split`). A document of a `never_split` kind (SFT) longer than `seq_len` is left out (`too_long`) rather than
    chunked across rows. Documents repeated or left out are listed in `mixture/{rank:05d}.parquet` (the ledger)."""

    name = "🔤 tokenize"
    type = "🔢 - TOKENIZER"

    def __init__(self, tokenizer: str, engine: str, quarantine_dir: str, mixture: dict[str, SourceMix],
                 seed: int = 0, num_threads: int = 1, seq_len: int | None = None,
                 never_split: tuple[str, ...] = ("sft",), validation: Validation | None = None):
        super().__init__("tokens", quarantine_dir)
        self.ledger_dir = as_path(quarantine_dir).parent / LEDGER_DIR
        self.tokenizer_name = tokenizer
        self.engine = engine
        self.mixture = mixture
        self.seed = seed
        self.num_threads = num_threads
        self.seq_len = seq_len
        self.never_split = tuple(never_split)  # sample kinds a row must hold whole (SFT conversations)
        self.validation = validation or Validation()
        self._holdout = self.validation.enabled  # read once: a property call per document otherwise
        self._tally: Counter = Counter()
        self._source_labels: dict[str, tuple[str, ...]] = {}
        self._full_records = FullRecords()

    def _stored(self, sample: dict) -> dict:
        """A rejected sample's record as it is stored, every column (the reader reads `SAMPLE_COLUMNS`)."""
        return as_record(self._full_records(sample))

    def stat_update(self, *labels, value: int = 1, unit: str | None = None) -> None:
        """Counted here and handed to datatrove's stats once per batch: a MetricStats update per document and
        counter (~8 per document) cost as much CPU as the encoding. Only the totals are read (per label)."""
        for label in labels:
            self._tally[label] += value

    def _flush_stats(self) -> None:
        for label, value in self._tally.items():
            super().stat_update(label, value=value)
        self._tally.clear()

    def run(self, data, rank: int = 0, world_size: int = 1):
        from datakit.tokens.tokenizer import load_tokenizer

        tok = load_tokenizer(self.tokenizer_name, self.engine)
        tok.prefetch()  # the engine builds while the first batch is read
        use_lean_arrow_pool()
        mixer = Mixer(self.mixture, world_size, self.seed)
        self._ledger = _Ledger(self.ledger_dir / f"{rank:05d}.parquet")
        try:
            with fewer_collections():  # a batch's dicts and Documents are alive together: young collections
                yield from self._tokenized(data, tok, mixer, rank)  # over them found nothing
        finally:
            self._flush_stats()
            self.close_outputs()
            self._ledger.close()
            self._full_records.close()

    def _tokenized(self, data, tok, mixer: Mixer, rank: int):
        """The token documents of the samples, a batch of BATCH encoded at a time."""
        from datakit.tokens.chat import render_chat, stored_tools
        from datakit.tokens.tokenizer import TokenizerError
        from datakit.tokens.utf8 import stable_texts

        data = iter(data)
        while batch := list(islice(data, BATCH)):
            self._tally["documents.read"] += len(batch)
            plain, texts, flags, chat = [], [], [], []
            # one C pass per text finds those already NFC, valid UTF-8 and NUL-free: no str made of them
            as_is = stable_texts([doc.metadata.get("text") for doc in batch])
            for doc, stable in zip(batch, as_is):
                sample = doc.metadata
                if sample.get("messages"):
                    try:
                        ids, mask = render_chat(sample["messages"], tok, tools=stored_tools(sample.get("tools")))
                    except TokenizerError as exc:
                        self.reject("documents", self._stored(sample), "invalid_chat", str(exc), rank)
                        continue
                    chat.append((doc, np.asarray(ids, np.int32), np.asarray(mask, np.uint8)))
                    continue
                reason, text = encodable_text(sample.get("text"), stable)
                if reason:
                    self.reject("documents", self._stored(sample), reason, f"sample {sample.get('id')}: {reason}",
                                rank)
                    continue
                plain.append(doc)
                texts.append(text)
                flags.append(stable)
            # int32 arrays straight from the engine's flat output, EOD appended: no per-token Python object
            encoded = tok.encode_batch_arrays(texts, num_threads=self.num_threads, append_eod=True, stable=flags)
            rendered = [(doc, ids, _ONES[:len(ids)]) for doc, ids in zip(plain, encoded)]
            if chat:
                rendered = self._in_order(batch, rendered + chat)
            for doc, ids, mask in rendered:
                if self._mix(doc, ids, mask, mixer):
                    yield doc
            self._flush_stats()

    @staticmethod
    def _in_order(batch, rendered):
        """Chat and plain samples are encoded in separate passes: restore the input order."""
        position = {id(doc): i for i, doc in enumerate(batch)}
        return sorted(rendered, key=lambda r: position[id(r[0])])

    def _labels(self, source: str) -> tuple[str, ...]:
        """The counters of a source (read_tokens, documents, unique_tokens, copies, tokens), formatted once."""
        labels = self._source_labels.get(source)
        if labels is None:
            labels = self._source_labels[source] = tuple(
                f"mixture.{source}.{k}" for k in ("read_tokens", "documents", "unique_tokens", "copies", "tokens"))
        return labels

    def _mix(self, doc: Document, ids: np.ndarray, mask: np.ndarray, mixer: Mixer) -> bool:
        """Whether the sample's document goes on after the mixture; if so `doc` (the reader's) now is its token
        document (no Document made per sample). A plain function, not a generator: one generator per document
        cost more than the rest of the mixing."""
        sample = doc.metadata
        kind = sample["kind"]
        source = SOURCE_BY_KIND.get(kind, kind)
        n_tokens = len(ids)
        read_tokens, documents, unique_tokens, copies, tokens = self._labels(source)
        tally = self._tally
        tally[read_tokens] += n_tokens
        if self.seq_len is not None and n_tokens > self.seq_len and kind in self.never_split:
            # the packer would chunk it across rows: a conversation cut in two trains on half a dialogue
            self._leave_out(sample["id"], source, n_tokens, "too_long")
            return False
        # the repository is only read for the split (the packer lists the valid split's repositories)
        repo = repo_of(sample) if self._holdout else None
        if self._holdout and self.validation.holds(repo):
            # held out by repository: outside the mixture (no copies, no budget), packed into the valid split
            self.written("documents")
            self.stat_update(f"valid.{source}.documents")
            self.stat_update(f"valid.{source}.tokens", value=n_tokens)
            doc.text, doc.metadata = "", {"ids": ids, "mask": mask, "source": source, "sample_id": sample["id"],
                                          "repo": repo, "copies": 1, "split": "valid"}
            return True
        n = mixer.copies(source, sample["id"])
        decision = "downsampled" if n == 0 else None if mixer.admit(source, n_tokens) else "over_budget"
        if decision:
            self._leave_out(sample["id"], source, n_tokens, decision)
            return False
        # before and after up-sampling: unique documents / tokens, then what goes into the stream
        tally["documents.written"] += 1
        tally[documents] += 1
        tally[unique_tokens] += n_tokens
        tally[copies] += n
        tally[tokens] += n * n_tokens
        if n > 1:
            self._ledger.add(sample["id"], source, n_tokens, n, "repeated")
        doc.text, doc.metadata = "", {"ids": ids, "mask": mask, "source": source, "sample_id": sample["id"],
                                      "repo": repo, "copies": n, "split": "train"}
        return True

    def _leave_out(self, sample_id: str, source: str, n_tokens: int, decision: str) -> None:
        """Left out: counted (documents and tokens) and listed in the ledger."""
        self.filter_out("documents", decision)
        self.stat_update(f"mixture.{source}.{decision}_tokens", value=n_tokens)
        self._ledger.add(sample_id, source, n_tokens, 0, decision)


class _Ledger:
    """The mixture ledger of one task (schemas/mixture_ledger.schema.json), written in row groups."""

    def __init__(self, path: Path, batch: int = 8192):
        self.path, self.batch = path, batch
        self.rows: list[tuple] = []
        self.writer = None

    def add(self, sample_id: str, source: str, tokens: int, copies: int, decision: str) -> None:
        self.rows.append((sample_id, source, tokens, copies, decision))
        if len(self.rows) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        from datakit.io.schemas import arrow_schema
        from datakit.tokens import arrow_buffers

        schema = arrow_schema("mixture_ledger")
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            where, fs = arrow(self.path)
            self.writer = pq.ParquetWriter(where, schema, filesystem=fs, compression="zstd")
        cols = list(zip(*self.rows)) if self.rows else [[] for _ in schema.names]
        self.writer.write_table(arrow_buffers.table(dict(zip(schema.names, map(list, cols))), schema))
        self.rows = []

    def close(self) -> None:
        self._flush()  # every task writes its ledger, empty or not: the manifest lists one per task
        self.writer.close()


class PackShards(PipelineStep):
    """Best-fit-decreasing packing into seq_len rows, written to `{rank:05d}.parquet` (+ `{rank:05d}.pack.json`);
    with `validation`, the valid split's documents are packed apart into `valid/{rank:05d}.parquet` (+ its
    `.pack.json`, which also lists the task's validation repositories), so no row mixes the splits."""

    name = "📦 pack"
    type = "💽 - WRITER"

    def __init__(self, output_folder: str, seq_len: int, eod_id: int, window: int = 100_000,
                 copy_gap: int | None = None, window_tokens: int | None = None, validation: bool = False):
        super().__init__()
        self.output_folder = as_path(output_folder)
        self.seq_len = seq_len
        self.eod_id = eod_id
        self.window = window
        self.copy_gap = copy_gap
        self.window_tokens = window_tokens
        self.validation = validation

    def run(self, data, rank: int = 0, world_size: int = 1):
        from contextlib import ExitStack

        from datakit.tokens.packing import Document as PackDoc
        from datakit.tokens.packing import Packer

        splits = {"train": self.output_folder}
        if self.validation:
            splits["valid"] = self.output_folder / VALID_DIR
        with ExitStack() as stack:
            packers, writers, repos = {}, {}, {name: set() for name in splits}
            for name, folder in splits.items():
                writers[name] = stack.enter_context(ShardWriter(folder / f"{rank:05d}.parquet"))
                # rows are built in the writer's row group block (no row allocated and copied again)
                packers[name] = Packer(self.seq_len, self.eod_id, window=self.window, copy_gap=self.copy_gap,
                                       window_tokens=self.window_tokens, row_buffer=writers[name].row_buffer)
            for d in data:
                m = d.metadata
                split = m.get("split", "train")
                packer = packers.get(split)
                if packer is None:
                    raise ValueError(f"sample {m['sample_id']}: split {split!r} but this stage packs {list(splits)}")
                if split != "train" and m.get("repo"):  # the valid split lists its repositories
                    repos[split].add(m["repo"])
                rows = packer.feed(PackDoc(m["ids"], m["mask"], m["source"], m["sample_id"], m.get("copies", 1)))
                # a window closed: its rows. Its freed memory is not handed back here but at the task's end: the
                # next window reuses it, where a release per window made the next one fault every page in again
                # (a 2 GB run's system CPU 4.0 → 1.2 s, −15 % CPU in all, for +18 MiB peak RSS; BENCHMARKS.md,
                # "tokens: seventh pass")
                for row in rows:
                    writers[split].write(row)
            for name in splits:
                for row in packers[name].finish():
                    writers[name].write(row)
        release_freed_memory(arrow_pool=True)
        for name, folder in splits.items():
            self._write_part(folder / f"{rank:05d}.pack.json", packers[name], sorted(repos[name]) if name == "valid"
                             else None)
            prefix = "pack" if name == "train" else "valid.pack"
            self.stat_update(f"{prefix}.rows", value=packers[name].stats.rows)
            self.stat_update(f"{prefix}.padding_tokens", value=packers[name].stats.padding_tokens)
        self.stat_update("pack.copies_released_early", value=packers["train"].stats.copies_released_early)
        return
        yield  # a terminal step: a generator that yields nothing

    @staticmethod
    def _write_part(path: Path, packer, repos: list[str] | None) -> None:
        stats = packer.stats
        part = {"rows": stats.rows, "documents": stats.documents, "chunks": stats.chunks, "tokens": stats.tokens,
                "padding_tokens": stats.padding_tokens, "per_source": stats.per_source,
                "copy_gap": packer.copy_gap, "copies_released_early": stats.copies_released_early,
                "min_copy_distance": stats.min_copy_distance, "max_window_tokens": stats.max_window_tokens}
        if repos is not None:
            part["repos"] = repos
        path.write_text(json.dumps(part, sort_keys=True) + "\n")
