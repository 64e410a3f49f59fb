"""The peer of bench_sft.py: cold-start SFT chats made the way a user would with Hugging Face's tools — join the
teacher's generations to the Agentless samples (polars), build [user: prompt, assistant: <think>reasoning</think>
answer] per step and (PR, role), render with transformers' Jinja chat machinery and Qwen2.5's template, write one
Parquet. No validation of the edits. `--io-only`: read the same inputs and write the same rows' bytes (the floor).

    python benchmarks/sft_peer.py SAMPLES_DIR GENERATIONS.jsonl OUT.parquet [--io-only]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwen2.5" / "chat_template.jinja"


def main(samples_dir: str, generations: str, out: str, io_only: bool) -> None:
    samples = pl.read_parquet(f"{samples_dir}/*.parquet")
    rows = []
    for line in Path(generations).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row.get("answer"), str):
            rows.append({"sample_id": row["sample_id"], "reasoning": row.get("reasoning"), "answer": row["answer"]})
    gens = pl.DataFrame(rows)
    if io_only:
        pq.write_table(pa.table({"id": samples["id"].to_arrow(), "text": samples["text"].to_arrow()}), out)
        return
    joined = gens.join(samples.select("id", "text", "prompt_chars", "kind", "role",
                                      pl.col("meta").struct.field("repo"), pl.col("meta").struct.field("pr")),
                       left_on="sample_id", right_on="id").sort("repo", "pr", "role", "kind", descending=[False, False, False, True])
    from transformers.utils.chat_template_utils import render_jinja_template

    template = TEMPLATE.read_text()
    chats: dict[tuple, list] = {}
    for r in joined.iter_rows(named=True):
        think = f"<think>\n{r['reasoning']}\n</think>\n\n" if r["reasoning"] else ""
        chats.setdefault((r["repo"], r["pr"], r["role"]), []).extend(
            [{"role": "user", "content": r["text"][:r["prompt_chars"]]},
             {"role": "assistant", "content": think + r["answer"]}])
    texts = render_jinja_template(list(chats.values()), chat_template=template)[0]
    pq.write_table(pa.table({"id": [f"{a}#{b}/{c}" for a, b, c in chats], "text": texts,
                             "messages": [json.dumps(m) for m in chats.values()]}), out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--io-only" in sys.argv[4:])
