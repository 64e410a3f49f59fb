"""Benchmark of the `dedup` stage on a fork-heavy corpus, against datatrove's own MinHash signature work.

    python benchmarks/bench_dedup.py [--copies 8 --out benchmarks/work-dedup]

1. Corpus: tests/test_dedup_pairs.py's labelled set (960 samples from the standard library: edit samples and
   commit bundles, each with a near-duplicate copy and a distinct look-alike), repeated `--copies` times under
   other repository names (forks: the first copy upstream), so most samples have 1–2 × copies duplicates.
2. Floors, in-process, on every sample's near text with the stage's MinHash configuration: datatrove's stock
   `get_shingles` + `get_signature` (sha1 shingle hashes: its xxhash path fails on `str` with xxhash 4.x) — the
   signature work of a plain datatrove MinHash run — and the stage's own vectorised `get_shingles` + the same
   `get_signature`.
3. The stage in-process (1 task, 1 worker: every phase in this process) through `run_recipe`: wall per phase,
   CPU seconds, peak RSS; the counts per source.
4. Prints a table and writes `benchmarks/results/dedup.json`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import resource
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from machine import machine_facts, peak_rss_mib, write_results  # noqa: E402


def corpus(copies: int) -> list[dict]:
    from tests.test_dedup_pairs import labelled_set

    samples, _ = labelled_set()
    out = []
    for k in range(copies):
        for s in samples:
            row = copy.deepcopy(s)
            if k:
                row["id"] = f"{s['id']}~{k}"
                repo = row["meta"]["repo"]
                row["meta"]["repo"] = row["source"]["repo"] = f"fork{k}-{repo.replace('/', '-')}/{repo.split('/')[1]}"
                row["meta"]["fork_of"] = repo
                row["text"] = row["text"].replace(f"# {repo}:", f"# {row['meta']['repo']}:")
            out.append(row)
    return out


def cpu_seconds() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--out", default=str(HERE / "work-dedup"))
    parser.add_argument("--results", default=str(HERE / "results" / "dedup.json"))
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    import datakit.dedup.stages as stages
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig

    from datakit.dedup.content import CodeWordTokenizer, dedup_texts, group
    from datakit.dedup.steps import SampleMinhashSignature
    from tests.test_dedup_pairs import run_dedup, write_samples

    rows = corpus(args.copies)
    mb = sum(len(r["text"].encode()) for r in rows) / 1e6
    config = stages.DedupStage(stages.DedupStage.Options()).minhash_config()
    texts = [(group(r), dedup_texts(r)[1]) for r in rows]

    def floor_of(step, salted: bool) -> dict:
        t0, c0 = time.perf_counter(), cpu_seconds()
        for g, t in texts:
            sh = step.get_shingles(g + "\0" + t if salted else t)
            if sh.size:
                step.get_signature(sh)
        return {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(cpu_seconds() - c0, 3)}

    stock = MinhashDedupSignature(str(out / "floor"), dataclasses.replace(config, hash_config=HashConfig(
        hash_fc="sha1")), language=CodeWordTokenizer())
    floors = {"datatrove_stock": floor_of(stock, False),
              "datakit_vectorised": floor_of(SampleMinhashSignature(str(out / "floor"), config,
                                                                    language=CodeWordTokenizer()), True)}
    floor = floors["datatrove_stock"]

    phases: dict[str, dict] = {}
    original = stages.run_phase

    def timed(ctx, pipeline, logs, what):
        t, c = time.perf_counter(), cpu_seconds()
        original(ctx, pipeline, logs, what)
        phases[what] = {"wall_s": round(time.perf_counter() - t, 3), "cpu_s": round(cpu_seconds() - c, 3)}

    stages.run_phase = timed
    write_samples(rows, out / "input")
    t0, c0 = time.perf_counter(), cpu_seconds()
    kept = run_dedup(None, out, tasks=1)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    phases["filter (the runner's pipeline)"] = {"wall_s": round(wall - sum(p["wall_s"] for p in phases.values()), 3),
                                                "cpu_s": round(cpu - sum(p["cpu_s"] for p in phases.values()), 3)}
    removed = sum(1 for i, k in kept.items() if i != k)
    report = {"machine": machine_facts(), "samples": len(rows), "copies": args.copies, "input_mb": round(mb, 2),
              "removed": removed, "floors_signatures": floors, "stage": {"wall_s": wall, "cpu_s": cpu,
                                                                        "phases": phases,
                                                                        "peak_rss_mib": peak_rss_mib()},
              "samples_per_cpu_s": len(rows) / cpu, "stock_floor_samples_per_cpu_s": len(rows) / floor["cpu_s"]}
    print(f"{len(rows)} samples ({mb:.1f} MB), {removed} removed as duplicates")
    for name, f in floors.items():
        print(f"floor {name} (signatures alone): {f['cpu_s']:.2f} CPU s = {len(rows) / f['cpu_s']:.0f} samples/CPU s")
    print(f"stage: {wall:.2f} s wall, {cpu:.2f} CPU s = {len(rows) / cpu:.0f} samples/CPU s; phases {phases}; "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    write_results(args.results, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
