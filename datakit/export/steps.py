"""Pipeline steps of the `export` stage: token shards → Megatron `.bin/.idx` (one document per sample)."""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.pipeline.base import PipelineStep


class MegatronExport(PipelineStep):
    """Each task converts its shard files (`files[rank::world_size]`) to `<stem>.bin/.idx` under the output.

    Chunks of a sample are re-joined into one sequence (all chunks of a sample are in one shard), padding is
    dropped, so Megatron reads exactly the Parquet shards' document tokens."""

    name = "🧱 megatron"
    type = "💽 - WRITER"

    def __init__(self, shard_files: list[str], output_folder: str):
        super().__init__()
        self.shard_files = shard_files
        self.output_folder = Path(output_folder)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datakit.export.megatron import MMapIndexedWriter
        from datakit.tokens.shards import iter_documents

        self.output_folder.mkdir(parents=True, exist_ok=True)
        for shard in self.shard_files[rank::world_size]:
            self.stat_update("shards.read")
            prefix = self.output_folder / Path(shard).stem
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
            prefix.with_suffix(".export.json").write_text(json.dumps(info, sort_keys=True) + "\n")
            self.stat_update("shards.written")
        return
        yield  # terminal step
