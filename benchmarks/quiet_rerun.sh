#!/bin/bash
# The session-end quiet reruns (BENCHMARKS.md, "Quiet reruns at the end of the 2026-12-02 session"), one after the
# other on an idle machine, from the repository root; logs in /tmp/q_*.log. Baselines: decontam at 4cb3eec (its C
# kernel built), samples at HEAD without the executor/memory commits 8e2ab12 and bee2b2f.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
unset PYTHONDONTWRITEBYTECODE  # cached bytecode, as users have it
stamp() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
stamp start > /tmp/q_stamps.log
# decontam whole process, 512 MB, against 4cb3eec (built kernel) interleaved
rm -rf /tmp/dk_before && mkdir -p /tmp/dk_before && git archive 4cb3eec | tar -x -C /tmp/dk_before
(cd /tmp/dk_before && "$PY" setup.py build_ext --inplace -q >/dev/null 2>&1)
$PY benchmarks/bench_decontam.py --e2e --e2e-mb 512 --baseline /tmp/dk_before --repeat 3 > /tmp/q_decontam.log 2>&1
stamp decontam_done >> /tmp/q_stamps.log
# samples: tasks on one repository and flat memory (commands of the sources.git and samples sections)
rm -rf /tmp/after /tmp/before && mkdir -p /tmp/after /tmp/before && git archive HEAD | tar -x -C /tmp/after && git archive HEAD | tar -x -C /tmp/before
(cd /tmp/before && git -C "$ROOT" diff bee2b2f~1 bee2b2f -- datakit | patch -R -p1 && git -C "$ROOT" diff 8e2ab12~1 8e2ab12 -- datakit | patch -R -p1) > /tmp/q_patch.log 2>&1
(cd /tmp/after && $PY setup.py build_ext --inplace -q >/dev/null 2>&1; cd /tmp/before && $PY setup.py build_ext --inplace -q >/dev/null 2>&1)
PYTHONPATH=/tmp/after $PY benchmarks/bench_discovery.py --repeat 1 --scaling-mirrors benchmarks/work/mirrors --scaling-repeat 5 --baseline /tmp/before --results benchmarks/results/discovery_scaling.json > /tmp/q_scaling.log 2>&1
stamp scaling_done >> /tmp/q_stamps.log
PYTHONPATH=/tmp/after $PY benchmarks/bench_samples.py --memory 3 --baseline /tmp/before > /tmp/q_memory.log 2>&1
stamp memory_done >> /tmp/q_stamps.log
rm -rf /tmp/tk4 && mkdir -p /tmp/tk4 && git archive HEAD datakit schemas | tar -x -C /tmp/tk4
PYTHONPATH=/tmp/tk4 $PY benchmarks/bench_tokens.py --mb 20,200 --repeat 3 \
    --paths tiktoken,fastokens,gigatoken,datakit,datakit_fastokens,startup,startup_fastokens \
    --results benchmarks/results/tokens_engine_quiet.json > /tmp/q_tokens.log 2>&1
stamp tokens_done >> /tmp/q_stamps.log
