"""The Slurm jobs a stage's earlier runs left behind, found from the ids each submission records (JOBS_FILE in the
stage's, or a phase's, logging dir; written by datakit/pipeline/slurm.py as sbatch answers). Apart from the
executor so the runner can check a stage folder without importing datatrove's Slurm executor.

- `stop_earlier_jobs`: before a stage folder is wiped (`--force`, a changed recipe), cancel what still runs there
  and wait until Slurm has stopped it, so no job of the old run writes into the new one's folder.
- `check_no_earlier_jobs`: before a stage runs on another executor (local, Ray), refuse while they run.
The same stage resumed on Slurm waits for them instead (`WaitingSlurmExecutor`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

JOBS_FILE = "slurm_jobs.json"  # {"jobs": [sbatch job ids]}
# squeue states after which a job does no more work (a requeued job goes back to PENDING)
FINISHED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
            "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"}
# squeue is an RPC to the controller, which busy clusters ask users to spare: asked less and less often
SQUEUE_S, SQUEUE_MAX_S = 0.5, 30.0
CANCEL_WAIT_S = 120.0  # how long a stage about to be wiped waits for scancel to stop an earlier run's jobs


def job_ids(text: str) -> list[str]:
    """The ids in a JOBS_FILE's text ([] when it does not parse: a write cut short by a kill)."""
    try:
        return [str(j) for j in json.loads(text)["jobs"]]
    except (ValueError, KeyError, TypeError):
        return []


def held(state: str, reason: str) -> bool:
    """A pending job that will not start by itself (held, or waiting on a dependency that cannot be met)."""
    return state == "PENDING" and ("held" in reason.lower() or reason == "DependencyNeverSatisfied")


def live(jobs: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The jobs (of `squeue_jobs`) that may still do work."""
    return {i: sr for i, sr in jobs.items() if sr[0] not in FINISHED}


def squeue_jobs(ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """{array task id: (state, reason)} of the jobs Slurm still knows; None when squeue did not answer (a busy
    controller: ask again). FileNotFoundError when this machine has no squeue."""
    proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                          capture_output=True, text=True)
    if proc.returncode:  # "Invalid job id": every job ended long enough ago to be purged
        return {} if "Invalid job id" in proc.stderr else None
    return {i: (s, r) for i, s, r in (line.split("|", 2) for line in proc.stdout.splitlines() if line)}


def no_squeue(ledger, ids: list[str]):
    """The error for a recorded job this machine cannot ask Slurm about."""
    from datakit.pipeline.runner import StageFailed

    return StageFailed(f"{ledger} lists Slurm job {', '.join(ids)} of an earlier run of this stage, and `squeue` is "
                       "not found here to check that it ended: rerun on the cluster's login node, or delete that "
                       "file once `squeue` there no longer lists the job")


def _ledgers(folder: Path) -> dict[Path, list[str]]:
    """The JOBS_FILEs under a stage folder's state dir (its logging dir, its phases'), with their ids."""
    from datakit.pipeline.runner import STATE_DIR

    state_dir = folder / STATE_DIR
    if not state_dir.exists():
        return {}
    return {p: ids for p in sorted(state_dir.rglob(JOBS_FILE), key=str) if (ids := job_ids(p.read_text()))}


def stop_earlier_jobs(folder: Path) -> None:
    """Cancel the jobs an earlier run of a stage left running in its folder and wait until Slurm has stopped
    them: the folder is about to be wiped."""
    from datakit.pipeline.runner import StageFailed

    stage = folder.name
    ledgers = _ledgers(folder)
    ids = sorted({j for found in ledgers.values() for j in found})
    if not ids:
        return
    try:
        jobs = squeue_jobs(ids)
    except FileNotFoundError:
        raise no_squeue(", ".join(map(str, ledgers)), ids) from None
    if jobs is not None and not live(jobs):
        return
    print(f"datakit: cancelling Slurm job {', '.join(ids)} of an earlier run of stage {stage} before its folder is "
          "replaced", file=sys.stderr)
    subprocess.run(["scancel", *ids], capture_output=True)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline:
        jobs = squeue_jobs(ids)
        if jobs is not None and not live(jobs):
            return
        time.sleep(SQUEUE_S)
    raise StageFailed(f"slurm job {', '.join(ids)} (an earlier run of stage {stage}) still runs {CANCEL_WAIT_S:.0f} s "
                      f"after scancel: wait until `squeue -j {','.join(ids)}` lists none of it, then rerun")


def check_no_earlier_jobs(folder: Path) -> None:
    """Refuse to run a stage on another executor while an earlier Slurm run's jobs still run in its folder; a
    record of jobs that all ended is dropped."""
    from datakit.pipeline.runner import StageFailed

    stage = folder.name
    for ledger, ids in _ledgers(folder).items():
        try:
            jobs = squeue_jobs(ids)
        except FileNotFoundError:
            raise no_squeue(ledger, ids) from None
        if jobs is None or live(jobs):
            raise StageFailed(f"stage {stage}: slurm job {', '.join(ids)} of an earlier run is still running (or "
                              f"squeue did not answer): wait for it or `scancel {' '.join(ids)}`, then rerun")
        ledger.unlink()
