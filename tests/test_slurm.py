"""The demo recipe on a real single-node Slurm cluster (tests/slurm_cluster.py: slurmctld + slurmd + munge, installed
with apt-get by the test run when missing) through datatrove's Slurm executor. The runner waits for every stage's
job array, so stages run in order, and then finalizes, counts and writes cards as for the local executor: the
output is the local executor's, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tests.slurm_cluster import PARTITION, SlurmCluster, install
from tests.test_kill_resume import outputs
from tests.test_recipes import DEMO

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    with FileLock(str(shared / "slurm-install.lock")):  # one apt-get (dpkg's lock) for all xdist workers
        reason = install()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs tests/test_slurm.py on a real Slurm cluster: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


def run_on_slurm(slurm: SlurmCluster, tmp_path: Path, recipe: dict, **executor) -> subprocess.CompletedProcess:
    recipe = {**recipe, "executor": {"type": "slurm", "tasks": 2, "workers": 2, "partition": PARTITION,
                                     "time": "00:20:00", **executor}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(path), "--output", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                          env={**slurm.env, "COLUMNS": "200"}, timeout=600)


def comparable(out: Path) -> dict[str, str]:
    """Every file under `out`, as bytes, with three values that follow from the folder's path written as names:
    the path itself (repos.txt, manifests and cards name their folders), each stage's fingerprint (a hash of the
    stage's key, which holds the mirrors' path; manifests carry it as `recipe_hash`) and each manifest's sha256
    (the export's manifest names its input's). Left out: `<stage>/.datakit/**/logs/`, datatrove's (task logs and
    per-task stats carry timings, executor.json names the executor, Slurm adds its sbatch script, pickled executor
    and job logs), of which only the completion markers' names are compared; and `mirrors/`, compared by their
    refs (test_kill_resume.outputs: libgit2 names pack files differently per clone)."""
    names = [(hashlib.sha256(m.read_bytes()).hexdigest().encode(), f"<sha256 of {m.relative_to(out)}>")
             for m in sorted(out.glob("*/manifest.json"))]
    names += [(f.read_bytes().strip(), f"<fingerprint of {f.parts[-3]}>")
              for f in sorted(out.glob("*/.datakit/fingerprint"))]
    names.append((str(out).encode(), "<OUT>"))
    found: dict[str, str] = {k: v for k, v in outputs(out).items() if k.startswith("mirrors/")}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if not p.is_file() or rel.parts[0] == "mirrors":
            continue
        if rel.parts[1] == ".datakit" and "logs" in rel.parts:  # the stage's and its phases' (dedup)
            if rel.parent.name == "completions":
                found[str(rel)] = "marker"
            continue
        data = p.read_bytes()
        for value, name in names:
            data = data.replace(value, name.encode())
        found[str(rel)] = hashlib.sha256(data).hexdigest()
    return found


def test_demo_on_slurm_gives_the_local_executors_bytes(slurm, demo_output, tmp_path):
    recipe = yaml.safe_load(DEMO.read_text())
    # + a stage that runs phases of its own before its tasks (run_phase): exact-only dedup (signatures, clusters;
    # near dedup adds a 25-task band phase, 5 s a job here); not in the local demo, so checked on its own below
    recipe["stages"].append({"name": "dedup", "stage": "dedup", "inputs": ["samples", "bundles", "synth"],
                             "options": {"near": False}})
    proc = run_on_slurm(slurm, tmp_path, recipe)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    # every stage with tasks ran as a Slurm job array (demo.repo runs in the driver, as it does locally), and so
    # did dedup's phases, each waited for before the next
    launched = {p.parts[-4] for p in out.glob("*/.datakit/logs/launch_script.slurm")}
    assert launched == {s["name"] for s in recipe["stages"]} - {"repo"}
    phases = sorted(p.parent.name for p in out.glob("dedup/.datakit/dedup/logs/*/launch_script.slurm"))
    assert phases == ["clusters", "signatures"]
    script = (out / "dedup" / ".datakit" / "dedup" / "logs" / "signatures" / "launch_script.slurm").read_text()
    assert "--job-name=datakit-dedup-signatures" in script
    units = json.loads((out / "dedup" / "stats.json").read_text())["units"]  # the demo's mirror: exact copies
    assert units["agentless"]["filtered"] == {"exact_duplicate": units["agentless"]["read"] // 2} != {}
    shutil.rmtree(out / "dedup")
    expected, got = comparable(demo_output), comparable(out)
    assert sorted(got) == sorted(expected)
    differ = [k for k in expected if expected[k] != got[k]]
    assert not differ, f"{len(differ)} files differ from the local executor's, e.g. {differ[:5]}"


def test_failed_job_fails_the_stage_naming_its_logs(slurm, tmp_path):
    """A job whose batch script fails (here: an environment command that cannot activate anything) is a
    StageFailed naming Slurm's log folder; the stages after it never start."""
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["stages"] = recipe["stages"][:3]  # repo (in the driver), pulls (fails), samples (never submitted)
    proc = run_on_slurm(slurm, tmp_path, recipe, env_command="echo cannot activate >&2; exit 3")
    slurm_logs = tmp_path / "out" / "pulls" / ".datakit" / "logs" / "slurm_logs"
    assert proc.returncode != 0
    assert "2/2 tasks did not complete" in proc.stderr and "FAILED" in proc.stderr, proc.stderr
    assert str(slurm_logs) in proc.stderr
    assert all("cannot activate" in p.read_text() for p in slurm_logs.glob("*.out")) and len(list(
        slurm_logs.glob("*.out"))) == 2
    assert not (tmp_path / "out" / "samples").exists()


def test_sbatch_refusal_names_the_options(slurm, tmp_path):
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["stages"] = recipe["stages"][:2]
    proc = run_on_slurm(slurm, tmp_path, recipe, partition="nope")
    assert proc.returncode != 0
    assert "sbatch refused the job" in proc.stderr and "executor.partition" in proc.stderr, proc.stderr



def _driver_killed_while_its_job_runs(slurm: SlurmCluster, tmp_path: Path) -> tuple[dict, list[str]]:
    """The demo's repo and pulls stages on Slurm, each job 6 s long; the driver is killed with SIGKILL once the
    pulls job array runs (the jobs run on, under slurmd). The recipe and the job ids its ledger recorded."""
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["stages"] = recipe["stages"][:2]
    recipe["executor"] = {"type": "slurm", "tasks": 2, "workers": 2, "partition": PARTITION, "time": "00:20:00",
                          "env_command": f'sleep 6; export PATH="{Path(sys.executable).parent}:$PATH"'}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    driver = subprocess.Popen([sys.executable, "-m", "datakit.cli", "run", str(path), "--output",
                               str(tmp_path / "out"), "--quiet"], cwd=tmp_path, env=slurm.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ledger = tmp_path / "out" / "pulls" / ".datakit" / "logs" / "slurm_jobs.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before its pulls job ran"
            if ledger.is_file():
                ids = json.loads(ledger.read_text())["jobs"]
                states = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%T"], capture_output=True,
                                        text=True, env=slurm.env).stdout.split()
                if "RUNNING" in states:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the pulls job never ran")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    return recipe, ids


def _pulls(out: Path) -> dict[str, str]:
    return {k: v for k, v in comparable(out).items() if k.startswith("pulls/")}


def test_a_rerun_after_a_killed_driver_waits_for_its_jobs_and_submits_nothing_twice(slurm, demo_output, tmp_path):
    """SIGKILL leaves the driver's job array running: the rerun waits for it (a second array would run the same
    ranks at once) and then submits only what it left undone, here nothing; the output is the local bytes."""
    recipe, ids = _driver_killed_while_its_job_runs(slurm, tmp_path)
    proc = run_on_slurm(slurm, tmp_path, recipe, env_command=recipe["executor"]["env_command"])
    assert proc.returncode == 0, proc.stderr
    assert f"slurm job {', '.join(ids)} of an earlier run of this stage is still running" in proc.stderr
    logs = tmp_path / "out" / "pulls" / ".datakit" / "logs"
    ran = {p.name.split("_")[0] for p in (logs / "slurm_logs").glob("*.out")}
    assert ran == set(ids), f"the rerun submitted the pulls tasks again: job logs of {sorted(ran)}"
    assert not (logs / "slurm_jobs.json").exists()  # every task completed: nothing left for a later run to wait on
    expected = {k: v for k, v in comparable(demo_output).items() if k.startswith("pulls/")}
    assert _pulls(tmp_path / "out") == expected


def test_a_forced_rerun_after_a_killed_driver_cancels_its_jobs_before_wiping_the_stage(slurm, demo_output,
                                                                                     tmp_path):
    recipe, ids = _driver_killed_while_its_job_runs(slurm, tmp_path)
    recipe_path = tmp_path / "recipe.yaml"
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(recipe_path), "--output",
                           str(tmp_path / "out"), "--quiet", "--force"], capture_output=True, text=True,
                          cwd=tmp_path, env={**slurm.env, "COLUMNS": "200"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"cancelling Slurm job {', '.join(ids)} of an earlier run of stage pulls" in proc.stderr, proc.stderr
    states = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%T"], capture_output=True,
                            text=True, env=slurm.env).stdout.split()
    assert set(states) <= {"CANCELLED"}, states
    ran = {p.name.split("_")[0] for p in (tmp_path / "out" / "pulls" / ".datakit" / "logs" / "slurm_logs").glob(
        "*.out")}
    assert ran and not ran & set(ids)  # the new run's own job, in a folder the old one no longer writes into
    expected = {k: v for k, v in comparable(demo_output).items() if k.startswith("pulls/")}
    assert _pulls(tmp_path / "out") == expected


def test_a_local_run_refuses_while_an_earlier_slurm_run_still_runs_in_the_stage(slurm, tmp_path):
    recipe, ids = _driver_killed_while_its_job_runs(slurm, tmp_path)
    recipe["executor"] = {"type": "local", "tasks": 2, "workers": 1}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(path), "--output", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True, cwd=tmp_path, env=slurm.env, timeout=600)
    assert proc.returncode != 0
    assert f"stage pulls: slurm job {', '.join(ids)} of an earlier run is still running" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    subprocess.run(["scancel", *ids], env=slurm.env)


def test_slurm_recipe_without_partition_or_time_fails_before_any_work(tmp_path):
    from datakit.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=r"executor: slurm needs partition and time \(e\.g\."):
        parse_recipe({"name": "t", "executor": {"type": "slurm"}, "stages": [{"stage": "demo.repo"}]}, "r.yaml",
                     base_output=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
