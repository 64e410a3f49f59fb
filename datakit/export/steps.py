"""Pipeline steps of the `export` stage: token shards → Megatron `.bin/.idx` (one document per sample)."""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from datakit.io.storage import as_path


class MegatronExport(PipelineStep):
    """Each task converts its shard files (`files[rank::world_size]`) to `<stem>.bin/.idx` under the output, and
    the validation split's shards (`valid_files`) to `valid/<stem>.bin/.idx`: a dataset of its own.

    Chunks of a sample are re-joined into one sequence (all chunks of a sample are in one shard), padding is
    dropped, so Megatron reads exactly the Parquet shards' document tokens."""

    name = "🧱 megatron"
    type = "💽 - WRITER"

    def __init__(self, shard_files: list[str], output_folder: str, valid_files: list[str] | None = None):
        super().__init__()
        self.shard_files = shard_files
        self.valid_files = valid_files or []
        self.output_folder = as_path(output_folder)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datakit.export.megatron import MMapIndexedWriter
        from datakit.io.records import write_text_atomic
        from datakit.tokens.shards import VALID_DIR, iter_documents

        self.output_folder.mkdir(parents=True, exist_ok=True)
        jobs = ([(s, self.output_folder) for s in self.shard_files]
                + [(s, self.output_folder / VALID_DIR) for s in self.valid_files])
        for shard, folder in jobs[rank::world_size]:
            self.stat_update("shards.read")
            prefix = folder / as_path(shard).stem
            per_source: dict[str, int] = {}
            with MMapIndexedWriter(prefix) as writer:
                for _sample_id, source, ids, _mask in iter_documents([shard]):
                    writer.add_sequence(ids)
                    writer.end_document()
                    per_source[source] = per_source.get(source, 0) + len(ids)
                    self.stat_update("documents")
                    self.stat_update("tokens", value=len(ids))
                info = writer.finalize()
            info["per_source"] = per_source
            write_text_atomic(prefix.with_suffix(".export.json"), json.dumps(info, sort_keys=True) + "\n")
            self.stat_update("shards.written")
        return
        yield  # terminal step


def write_folder_blend(folder: Path, blend: Path, required: bool = True) -> dict:
    """Add up the `*.export.json` of one exported dataset folder, write its blend file (every prefix with tokens,
    weighted by tokens) and return {documents, tokens, blend, files: {name: sha256}}. An empty folder gets no
    blend (`blend` None), an error when `required`: megatron-core cannot read an empty dataset."""
    from datakit.export.megatron import write_blend
    from datakit.tokens.shards import file_sha256

    parts = {p.name.removesuffix(".export.json"): json.loads(p.read_text())
             for p in sorted(folder.glob("*.export.json"))}
    tokens = sum(p["tokens"] for p in parts.values())
    entries = [(p["tokens"] / tokens, str(folder / stem)) for stem, p in parts.items() if p["tokens"]]
    if entries or required:
        write_blend(blend, entries)
    return {"documents": sum(p["documents"] for p in parts.values()), "tokens": tokens,
            "blend": blend.name if entries else None,
            "files": {p.name: file_sha256(p) for p in sorted(folder.glob("*.bin")) + sorted(folder.glob("*.idx"))}}
