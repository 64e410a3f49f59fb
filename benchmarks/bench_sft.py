"""sft.agentless throughput, as whole processes on the same input in the same run (wall, CPU, peak RSS):

- **datakit**: `datakit run` of a one-stage recipe (sft.agentless, 1 task): join, build, validate every trajectory
  (parse + apply the edits, localisation recall), render with Qwen2.5's template, write Sample rows and the
  messages Parquet;
- **peer**: what a user would write with Hugging Face's tools (`benchmarks/sft_peer.py`): polars join of the
  generations to the samples, the same two-turn messages, rendered by transformers' Jinja chat machinery with
  Qwen2.5's template, written with pyarrow — no validation;
- **floor**: reading the same inputs and writing the peer's output bytes (`sft_peer.py --io-only`).

Input: the demo's Agentless samples copied `--copies` times under new PR numbers (each copy a new unit) and the
demo's teacher generations made for them (datakit.demo.sft_fixtures, planted bad rows included).

    .venv/bin/python benchmarks/bench_sft.py [--copies 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import machine_facts, run_child, write_results  # noqa: E402


def make_input(demo_decontam: Path, copies: int, out: Path) -> tuple[Path, Path, int]:
    """(samples folder, generations file, trajectories expected) of the scaled corpus."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datakit.demo.sft_fixtures import build_generations
    from datakit.io.schemas import arrow_schema
    from datakit.samples.agentless import sample_id

    base = [r for f in sorted(demo_decontam.glob("*.parquet")) for r in pq.read_table(f).to_pylist()
            if r["kind"] in ("localize", "edit")]
    rows = []
    for k in range(copies):
        for r in base:
            pr = r["meta"]["pr"] + 1000 * k
            rows.append({**r, "id": sample_id({"repo": r["meta"]["repo"], "number": pr}, r["kind"], r["role"]),
                         "meta": {**r["meta"], "pr": pr}})
    samples = out / "samples"
    samples.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, arrow_schema("sample")), samples / "00000.parquet", compression="zstd")
    gens = out / "generations.jsonl"
    lines = build_generations(samples)
    gens.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return samples, gens, len({(r["meta"]["repo"], r["meta"]["pr"], r["role"]) for r in rows})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sft.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(ROOT / "recipes" / "demo.yaml"), "--output",
                        str(tmp / "demo"), "--stages", "repo,pulls,samples,bundles,synth,decontam", "--quiet"],
                       check=True, capture_output=True)
        samples, gens, units = make_input(tmp / "demo" / "decontam", args.copies, tmp / "in")
        n_rows = len(gens.read_text(encoding="utf-8").splitlines())
        mb = (sum(f.stat().st_size for f in samples.glob("*.parquet")) + gens.stat().st_size) / 1e6
        recipe = tmp / "sft.yaml"
        recipe.write_text(json.dumps({"name": "bench", "executor": {"type": "local", "tasks": 1, "workers": 1},
                                      "stages": [{"name": "sft", "stage": "sft.agentless", "inputs": [str(samples)],
                                                  "options": {"generations": [str(gens)]}}]}))
        commands = {
            "datakit": lambda k: [sys.executable, "-m", "datakit.cli", "run", str(recipe), "--output",
                                  str(tmp / f"out{k}"), "--quiet"],
            "peer": lambda k: [sys.executable, str(ROOT / "benchmarks" / "sft_peer.py"), str(samples), str(gens),
                               str(tmp / f"peer{k}.parquet")],
            "floor": lambda k: [sys.executable, str(ROOT / "benchmarks" / "sft_peer.py"), str(samples), str(gens),
                                str(tmp / f"floor{k}.parquet"), "--io-only"],
        }
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for k in range(args.repeat):  # interleaved, so load changes hit every contender alike
            for name, cmd in commands.items():
                runs[name].append(run_child(cmd(k), cwd=ROOT))
        best = {name: min(r, key=lambda x: x["cpu_s"]) for name, r in runs.items()}
        written = json.loads((tmp / "out0" / "sft" / "stats.json").read_text())["units"]["trajectories"]["written"]
    report = {
        "command": f"benchmarks/bench_sft.py --copies {args.copies} --repeat {args.repeat}",
        "input": {"units": units, "generation_rows": n_rows, "mb": round(mb, 1), "trajectories_written": written},
        "best_of_runs_by_cpu": best,
        "trajectories_per_cpu_s": {n: round(units / b["cpu_s"], 1) for n, b in best.items()},
        "generations_per_cpu_s": {n: round(n_rows / b["cpu_s"], 1) for n, b in best.items()},
        "datakit_vs_peer_cpu": round(best["peer"]["cpu_s"] / best["datakit"]["cpu_s"], 2),
        "datakit_vs_floor_cpu": round(best["floor"]["cpu_s"] / best["datakit"]["cpu_s"], 2),
        "runs": runs,
        "machine": machine_facts(),
    }
    print(json.dumps({k: report[k] for k in ("input", "best_of_runs_by_cpu", "trajectories_per_cpu_s",
                                             "datakit_vs_peer_cpu", "datakit_vs_floor_cpu")}, indent=2))
    write_results(args.out, report)


if __name__ == "__main__":
    main()
