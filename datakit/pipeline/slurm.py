"""Slurm: datatrove's SlurmPipelineExecutor, made to wait.

datatrove's `run()` only submits the job array and returns, so the next stage (and a stage's own earlier phase,
see `run_phase`) would start before this one's tasks ran. `WaitingSlurmExecutor.run()` submits the same sbatch
script, then polls the completion markers and `squeue` until every task completed, and fails loudly (cancelling
what is left) when a job failed, was cancelled, timed out or is held. The runner then finalizes, writes stats and
cards exactly as for the local executor, so the output is the same bytes.

A driver killed with SIGKILL (or on a login node that went down) cannot cancel its jobs, which run on. So each
submission's ids go to `slurm_jobs.json` in the stage's logging dir as sbatch answers, and the next run of the
stage reads them first: the same stage (same fingerprint) waits for those jobs to end before it submits what they
left undone (a second array would run the same ranks at the same time, and rewrite the `ranks_to_run.json` the
pending ones still read); a stage about to be wiped (`--force`, a changed recipe) cancels them and waits until
Slurm has stopped them (`stop_earlier_jobs`). The file goes once every task of the stage has completed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from datatrove.executor.slurm import SlurmPipelineExecutor

from datakit.pipeline.slurm_jobs import JOBS_FILE, SQUEUE_MAX_S, SQUEUE_S, held, job_ids, live, no_squeue, \
    squeue_jobs

# the completion markers (a folder listing) are polled often, so a short stage ends within a fraction of a second;
# squeue (an RPC to the controller, which busy clusters ask users to spare) less and less often
_MARKERS_S = 0.2


class _JobIds(list):
    """sbatch's job-id retriever that also remembers every id (datatrove keeps only the last one) and records
    them in the logging dir's JOBS_FILE as each one is known, before the driver waits on it."""

    def __init__(self, ledger=None):
        super().__init__()
        self.ledger = ledger  # the logging dir (a datatrove DataFolder); None: ids are not recorded

    def __call__(self, sbatch_output: str) -> str:
        self.append(sbatch_output.split()[-1])
        if self.ledger is not None:
            with self.ledger.open(JOBS_FILE, "wt") as f:
                json.dump({"jobs": list(self)}, f)
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
        self.job_id_retriever.ledger = self.logging_dir

    def run(self):
        if "SLURM_ARRAY_TASK_ID" in os.environ:  # inside an array task: run its rank
            return super().run()
        from datakit.pipeline.runner import StageFailed

        self._wait_for_earlier_jobs()
        try:
            self.launch_job()
        except FileNotFoundError as exc:
            raise StageFailed("slurm executor: `sbatch` not found; run datakit on a Slurm login node (or put "
                              "Slurm's client commands on PATH)") from exc
        except subprocess.CalledProcessError as exc:
            raise StageFailed(f"slurm executor: sbatch refused the job (exit {exc.returncode}, its message is "
                              "above): check executor.partition, time and sbatch_args against `sinfo`") from exc
        if self.job_id == -1:  # every task had completed: nothing was submitted
            self._forget_jobs()
            return
        try:
            self._wait()
        except BaseException:  # failed, held or interrupted: leave nothing running that writes into the stage
            subprocess.run(["scancel", *self.job_id_retriever], capture_output=True)
            raise
        self._forget_jobs()
        self._merge_stats()

    def _forget_jobs(self) -> None:
        """Every task completed: no job of this stage is left for a later run to wait for."""
        if self.logging_dir.exists(JOBS_FILE):
            self.logging_dir.rm(JOBS_FILE)

    def _wait_for_earlier_jobs(self) -> None:
        """An earlier driver of this stage was killed while its jobs ran: wait for them to end (a held one is
        cancelled: it would never start), so the ranks they complete are not submitted again; interrupted, they
        are cancelled, as this run's own would be."""
        if not self.logging_dir.exists(JOBS_FILE):
            return
        with self.logging_dir.open(JOBS_FILE, "rt") as f:
            earlier = job_ids(f.read())
        told, delay = False, SQUEUE_S
        try:
            while earlier:
                jobs = squeue_jobs(earlier)
                if jobs is not None:
                    running = live(jobs)
                    if not running:
                        return
                    stuck = [i for i, (s, r) in running.items() if held(s, r)]
                    if stuck:
                        subprocess.run(["scancel", *stuck], capture_output=True)
                    if not told:
                        print(f"datakit: slurm job {', '.join(earlier)} of an earlier run of this stage is still "
                              f"running ({len(running)} tasks): waiting for it, then submitting what it leaves undone "
                              f"(or `scancel {' '.join(earlier)}` and rerun)", file=sys.stderr)
                        told = True
                time.sleep(delay)
                delay = min(delay * 1.5, SQUEUE_MAX_S)
        except FileNotFoundError:
            raise no_squeue(self.logging_dir.resolve_paths(JOBS_FILE), earlier) from None
        except BaseException:
            subprocess.run(["scancel", *earlier], capture_output=True)
            raise

    def launch_merge_stats(self):
        """No merge job: the driver merges the task stats after the wait (`_merge_stats`), as the local executor
        does, which saves a job per stage and one that would wait forever on a failed array (afterok)."""

    def _completed(self) -> int:
        return len(self.logging_dir.list_files("completions"))  # a local folder or object storage

    def _wait(self) -> None:
        delay = SQUEUE_S
        next_squeue = time.monotonic() + delay
        while self._completed() < self.tasks:
            if time.monotonic() >= next_squeue:
                jobs = squeue_jobs(self.job_id_retriever)
                if jobs is not None:  # None: squeue did not answer this time (a busy controller); ask again
                    stuck = {i: r for i, (s, r) in jobs.items() if held(s, r)}
                    running = [i for i in live(jobs) if i not in stuck]
                    if not running and self._completed() < self.tasks:  # markers come before a task exits
                        self._fail(jobs, stuck)
                delay = min(delay * 1.5, SQUEUE_MAX_S)
                next_squeue = time.monotonic() + delay
            time.sleep(_MARKERS_S)

    def _fail(self, jobs: dict[str, tuple[str, str]], stuck: dict[str, str]) -> None:
        from datakit.pipeline.runner import StageFailed

        bad = sorted(f"{i} {s}" + (f" ({r})" if i in stuck else "") for i, (s, r) in jobs.items() if s != "COMPLETED")
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
