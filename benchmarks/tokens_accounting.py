"""Where a tokens stage's CPU goes: the stage run in this process on bench_tokens.py's cached corpus, with a few
functions timed by thread CPU (inner functions, not whole processes: the figures say what share of one run each
part takes, not how fast the stage is; bench_tokens.py measures that).

Timed, each per call of a batch-level function (a ~1 µs wrapper per call, ~1,500 calls per 200 MB):
- engine: gigatoken's encode calls (`_GigatokenImpl._parts`), the floor the issue measures own work against;
- encode glue: the rest of `Tokenizer.encode_batch_arrays` (bytes/str checks, EOD, the arrays);
- Arrow decode: pyarrow decoding the Sample columns (`ParquetFile.iter_batches`, per batch);
- zstd: compressing the shard's pages (`parquet_file._page`: the ids, and the copy into one buffer);
- shard writer: the rest of writing a row group (`ShardWriter._flush`: levels, statistics, Thrift, file
  writes);
- packing: building the rows (`Packer._flush`, per row);
- the rest (total − the above): Python per document (the reader's dicts and Documents, the mixture, the
  packer's feed, the steps' generators), each task's set-up and the engine's build. Total is the CPU of the
  `datakit run` call; the imports before it are not in it (bench_tokens.py's start-up path measures those).

Decode and zstd are what any stage that reads compressed Parquet and writes zstd Parquet pays: their sum over the
engine's time is the own-work floor of this format. Writes benchmarks/results/tokens_accounting_<mb>mb.json.

    python benchmarks/tokens_accounting.py --mb 200 [--join 8]   # --join 8: documents 8× longer (~8,400 tokens)
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_tokens import SEQ_LEN, ensure_corpus, machine_facts  # noqa: E402


def _timed(owner, name: str, label: str, spent: collections.Counter, calls: collections.Counter,
           generator: bool = False) -> None:
    """Wrap owner.name so its thread CPU adds to spent[label] (a generator's: each next())."""
    clock, original = time.thread_time, getattr(owner, name)

    def call(*args, **kwargs):
        t = clock()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += clock() - t
            calls[label] += 1

    def gen(*args, **kwargs):
        inner = original(*args, **kwargs)
        while True:
            t = clock()
            try:
                item = next(inner)
            except StopIteration:
                spent[label] += clock() - t
                return
            spent[label] += clock() - t
            calls[label] += 1
            yield item

    setattr(owner, name, gen if generator else call)


def joined(src: Path, dst: Path, k: int) -> Path:
    """The corpus with every k consecutive Samples of a file joined into one (blank line between; the first
    one's id + "+k", kind and columns), in row groups of 1000 // k: documents k times longer, the same text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = dst / ".done"
    if done.is_file():
        return dst
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.parquet")):
        table = pq.read_table(f)
        rows, out = table.to_pylist(), []
        for i in range(0, len(rows), k):
            group = rows[i:i + k]
            out.append({**group[0], "id": f"{group[0]['id']}+{len(group)}",
                        "text": "\n\n".join(g["text"] for g in group)})
        pq.write_table(pa.Table.from_pylist(out, schema=table.schema), dst / f.name, compression="zstd",
                       row_group_size=max(1, 1000 // k))
    done.write_text("ok\n")
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "work" / "tokens"))
    ap.add_argument("--join", type=int, default=1,
                    help="documents K times longer: every K consecutive Samples of a corpus file joined into one "
                         "(cached beside the corpus)")
    ap.add_argument("--samples", default=None,
                    help="a folder of Sample Parquet files to run on instead of bench_tokens.py's corpus (--mb)")
    ap.add_argument("--results", default=None)
    args = ap.parse_args(argv)

    from datakit.cli import main as datakit_main  # first, as the `datakit` command (thread settings)

    import pyarrow.parquet as pq

    import datakit.tokens.packing as packing
    import datakit.tokens.parquet_file as parquet_file
    import datakit.tokens.shards as shards
    import datakit.tokens.tokenizer as tokenizer
    from datakit.tokens.mixture import SOURCE_BY_KIND

    if args.samples:
        samples = Path(args.samples).resolve()
        size_dir, corpus = samples.parent, {"samples": str(samples)}
    else:
        size_dir = Path(args.out) / f"mb{args.mb}"
        corpus = ensure_corpus(size_dir / "corpus", args.mb, args.files)
        samples = size_dir / "corpus" / "samples"
        if args.join > 1:
            samples = joined(samples, size_dir / f"join{args.join}" / "samples", args.join)
            size_dir, corpus = samples.parent, {**corpus, "joined": args.join}
    spent, calls = collections.Counter(), collections.Counter()
    _timed(tokenizer._GigatokenImpl, "_parts", "engine", spent, calls)
    _timed(tokenizer.Tokenizer, "encode_batch_arrays", "encode_batch_arrays", spent, calls)
    _timed(pq.ParquetFile, "iter_batches", "arrow_decode", spent, calls, generator=True)
    _timed(parquet_file, "_page", "zstd", spent, calls)
    _timed(shards.ShardWriter, "_flush", "shard_writer_flush", spent, calls)
    _timed(packing.Packer, "_flush", "packing", spent, calls, generator=True)

    work = size_dir / "accounting"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = work / "recipe.yaml"
    n_files = len(list(samples.glob("*.parquet")))
    once = {source: {"upsample": 1} for source in sorted(set(SOURCE_BY_KIND.values()))}
    recipe.write_text(json.dumps({
        "name": "tokens-accounting", "output": str(work / "out"),
        "executor": {"type": "local", "tasks": n_files, "workers": 1},
        "stages": [{"name": "tokens", "stage": "tokens", "input": str(samples), "tasks": n_files,
                    "options": {"tokenizer": "qwen2.5", "seq_len": SEQ_LEN, "mixture": once}}]}))
    t_run = time.process_time()
    if datakit_main(["run", str(recipe), "--quiet", "--force"]) != 0:
        raise SystemExit("datakit run failed")
    total = time.process_time() - t_run
    manifest = json.loads((work / "out" / "tokens" / "manifest.json").read_text())

    parts = {
        "engine": spent["engine"],
        "encode_glue": spent["encode_batch_arrays"] - spent["engine"],
        "arrow_decode": spent["arrow_decode"],
        "zstd": spent["zstd"],
        "shard_writer": spent["shard_writer_flush"] - spent["zstd"],
        "packing": spent["packing"],
    }
    parts["rest"] = total - sum(parts.values())
    engine = parts["engine"]
    own = total - engine
    result = {
        "benchmark": "tokens_accounting", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python benchmarks/tokens_accounting.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_facts(), "corpus": {k: corpus[k] for k in ("documents", "bytes", "samples") if k in corpus},
        "tokens": manifest["tokens"], "documents": manifest["documents"],
        "tokens_per_document": round(manifest["tokens"] / max(1, manifest["documents"])),
        "timing": "thread CPU of the functions named in the module docstring, inside one process; total = the "
                  "process's CPU during the `datakit run` call (imports before it excluded)",
        "cpu_s": {k: round(v, 3) for k, v in parts.items()}, "total_cpu_s": round(total, 3),
        "calls": dict(calls),
        "share_of_total": {k: round(v / total, 3) for k, v in parts.items()},
        "over_engine": {k: round(v / engine, 2) for k, v in parts.items() if k != "engine"},
        "own_over_engine": round(own / engine, 2),
        "format_floor_over_engine": round((parts["arrow_decode"] + parts["zstd"]) / engine, 2),
        "ns_per_token": {k: round(1e9 * v / manifest["tokens"], 1) for k, v in parts.items()},
    }
    name = (f"tokens_accounting_{samples.name}" if args.samples else f"tokens_accounting_{args.mb}mb"
            + (f"_join{args.join}" if args.join > 1 else ""))
    out = Path(args.results or ROOT / "benchmarks" / "results" / f"{name}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in parts.items():
        print(f"{k:14s} {v:7.3f} CPU s  {100 * v / total:5.1f} %  {v / engine:5.2f}× engine  "
              f"{result['ns_per_token'][k]:5.1f} ns/token")
    print(f"total {total:.3f} CPU s; own work {own / engine:.2f}× the engine; Arrow decode + zstd alone "
          f"{result['format_floor_over_engine']:.2f}×  → {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
