"""Benchmark of the `bundles.commits` stage against a pygit2 floor, on a repository of ≥ 2,000 merged PRs.

    python benchmarks/bench_bundles.py [--prs 4200 --out benchmarks/work-bundles]

1. Builds the synthetic repository of `bench_discovery.py` (half of --prs merged) and lists its PRs with
   `datakit sources` (a whole CLI process), so the bundles stage reads real PullRecord Parquet.
2. Floor, in-process: for every merged PR, every commit's diff against its first parent with the patch text
   materialised — the git work a bundle cannot avoid. Inner function.
3. `datakit run` of a one-stage recipe (`bundles.commits`, 1 task) as a whole process: curation, unidiff
   round trip of every diff, rendering, Parquet. Wall, CPU seconds and peak RSS of the process tree.
4. Prints a table and writes `benchmarks/results/bundles.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pygit2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_discovery import REPO_NAME, cli, ensure_repo  # noqa: E402
from machine import machine_facts, write_results  # noqa: E402


def floor(repo: pygit2.Repository, prs: list[dict]) -> int:
    n = 0
    for pr in prs:
        for c in pr["commits"]:
            commit = repo[c["sha"]]
            if len(commit.parents) == 1:
                diff = repo.diff(commit.parents[0], commit, context_lines=3)
                diff.find_similar()
                n += sum(len(p.data) for p in diff)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=4200, help="pull refs (about half merged; default 4200)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(HERE / "work-bundles"))
    parser.add_argument("--results", default=str(HERE / "results" / "bundles.json"))
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    path, counts = ensure_repo(out, args.prs, args.seed)
    mirrors = path.parent
    work = out / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    src = cli("sources", REPO_NAME, "--no-fetch", "--mirrors", str(mirrors), "--output", str(work / "s"), cwd=work)
    import polars as pl

    prs = pl.read_parquet(work / "s" / "pulls" / "*.parquet").select("commits").to_dicts()
    repo = pygit2.Repository(str(path))
    c0, t0 = time.process_time(), time.perf_counter()
    patch_bytes = floor(repo, prs)
    floor_wall, floor_cpu = time.perf_counter() - t0, time.process_time() - c0

    recipe = work / "bundles.yaml"
    recipe.write_text(json.dumps({"name": "bench", "output": str(work / "b"), "mirrors": str(mirrors),
                                  "executor": {"type": "local", "tasks": 1, "workers": 1},
                                  "stages": [{"name": "bundles", "stage": "bundles.commits",
                                              "input": str(work / "s" / "pulls")}]}))
    run = cli("run", str(recipe), cwd=work)
    stats = json.loads((work / "b" / "bundles" / "stats.json").read_text())
    pulls = stats["units"]["pulls"]
    text_mib = pl.read_parquet(work / "b" / "bundles" / "*.parquet").select(pl.col("text").str.len_bytes().sum()
                                                                          ).item() / 2**20
    report = {
        "command": f"python benchmarks/bench_bundles.py --prs {args.prs}",
        "machine": machine_facts(pygit2=pygit2.__version__, libgit2=pygit2.LIBGIT2_VERSION),
        "repository": counts, "merged_prs": len(prs), "sources_cli": src,
        "floor": {"wall_s": round(floor_wall, 2), "cpu_s": round(floor_cpu, 2), "patch_mib": round(patch_bytes / 2**20, 1)},
        "bundles_cli": {**run, "pulls": pulls, "bundle_text_mib": round(text_mib, 1),
                        "bundles_per_cpu_s": round(pulls["written"] / run["cpu_s"], 1),
                        "bundles_per_s": round(pulls["written"] / run["wall_s"], 1)},
        "ratio_to_floor_wall": round(run["wall_s"] / floor_wall, 2),
        "ratio_to_floor_cpu": round(run["cpu_s"] / floor_cpu, 2),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    print(f"\n| what | wall s | CPU s | PRs/s per core | peak RSS MiB |\n|---|---:|---:|---:|---:|\n"
          f"| floor: every PR commit's diff (in-process) | {floor_wall:.2f} | {floor_cpu:.2f} | "
          f"{len(prs) / floor_cpu:.0f} | – |\n"
          f"| `datakit run` bundles.commits, 1 task (whole process) | {run['wall_s']:.2f} | {run['cpu_s']:.2f} | "
          f"{pulls['written'] / run['cpu_s']:.0f} | {run['peak_rss_mib']:.0f} |")
    write_results(args.results, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
