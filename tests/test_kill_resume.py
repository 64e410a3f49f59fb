"""Kill anywhere, resume exactly: the demo recipe is killed with SIGKILL at points spread over its stages, each
rerun resuming the last, and the finished tree is byte-identical to an uninterrupted run's.

The kills come from outside, as a real crash does: the run is its own process group (datatrove's worker pool
included), the test watches the output tree and kills the group when a point is reached. No hook in the package.
After each kill nothing under a final name may be half written (every `*.parquet` and `*.json` reads); after the
last rerun no `*.tmp` is left anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from tests.test_recipes import DEMO, ROOT, datakit, tree_digest


def _done(stage: Path) -> int:
    folder = stage / ".datakit" / "logs" / "completions"
    return len(os.listdir(folder)) if folder.is_dir() else 0


def _started(stage: Path) -> bool:
    return (stage / ".datakit" / "logs" / "executor.json").is_file()


# (what, the stage the kill lands in, when to kill): in the order a run reaches them; each kill leaves that stage
# unfinished (no stats.json, which the runner writes last)
POINTS = [
    ("inside a local stage (demo.repo: its repository half built in .acme-widgets-build-*)", "repo",
     lambda o: (o / "repo").is_dir() and any(n.startswith(".acme-widgets-build-") for n in os.listdir(o / "repo"))),
    ("inside a task, its shard half written (samples/00000.parquet.tmp)", "samples",
     lambda o: (o / "samples" / "00000.parquet.tmp").is_file()),
    ("between tasks (bundles: task 0 complete, task 1 not)", "bundles",
     lambda o: _done(o / "bundles") == 1),
    ("during finalize (decontam: every task complete, decontam.json not written)", "decontam",
     lambda o: _done(o / "decontam") == 2),
    ("inside a task before it writes (tokens: packing)", "tokens",
     lambda o: _started(o / "tokens")),
    ("during the Megatron export", "megatron",
     lambda o: _started(o / "megatron")),
]


def run_until(out: Path, reached) -> int:
    """Run the demo recipe and SIGKILL its process group as soon as `reached(out)` holds; its return code."""
    proc = subprocess.Popen([sys.executable, "-m", "datakit.cli", "run", str(DEMO), "--output", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while proc.poll() is None:
            if reached(out):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        return proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def outputs(out: Path) -> dict[str, str]:
    """tree_digest, the git mirrors by their refs: a mirror is a cache whose pack files libgit2 names differently
    from one clone to the next (the same objects; two uninterrupted runs differ there too)."""
    import pygit2

    digest = {k: v for k, v in tree_digest(out).items() if not k.startswith("mirrors/")}
    for mirror in sorted((out / "mirrors").glob("*.git")):
        repo = pygit2.Repository(str(mirror))
        digest.update({f"mirrors/{mirror.name}:{r}": str(repo.references[r].resolve().target)
                       for r in sorted(repo.references)})
    return digest


def assert_no_half_files(out: Path) -> None:
    """Whatever a kill leaves under a final name is whole: partial files only ever carry `.tmp`. datatrove's own
    logs (`.datakit/logs`: executor.json, per-task stats) are left out: it rewrites them when a task reruns, and
    a task without its completion marker always reruns."""
    for p in out.rglob("*"):
        if "logs" in p.relative_to(out).parts:
            continue
        if p.suffix == ".parquet":
            pq.read_metadata(p)  # raises on a cut file (a 4-byte `PAR1`, a missing footer)
        elif p.suffix == ".json" and p.is_file():
            json.loads(p.read_text())


def test_sigkill_at_six_points_then_rerun_gives_the_same_bytes(tmp_path):
    out = tmp_path / "out"  # the same path for both runs: the mirrors' path is part of a stage's fingerprint
    assert datakit("run", DEMO, "--output", out).returncode == 0
    expected = outputs(out)
    shutil.rmtree(out)

    missed = []
    for what, stage, reached in POINTS:
        rc = run_until(out, reached)
        assert rc == -signal.SIGKILL, f"the run ended (rc {rc}) before the kill point: {what}"
        assert_no_half_files(out)
        # where the kill landed: the stage unfinished (the runner writes stats.json last); for samples, the shard
        # still under its partial name. The kill comes a poll after the point is seen, so a busy machine may land
        # it a little later (the state is still one a crash leaves): one miss of six is allowed
        if (out / stage / "stats.json").exists() or stage == "samples" and (out / "samples" / "00000.parquet").exists():
            missed.append(what)
    assert len(missed) <= 1, f"kills that landed after their point: {missed}"

    proc = datakit("run", DEMO, "--output", out)
    assert proc.returncode == 0, proc.stderr
    got = outputs(out)  # nothing lost, nothing duplicated, the same counts (stats.json)
    assert got == expected, " ".join(sorted(k for k in got.keys() | expected.keys() if got.get(k) != expected.get(k)))
    assert not list(out.rglob("*.tmp")), "a rerun leaves no partial file behind"
