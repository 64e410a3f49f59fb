"""synth.ingest throughput: the whole `datakit run` process on a generated JSONL (OpenAI messages with tool calls
and reasoning), rows/s and MB/s with peak RSS, vs a naive floor (a json.loads loop over the same file).

    .venv/bin/python benchmarks/bench_synth.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def make_rows(n: int, path: Path) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"Fix issue {i}: `area` multiplies width by width.\n" * 3},
                {"role": "assistant", "content": None, "reasoning_content": "Look at geometry.py first. " * 4,
                 "tool_calls": [{"id": f"c{i}", "type": "function",
                                 "function": {"name": "bash", "arguments": json.dumps({"command": f"grep -n area {i}"})}}]},
                {"role": "tool", "tool_call_id": f"c{i}", "content": "41:    return self.w * self.w\n" * 5},
                {"role": "assistant", "content": "Use `self.w * self.h`.\n" * 4}]}) + "\n")


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB over the process tree) of a command."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode:
        sys.exit(proc.stderr.read().decode())
    return time.perf_counter() - start, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "synth.jsonl"
        make_rows(args.rows, data)
        mb = data.stat().st_size / 1e6
        recipe = tmp / "r.json"
        recipe.write_text(json.dumps({"name": "b", "output": str(tmp / "out"), "executor": {"type": "local", "tasks": 1},
                                      "stages": [{"name": "synth", "stage": "synth.ingest",
                                                  "options": {"paths": [str(data)]}}]}))
        cli_s, cli_rss = run_measured([sys.executable, "-m", "datakit.cli", "run", str(recipe), "--quiet"])
        stats = json.loads((tmp / "out" / "synth" / "stats.json").read_text())["units"]["rows"]
        assert stats["written"] == args.rows, stats
        floor = (f"import json\nn=0\nfor line in open({str(data)!r}, 'rb'):\n    json.loads(line); n+=1\n"
                 f"assert n == {args.rows}")
        floor_s, floor_rss = run_measured([sys.executable, "-c", floor])
    result = {"rows": args.rows, "mb": round(mb, 1),
              "cli": {"seconds": round(cli_s, 2), "rows_per_s": round(args.rows / cli_s),
                      "mb_per_s": round(mb / cli_s, 1), "peak_rss_mib": round(cli_rss)},
              "json_loads_floor": {"seconds": round(floor_s, 2), "rows_per_s": round(args.rows / floor_s),
                                   "mb_per_s": round(mb / floor_s, 1), "peak_rss_mib": round(floor_rss)},
              "ratio_to_floor": round(cli_s / floor_s, 2)}
    out = ROOT / "benchmarks" / "results" / "synth.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
