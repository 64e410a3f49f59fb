"""The trainer-ready `messages` Parquet of an SFT stage (`schemas/sft_messages.schema.json`).

One row per sft Sample, in the form Hugging Face chat templates and TRL's `SFTTrainer` take as they are: tool calls
as ``{type: "function", id, function: {name, arguments}}`` with the arguments a JSON object (an Arrow JSON column;
the file's `huggingface` metadata makes `datasets` decode it to a dict, so the template's `tojson` writes exactly
what datakit's renderer writes), reasoning folded into the content as the renderer shows it. Rendering a row with
Qwen2.5's template gives the Sample's `text`.
"""

from __future__ import annotations

import json
from typing import Mapping

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from datakit.io.schemas import arrow_schema, hf_features
from datakit.io.storage import arrow, as_path
from datakit.tokens.chat import content_with_reasoning

SCHEMA = "sft_messages"


def messages_row(sample: Mapping) -> dict:
    """The sft_messages row of a chat Sample (JSON columns as their text)."""
    out = []
    for m in sample["messages"]:
        calls = [{"type": "function", "id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for c in m.get("tool_calls") or ()]
        out.append({"role": m["role"], "content": content_with_reasoning(m), "tool_calls": calls or None,
                    "tool_call_id": m.get("tool_call_id"), "name": m.get("name")})
    return {"id": sample["id"], "role": sample["role"], "messages": out, "tools": sample.get("tools")}


def messages_schema() -> pa.Schema:
    schema = arrow_schema(SCHEMA)
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": hf_features(SCHEMA)}})})


def _storage(kind: pa.DataType) -> pa.DataType:
    """`kind` with its JSON columns as strings: what Python rows convert to (then cast to the JSON type)."""
    if isinstance(kind, pa.JsonType):
        return pa.string()
    if pa.types.is_list(kind):
        return pa.list_(_storage(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _storage(f.type)) for f in kind])
    return kind


def messages_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    storage = pa.schema([pa.field(f.name, _storage(f.type)) for f in schema])
    return pa.Table.from_pylist(rows, storage).cast(schema)


class MessagesWriter(PipelineStep):
    """Writes `{folder}/{rank:05d}.parquet` (sft_messages) and passes the documents on."""

    name = "💬 messages writer"
    type = "💽 - WRITER"

    def __init__(self, folder: str, batch: int = 1024):
        super().__init__()
        self.folder = as_path(folder)
        self.batch = batch

    def run(self, data, rank: int = 0, world_size: int = 1):
        schema = messages_schema()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{rank:05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        rows: list[dict] = []
        where, fs = arrow(tmp)
        with pq.ParquetWriter(where, schema, filesystem=fs, compression="zstd") as writer:
            for doc in data:
                rows.append(messages_row(doc.metadata))
                if len(rows) >= self.batch:
                    writer.write_table(messages_table(rows, schema))
                    rows = []
                self.stat_update("messages.rows")
                yield doc
            writer.write_table(messages_table(rows, schema))
        tmp.replace(path)  # a task killed midway leaves no half file under the final name
