"""Copy the throughput figures `datakit plan` projects costs from into the package (benchmarks/ is not installed).

    python benchmarks/ship_figures.py        # reads benchmarks/results/*.json, writes datakit/data/throughputs.json

Each figure: the stage type, its value and unit (work per core-second), and the result file and key it was read
from, so a plan can say where every cost comes from. Rerun after a benchmark changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "datakit" / "data" / "throughputs.json"

# stage type → (result file, key path, unit, how the value is read)
FIGURES = {
    "sources.git": ("discovery.json", "discover.prs_per_s", "PRs per core-second",
                    "in-process discovery (one walk + the merged PRs' records), single thread"),
    "samples.agentless": ("samples.json", "variants[1].prs_per_s", "PRs per core-second",
                          "in-process AgentlessSamples with the structure cache, one core"),
    "bundles.commits": ("bundles.json", "bundles_cli.bundles_per_cpu_s", "PRs per core-second",
                        "whole `datakit run` process, per CPU second"),
    "sources.gharchive": ("gharchive.json", "variants.datakit.events_per_s", "events per core-second",
                          "GH Archive ingestion, one core"),
    "decontam": ("decontam.json", "e2e.e2e.runs.1 task(s).mb_per_cpu_s", "MB per core-second",
                 "whole `datakit decontam` process on 512 MB of few-KB samples, per CPU second"),
    "dedup": ("dedup.json", "samples_per_cpu_s", "samples per core-second",
              "the dedup stage (exact + MinHash phases and the filter) on 9,120 fork-heavy samples, per CPU second"),
    "sft.agentless": ("sft.json", "generations_per_cpu_s.datakit", "rows per core-second",
                      "whole `datakit run` process: join, validate (parse + apply every edit), render, write"),
    "tokens": ("tokens.json", "sizes.200.paths.datakit.tokens_per_cpu_s", "tokens per core-second",
               "the tokens stage as a whole process at 200 MB (fastokens, int32 arrays), per CPU second"),
}
NOTES = {
    "sources.github": "bound by GitHub's rate limits, not CPU: see benchmarks/results/crawl.json (requests per "
                      "linked PR) and 5,000 requests/hour per token",
    "export.megatron": "no benchmark yet (a copy of the token shards' ids: I/O bound)",
}


def _get(doc, path: str):
    for part in path.replace("]", "").split(".") if "[" in path else path.split("."):
        name, _, index = part.partition("[")
        doc = doc[name] if name else doc
        if index:
            doc = doc[int(index)]
    return doc


def main() -> int:
    figures = {}
    for stage, (file, key, unit, what) in FIGURES.items():
        path = HERE / "results" / file
        if not path.is_file():
            print(f"skip {stage}: {path} missing", file=sys.stderr)
            continue
        doc = json.loads(path.read_text())
        figures[stage] = {"value": float(_get(doc, key)), "unit": unit, "file": f"benchmarks/results/{file}",
                          "key": key, "what": what,
                          "machine": (doc.get("machine") or {}).get("cpu") if isinstance(doc.get("machine"), dict) else doc.get("machine")}
    for stage, note in NOTES.items():
        figures[stage] = {"note": note, "unit": "", "file": "", "key": ""}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"written_by": "benchmarks/ship_figures.py", "figures": figures}, indent=2,
                              sort_keys=True) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
