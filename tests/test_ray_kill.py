"""A Ray worker SIGKILLed mid-task, on a real local Ray cluster through datatrove's Ray executor and the runner.

The stage is a test-only one whose step (a real PipelineStep run by the real executor) writes its process ids and
then waits on a gate file the test controls, so the kill lands while the task runs, every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from datakit.pipeline.stages import StageType

ROOT = Path(__file__).resolve().parent.parent
TASKS = 2


class Gate(PipelineStep):
    """Per task: records its attempt (pid and parent pid), waits for `<gate>/open.<rank>`, then writes
    `<out>/<rank>.txt`."""

    name = "gate"

    def __init__(self, gate: str, out: str):
        super().__init__()
        self.gate, self.out = gate, out

    def run(self, data, rank: int = 0, world_size: int = 1):
        gate = Path(self.gate)
        with (gate / f"attempts.{rank}").open("a") as f:
            f.write(f"{os.getpid()} {os.getppid()}\n")
        deadline = time.monotonic() + 120  # never hang a test run: a gate never opened fails the task
        while not (gate / f"open.{rank}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{gate}/open.{rank} never appeared")
            time.sleep(0.05)
        self.stat_update("gate.read")
        out = Path(self.out) / f"{rank:05d}.txt"
        out.with_suffix(".tmp").write_text(f"task {rank} of {world_size}\n")
        os.replace(out.with_suffix(".tmp"), out)
        self.stat_update("gate.written")
        yield from data or ()


class GateStage(StageType):
    type_name = "test.gate"
    summary = "waits on a gate file per task, then writes one file per task"
    needs_input = False
    units = ("gate",)

    @dataclass
    class Options:
        gate: str = ""

    def build(self, ctx):
        return [Gate(self.options.gate, str(ctx.output))]


def gated_recipe(out: Path, gate: Path, executor: dict, workers: int = TASKS):
    from datakit.recipe import Recipe, StageSpec

    gate.mkdir(parents=True, exist_ok=True)
    spec = StageSpec("gated", GateStage, GateStage.Options(str(gate)), None, out / "gated", TASKS, workers)
    return Recipe("ray-kill", None, out, out / "mirrors", {"tasks": TASKS, **executor}, [spec], "")


def drive(out: str, gate: str) -> None:
    """The driver (a subprocess of the test, so Ray's processes end with it): the stage on the ray executor."""
    from datakit.pipeline.runner import StageFailed, run_recipe

    recipe = gated_recipe(Path(out), Path(gate), {"type": "ray", "cpus_per_task": 1, "mem_per_cpu_gb": 0.25})
    try:
        run_recipe(recipe)
    except StageFailed as exc:
        print(f"StageFailed: {exc}", file=sys.stderr)
        sys.exit(1)


def run_local(out: Path, gate: Path) -> None:
    from datakit.pipeline.runner import run_recipe

    recipe = gated_recipe(out, gate, {"type": "local"}, workers=1)  # in this process, one task after the other
    for rank in range(TASKS):
        (gate / f"open.{rank}").touch()
    run_recipe(recipe)


def attempts(gate: Path, rank: int) -> list[int]:
    """The pids of the task's attempts so far (each line is written whole, before the task waits)."""
    f = gate / f"attempts.{rank}"
    return [int(line.split()[0]) for line in f.read_text().split("\n")[:-1]] if f.is_file() else []


def kill_ray_worker(pid: int) -> None:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    assert cmdline.startswith("ray::"), f"pid {pid} runs the task but is no Ray worker: {cmdline!r}"
    os.kill(pid, signal.SIGKILL)


def test_killed_ray_worker_is_retried_or_fails_loudly_then_a_rerun_completes(tmp_path):
    """Rank 0's worker is SIGKILLed once: datatrove resubmits it and it completes. Every attempt of rank 1 is
    killed: datatrove gives up after its resubmissions and the runner fails the stage naming the missing task.
    A rerun (local executor: the completion markers are the executors' common ground) runs rank 1 only, and the
    output is an uninterrupted run's."""
    from tests.test_slurm import comparable

    out, gate = tmp_path / "out", tmp_path / "gate"
    # its own process group: the Ray cluster it starts (raylet, GCS, agents) goes with it if the test stops it
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tests.test_ray_kill import drive; "
                             "drive(*sys.argv[1:])", str(out), str(gate)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)
    try:
        wait_for(lambda: attempts(gate, 0) and attempts(gate, 1), proc, "both tasks to start")
        killed: set[int] = set()
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            # rank 0: its first attempt only; rank 1: every attempt, until the run gives up
            for pid in attempts(gate, 0)[:1] + attempts(gate, 1)[-1:]:
                if pid not in killed:
                    kill_ray_worker(pid)
                    killed.add(pid)
            if len(attempts(gate, 0)) > 1:
                (gate / "open.0").touch()
            time.sleep(0.05)
        _, err = proc.communicate(timeout=10) if proc.poll() is not None else stop(proc)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert len(attempts(gate, 0)) == 2, f"rank 0 was not retried after its worker was killed: {err[-3000:]}"
    assert len(attempts(gate, 1)) > 1, "a killed task was not retried"
    assert proc.returncode == 1, err[-3000:]
    assert f"StageFailed: stage gated: 1/{TASKS} tasks did not complete; see {out / 'gated'}" in err, err[-3000:]
    assert sorted(p.name for p in (out / "gated" / ".datakit" / "logs" / "completions").iterdir()) == ["00000"]

    run_local(out, gate)  # the rerun resumes: rank 0 is not run again
    assert len(attempts(gate, 0)) == 2
    run_local(tmp_path / "reference", tmp_path / "gate_reference")
    assert comparable(out) == comparable(tmp_path / "reference")


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    """Kill the driver and its process group (the Ray cluster it started); its output."""
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            _, err = proc.communicate() if proc.poll() is not None else stop(proc)
            raise AssertionError(f"gave up waiting for {what}: {err[-3000:]}")
        time.sleep(0.05)
