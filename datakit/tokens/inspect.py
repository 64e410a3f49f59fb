"""`datakit inspect SHARD`: one packed row decoded, with document boundaries and the loss mask in colour."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

from rich.console import Console
from rich.text import Text

from datakit.tokens.shards import MANIFEST, iter_rows, row_documents


def check_shard(shard: Path) -> None:
    """A token shard, or a ValueError that says what the file is and what to give instead."""
    import pyarrow.parquet as pq

    from datakit.io.records import reading_parquet

    example = "a tokens stage's output, e.g. out/demo/tokens/00000.parquet"
    if shard.is_dir():
        raise ValueError(f"{shard} is a folder; inspect reads one token shard: {example}")
    if not shard.is_file():
        raise ValueError(f"{shard}: no such file; inspect reads one token shard: {example}")
    with reading_parquet(str(shard)):
        names = pq.read_schema(shard).names
    if "input_ids" not in names:
        what = "a Sample file (its text is in the `text` column)" if "text" in names else "not a token shard"
        raise ValueError(f"{shard} is {what}, with no input_ids; inspect reads {example}")


def inspect_row(shard: str | Path, row: int, tokenizer: str | None, max_chars: int, console: Console) -> None:
    from datakit.tokens.tokenizer import load_tokenizer

    shard = Path(shard)
    check_shard(shard)
    if tokenizer is None:
        manifest = shard.parent / MANIFEST
        tokenizer = json.loads(manifest.read_text())["tokenizer"]["name"] if manifest.is_file() else "qwen2.5"
    tok = load_tokenizer(tokenizer)
    r, count = None, 0
    for count, candidate in enumerate(iter_rows(shard), start=1):
        if count - 1 == row:
            r = candidate
            break
    if r is None:
        raise IndexError(f"{shard} has {count} rows; there is no row {row}")
    docs = row_documents(r)
    console.print(Text(f"{shard} row {row}: {len(r['input_ids'])} tokens, {len(docs)} documents, "
                       f"{r['padding']} padding  (green = trained on, dim = masked)", style="bold"))
    for k, d in enumerate(docs):
        console.rule(f"doc {k}: {d['sample_id']}  source={d['source']}  chunk={d['chunk_index']}  "
                     f"tokens={len(d['ids'])}  trained={int(d['loss_mask'].sum())}")
        text = Text()
        shown = 0
        pos = 0
        for trained, run in groupby(d["loss_mask"].tolist()):
            n = len(list(run))
            piece = tok.decode(d["ids"][pos:pos + n].tolist())
            pos += n
            piece = piece[: max(0, max_chars - shown)]
            shown += len(piece)
            text.append(piece, style="green" if trained else "dim")
        console.print(text)
        if shown >= max_chars:
            console.print(Text(f"… ({len(d['ids'])} tokens in all)", style="italic"))
    if r["padding"]:
        console.rule(f"padding: {r['padding']} × EOD")
