"""datakit/pipeline/local_executor.py: a pool child killed in the middle of a task (the out-of-memory killer's
SIGKILL) ends the run with an error that says so, instead of waiting forever for the task's result; a rerun
resumes with only that task."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

STEP = '''
import os
import signal
import time

from datatrove.pipeline.base import PipelineStep


class KillInChild(PipelineStep):
    """Kills the pool child that runs it (SIGKILL, as the out-of-memory killer does); in the driver it takes
    0.3 s, so the pool has started and taken a task before the driver has done them all."""

    name = "kill in a pool child"

    def __init__(self, driver_pid: int, kill: bool = True):
        super().__init__()
        self.driver_pid, self.kill = driver_pid, kill

    def run(self, data, rank: int = 0, world_size: int = 1):
        if self.kill and os.getpid() != self.driver_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.3)
        return
        yield
'''

MAIN = '''
import os
import sys

from killer import KillInChild

from datakit.pipeline.local_executor import LocalExecutor, WorkerDied

if __name__ == "__main__":
    ex = LocalExecutor([KillInChild(os.getpid(), kill=sys.argv[2] == "kill")], tasks=6, workers=2,
                       logging_dir=sys.argv[1])
    try:
        ex.run()
    except WorkerDied as exc:
        print(exc)
        sys.exit(3)
    print("done")
'''


def run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tmp_path / "main.py"), str(tmp_path / "logs"), mode],
                          cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=240)


def test_a_killed_pool_child_fails_the_run_and_a_rerun_resumes(tmp_path):
    (tmp_path / "killer.py").write_text(textwrap.dedent(STEP))
    (tmp_path / "main.py").write_text(textwrap.dedent(MAIN))
    first = run(tmp_path, "kill")  # before the fix: no result ever came for the lost task (timeout here)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "was killed by SIGKILL, as the out-of-memory killer does" in first.stdout
    assert "rerun the same command to resume" in first.stdout
    done = sorted(p.name for p in (tmp_path / "logs" / "completions").iterdir())
    assert 1 <= 6 - len(done) <= 2  # the killed child's task (and at most one it was handed after) not done
    second = run(tmp_path, "keep")
    assert second.returncode == 0 and second.stdout.strip().endswith("done"), second.stdout + second.stderr
    assert sorted(p.name for p in (tmp_path / "logs" / "completions").iterdir()) == [f"{r:05d}" for r in range(6)]
