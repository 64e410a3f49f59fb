"""Pipeline steps of the `tokens` stage: Samples → rendered token documents (with loss masks) → packed shards."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.step import CountingStep
from datakit.tokens.mixture import SOURCE_BY_KIND, Mixer, SourceMix, copy_id
from datakit.tokens.shards import ShardWriter

BATCH = 256  # samples encoded together (the engines release the GIL and batch internally)


def check_text(text: str) -> str | None:
    """Why a text cannot be tokenized as a training document, or None."""
    if not text:
        return "empty"
    if "\x00" in text:
        return "nul_byte"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid_surrogate"
    return None


class TokenizeSamples(CountingStep):
    """Render each Sample (plain document + EOD, or ChatML with an assistant-only loss mask), apply the mixture
    (up-sampling copies, per-task token budgets) and yield token documents. Unit `documents`."""

    name = "🔤 tokenize"
    type = "🔢 - TOKENIZER"

    def __init__(self, tokenizer: str, engine: str, quarantine_dir: str, mixture: dict[str, SourceMix],
                 seed: int = 0, num_threads: int = 1):
        super().__init__("tokens", quarantine_dir)
        self.tokenizer_name = tokenizer
        self.engine = engine
        self.mixture = mixture
        self.seed = seed
        self.num_threads = num_threads

    def run(self, data, rank: int = 0, world_size: int = 1):
        from datakit.tokens.chat import render_chat
        from datakit.tokens.tokenizer import TokenizerError, load_tokenizer

        tok = load_tokenizer(self.tokenizer_name, self.engine)
        mixer = Mixer(self.mixture, world_size, self.seed)
        try:
            data = iter(data)
            while batch := list(islice(data, BATCH)):
                plain, rendered = [], []
                for doc in batch:
                    sample = doc.metadata
                    self.read("documents")
                    if sample.get("messages"):
                        try:
                            ids, mask = render_chat(sample["messages"], tok)
                        except TokenizerError as exc:
                            self.reject("documents", sample, "invalid_chat", str(exc), rank)
                            continue
                        rendered.append((sample, np.asarray(ids, np.int32), np.asarray(mask, np.uint8)))
                        continue
                    reason = check_text(sample.get("text") or "")
                    if reason:
                        self.reject("documents", sample, reason, f"sample {sample.get('id')}: {reason}", rank)
                        continue
                    plain.append(sample)
                encoded = tok.encode_batch([s["text"] for s in plain], num_threads=self.num_threads)
                for sample, ids in zip(plain, encoded):
                    ids.append(tok.eod_id)
                    rendered.append((sample, np.asarray(ids, np.int32), np.ones(len(ids), np.uint8)))
                for sample, ids, mask in self._in_order(batch, rendered):
                    yield from self._mix(sample, ids, mask, mixer)
        finally:
            self.quarantine.close()
            for source, used in sorted(mixer.used.items()):
                self.stat_update(f"source_tokens.{source}", value=used)

    @staticmethod
    def _in_order(batch, rendered):
        """Chat and plain samples are encoded in separate passes: restore the input order."""
        position = {id(doc.metadata): i for i, doc in enumerate(batch)}
        return sorted(rendered, key=lambda r: position[id(r[0])])

    def _mix(self, sample: dict, ids: np.ndarray, mask: np.ndarray, mixer: Mixer):
        source = SOURCE_BY_KIND.get(sample["kind"], sample["kind"])
        n = mixer.copies(source, sample["id"])
        if n == 0:
            self.filter_out("documents", "downsampled")
            return
        if not mixer.admit(source, n * len(ids)):
            self.filter_out("documents", "over_budget")
            return
        self.written("documents")
        for k in range(n):
            self.stat_update("mixture.copies")
            yield Document(text="", id=copy_id(sample["id"], k),
                           metadata={"ids": ids, "mask": mask, "source": source, "sample_id": copy_id(sample["id"], k)})


class PackShards(PipelineStep):
    """Best-fit-decreasing packing into seq_len rows, written to `{rank:05d}.parquet` (+ `{rank:05d}.pack.json`)."""

    name = "📦 pack"
    type = "💽 - WRITER"

    def __init__(self, output_folder: str, seq_len: int, eod_id: int, window: int = 100_000):
        super().__init__()
        self.output_folder = Path(output_folder)
        self.seq_len = seq_len
        self.eod_id = eod_id
        self.window = window

    def run(self, data, rank: int = 0, world_size: int = 1):
        from datakit.tokens.packing import Document as PackDoc
        from datakit.tokens.packing import Packer

        packer = Packer(self.seq_len, self.eod_id, window=self.window)
        docs = (PackDoc(d.metadata["ids"], d.metadata["mask"], d.metadata["source"], d.metadata["sample_id"])
                for d in data)
        with ShardWriter(self.output_folder / f"{rank:05d}.parquet") as writer:
            for row in packer.pack(docs):
                writer.write(row)
        stats = packer.stats
        part = {"rows": stats.rows, "documents": stats.documents, "chunks": stats.chunks, "tokens": stats.tokens,
                "padding_tokens": stats.padding_tokens, "per_source": stats.per_source}
        (self.output_folder / f"{rank:05d}.pack.json").write_text(json.dumps(part, sort_keys=True) + "\n")
        self.stat_update("pack.rows", value=stats.rows)
        self.stat_update("pack.padding_tokens", value=stats.padding_tokens)
        return
        yield  # a terminal step: a generator that yields nothing
