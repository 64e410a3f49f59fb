#!/bin/bash
# The session-end quiet reruns (BENCHMARKS.md, first section), one after the other on an idle machine, from the
# repository root; logs in /tmp/q_*.log. Baseline: BASE, the tree at the session's start (its C kernel built).
# QUIET_SKIP_2GB=1 leaves out the 2 GB tokens run (~12 min with tiktoken's loop); QUIET_SKIP_DECONTAM=1 the decontam runs.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
BASE=${BASE:-23cbd8a}
unset PYTHONDONTWRITEBYTECODE  # cached bytecode, as users have it
stamp() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/q_stamps.log; }
: > /tmp/q_stamps.log; stamp start
rm -rf /tmp/q_base /tmp/q_head && mkdir -p /tmp/q_base /tmp/q_head
git archive "$BASE" | tar -x -C /tmp/q_base && git archive HEAD | tar -x -C /tmp/q_head
for t in /tmp/q_base /tmp/q_head; do (cd $t && "$PY" setup.py build_ext --inplace -q >/dev/null 2>&1); done
if [ "${QUIET_SKIP_DECONTAM:-0}" != 1 ]; then
    # decontam: the whole process on 512 MB against the base tree, interleaved; then its flat memory (51.2 -> 512 MB)
    PYTHONPATH=/tmp/q_head $PY benchmarks/bench_decontam.py --e2e --e2e-mb 512 --baseline /tmp/q_base --repeat 3 \
        > /tmp/q_decontam.log 2>&1; stamp decontam_e2e
    PYTHONPATH=/tmp/q_head $PY benchmarks/bench_decontam.py --rss-mb 51.2,512 --repeat 2 > /tmp/q_decontam_rss.log 2>&1
    stamp decontam_rss
fi
# tokens: start-up and 20 MB against the base tree (bench_tokens' datakit_base / startup_base paths)
PYTHONPATH=/tmp/q_head $PY benchmarks/bench_tokens.py --mb 20 --repeat 5 \
    --paths tiktoken,gigatoken,datakit,datakit_base,startup,startup_base --baseline /tmp/q_base \
    --results benchmarks/results/tokens_quiet_20mb.json > /tmp/q_tokens20.log 2>&1; stamp tokens_20mb
PYTHONPATH=/tmp/q_head $PY benchmarks/bench_tokens.py --mb 200 --repeat 2 \
    --paths tiktoken,gigatoken,datakit,datakit_base,startup --baseline /tmp/q_base \
    --results benchmarks/results/tokens_quiet_200mb.json > /tmp/q_tokens200.log 2>&1; stamp tokens_200mb
if [ "${QUIET_SKIP_2GB:-0}" != 1 ]; then
    PYTHONPATH=/tmp/q_head $PY benchmarks/bench_tokens.py --mb 2000 --repeat 1 \
        --paths tiktoken,gigatoken,datakit,datakit_base,startup --baseline /tmp/q_base \
        --results benchmarks/results/tokens_quiet_2gb.json > /tmp/q_tokens2000.log 2>&1; stamp tokens_2gb
fi
cat /tmp/q_stamps.log
