#!/bin/bash
# tiktoken's 2 GB loop and datakit's tokens stage as whole processes, interleaved (ROUNDS rounds, default 2): this
# VM's speed drifts by up to ~40 % between periods, so a ratio is only taken within a round. Uses bench_tokens.py's
# own paths (--path) on its cached 2 GB corpus; TREE (default: this checkout) is the datakit measured. Writes
# benchmarks/results/tokens_2gb_interleaved.json and prints the per-round ratios.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-$PWD/.venv/bin/python}
TREE=${TREE:-$PWD}
ROUNDS=${ROUNDS:-2}
OUT=$(mktemp -d)
START=$(date -u +%Y-%m-%dT%H:%MZ)
REV=$(git -C "$TREE" rev-parse --short HEAD 2>/dev/null || echo unknown)
for r in $(seq 1 "$ROUNDS"); do
  for p in tiktoken datakit; do
    env -u PYTHONDONTWRITEBYTECODE RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONWARNINGS=ignore \
      PYTHONPATH="$TREE" "$PY" benchmarks/bench_tokens.py --out benchmarks/work/tokens/mb2000 \
      --path "$p" --result-file "$OUT/${p}_$r.json" > "$OUT/${p}_$r.log" 2>&1 || { cat "$OUT/${p}_$r.log"; exit 1; }
  done
done
"$PY" - "$OUT" "$ROUNDS" "$START" "$REV" <<'PY'
import json, sys
from datetime import datetime, timezone
out, rounds, start, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for r in range(1, rounds + 1):
    t, d = (json.load(open(f"{out}/{p}_{r}.json")) for p in ("tiktoken", "datakit"))
    rows.append({"round": r, "tiktoken_encode_cpu_s": t["encode_cpu_s"], "tiktoken_process_cpu_s": t["cpu_s"],
                 "datakit_stage_cpu_s": d["cpu_s"], "datakit_peak_rss_mib": d["peak_rss_mib"],
                 "vs_encode_calls": round(t["encode_cpu_s"] / d["cpu_s"], 2),
                 "vs_whole_process": round(t["cpu_s"] / d["cpu_s"], 2)})
    print(rows[-1])
end = datetime.now(timezone.utc).strftime("%H:%MZ")
json.dump({"date": f"{start}-{end}", "tree": rev, "rounds": rows},
          open("benchmarks/results/tokens_2gb_interleaved.json", "w"), indent=2)
PY
