"""Benchmark of the `dedup` stage on a fork-heavy corpus, against datatrove's own MinHash signature work.

    python benchmarks/bench_dedup.py [--copies 8 --out benchmarks/work-dedup]

1. Corpus: tests/test_dedup_pairs.py's labelled set (960 samples from the standard library: edit samples and
   commit bundles, each with a near-duplicate copy and a distinct look-alike), repeated `--copies` times under
   other repository names (forks: the first copy upstream), so most samples have 1–2 × copies duplicates.
2. Floor, in-process: datatrove's `get_shingles` + `get_signature` (the stage's MinHash configuration) on every
   sample's near text — the signature work no MinHash dedup avoids.
3. The stage in-process (1 task, 1 worker: every phase in this process) through `run_recipe`: wall per phase,
   CPU seconds, peak RSS; the counts per source.
4. Prints a table and writes `benchmarks/results/dedup.json`.
"""

from __future__ import annotations

import argparse
import copy
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
    from datakit.dedup.content import CodeWordTokenizer, dedup_texts
    from datakit.dedup.steps import SampleMinhashSignature, group
    from tests.test_dedup_pairs import run_dedup

    rows = corpus(args.copies)
    mb = sum(len(r["text"].encode()) for r in rows) / 1e6
    config = stages.DedupStage(stages.DedupStage.Options()).minhash_config()
    sig = SampleMinhashSignature(str(out / "floor"), config, language=CodeWordTokenizer())
    texts = [group(r) + "\0" + dedup_texts(r)[1] for r in rows]
    t0, c0 = time.perf_counter(), cpu_seconds()
    for t in texts:
        sh = sig.get_shingles(t)
        if sh.size:
            sig.get_signature(sh)
    floor = {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0}

    phases: dict[str, float] = {}
    original = stages.run_phase

    def timed(ctx, pipeline, logs, what):
        t = time.perf_counter()
        original(ctx, pipeline, logs, what)
        phases[what] = round(time.perf_counter() - t, 3)

    stages.run_phase = timed
    t0, c0 = time.perf_counter(), cpu_seconds()
    kept = run_dedup(rows, out, tasks=1)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    phases["filter (runner's pipeline) + writing the input"] = round(wall - sum(phases.values()), 3)
    removed = sum(1 for i, k in kept.items() if i != k)
    report = {"machine": machine_facts(), "samples": len(rows), "copies": args.copies, "input_mb": round(mb, 2),
              "removed": removed, "floor_signatures": floor, "stage": {"wall_s": wall, "cpu_s": cpu,
                                                                        "phases_wall_s": phases,
                                                                        "peak_rss_mib": peak_rss_mib()},
              "samples_per_cpu_s": len(rows) / cpu, "floor_samples_per_cpu_s": len(rows) / floor["cpu_s"]}
    print(f"{len(rows)} samples ({mb:.1f} MB), {removed} removed as duplicates")
    print(f"floor (datatrove signatures alone): {floor['cpu_s']:.2f} CPU s = {len(rows) / floor['cpu_s']:.0f} "
          "samples/CPU s")
    print(f"stage: {wall:.2f} s wall, {cpu:.2f} CPU s = {len(rows) / cpu:.0f} samples/CPU s; phases {phases}; "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    write_results(args.results, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
