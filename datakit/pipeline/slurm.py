"""Slurm: datatrove's SlurmPipelineExecutor, made to wait.

datatrove's `run()` only submits the job array and returns, so the next stage (and a stage's own earlier phase,
see `run_phase`) would start before this one's tasks ran. `WaitingSlurmExecutor.run()` submits the same sbatch
script, then polls the completion markers and `squeue` until every task completed, and fails loudly (cancelling
what is left) when a job failed, was cancelled, timed out or is held. The runner then finalizes, writes stats and
cards exactly as for the local executor, so the output is the same bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from datatrove.executor.slurm import SlurmPipelineExecutor

# squeue states after which a job does no more work (a requeued job goes back to PENDING)
_FINISHED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
             "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT"}
# the completion markers (a folder listing) are polled often, so a short stage ends within a fraction of a second;
# squeue (an RPC to the controller, which busy clusters ask users to spare) less and less often
_MARKERS_S, _SQUEUE_S, _SQUEUE_MAX_S = 0.2, 0.5, 30.0


class _JobIds(list):
    """sbatch's job-id retriever that also remembers every id (datatrove keeps only the last one)."""

    def __call__(self, sbatch_output: str) -> str:
        self.append(sbatch_output.split()[-1])
        return self[-1]


class WaitingSlurmExecutor(SlurmPipelineExecutor):
    def __init__(self, *args, **kwargs):
        if not any(kwargs.get(k) for k in ("env_command", "condaenv", "venv_path")):
            # the job runs `launch_pickled_pipeline` from PATH: this interpreter's, even when its venv is not active
            kwargs["env_command"] = f'export PATH="{Path(sys.executable).parent}:$PATH"'
        parts = Path(str(kwargs.get("logging_dir", ""))).parts  # <stage>/.datakit/logs or …/logs/<phase>
        if ".datakit" in parts[1:]:  # squeue and the job logs name the stage (and phase): datakit-dedup-signatures
            i = parts.index(".datakit")
            kwargs.setdefault("job_name", "-".join(["datakit", parts[i - 1]] + [p for p in parts[-1:] if p != "logs"]))
        super().__init__(*args, job_id_retriever=_JobIds(), **kwargs)

    def run(self):
        if "SLURM_ARRAY_TASK_ID" in os.environ:  # inside an array task: run its rank
            return super().run()
        from datakit.pipeline.runner import StageFailed

        try:
            self.launch_job()
        except FileNotFoundError as exc:
            raise StageFailed("slurm executor: `sbatch` not found; run datakit on a Slurm login node (or put "
                              "Slurm's client commands on PATH)") from exc
        except subprocess.CalledProcessError as exc:
            raise StageFailed(f"slurm executor: sbatch refused the job (exit {exc.returncode}, its message is "
                              "above): check executor.partition, time and sbatch_args against `sinfo`") from exc
        if self.job_id == -1:  # every task had completed: nothing was submitted
            return
        try:
            self._wait()
        except BaseException:  # failed, held or interrupted: leave nothing running that writes into the stage
            subprocess.run(["scancel", *self.job_id_retriever], capture_output=True)
            raise
        self._merge_stats()

    def launch_merge_stats(self):
        """No merge job: the driver merges the task stats after the wait (`_merge_stats`), as the local executor
        does, which saves a job per stage and one that would wait forever on a failed array (afterok)."""

    def _completed(self) -> int:
        return len(self.logging_dir.list_files("completions"))  # a local folder or object storage

    def _jobs(self) -> dict[str, tuple[str, str]] | None:
        """{array task id: (state, reason)} of our jobs that Slurm still knows; None when squeue failed."""
        proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(self.job_id_retriever),
                               "-o", "%i|%T|%r"], capture_output=True, text=True)
        if proc.returncode:  # "Invalid job id": every job ended long enough ago to be purged
            return {} if "Invalid job id" in proc.stderr else None
        return {i: (s, r) for i, s, r in (line.split("|", 2) for line in proc.stdout.splitlines() if line)}

    def _wait(self) -> None:
        delay = _SQUEUE_S
        next_squeue = time.monotonic() + delay
        while self._completed() < self.tasks:
            if time.monotonic() >= next_squeue:
                jobs = self._jobs()
                if jobs is not None:  # None: squeue did not answer this time (a busy controller); ask again
                    held = {i: r for i, (s, r) in jobs.items() if s == "PENDING" and
                            ("held" in r.lower() or r == "DependencyNeverSatisfied")}
                    running = [i for i, (s, _) in jobs.items() if s not in _FINISHED and i not in held]
                    if not running and self._completed() < self.tasks:  # markers come before a task exits
                        self._fail(jobs, held)
                delay = min(delay * 1.5, _SQUEUE_MAX_S)
                next_squeue = time.monotonic() + delay
            time.sleep(_MARKERS_S)

    def _fail(self, jobs: dict[str, tuple[str, str]], held: dict[str, str]) -> None:
        from datakit.pipeline.runner import StageFailed

        bad = sorted(f"{i} {s}" + (f" ({r})" if i in held else "") for i, (s, r) in jobs.items() if s != "COMPLETED")
        raise StageFailed(
            f"slurm job {', '.join(self.job_id_retriever)}: {self.tasks - self._completed()}/{self.tasks} tasks did "
            f"not complete ({', '.join(bad) or 'gone from squeue'}; the rest of the job is cancelled). See "
            f"{self.slurm_logs_folder}/<job>_<task>.out and {self.logging_dir.resolve_paths('logs')}, then rerun "
            "to resume")

    def _merge_stats(self) -> None:
        from datatrove.utils.stats import PipelineStats

        total = PipelineStats()
        for rank in range(self.tasks):
            with self.logging_dir.open(f"stats/{rank:05d}.json", "r") as f:
                total += PipelineStats.from_json(json.load(f))
        with self.logging_dir.open("stats.json", "wt") as f:
            total.save_to_disk(f)
