"""Recipes and the CLI, run for real: validation before work, the demo end to end, rerun, resume, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from datakit.cli import build_parser, main
from datakit.io.records import prompt_completion
from datakit.io.schemas import arrow_schema, validate
from datakit.recipe import RecipeError, load_recipe, parse_recipe
from datakit.samples.edits import apply_edits, parse_edits
from datakit.sources.git_mirror import open_mirror, read_blob
from tests.test_samples_format import assert_both_parsers_reproduce

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "demo.yaml"


def datakit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datakit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=600)


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every output file (datakit's own state folder and the mirrors' FETCH_HEAD aside)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".datakit" not in p.parts and p.name != "FETCH_HEAD"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = datakit("run", DEMO, "--output", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ------------------------------------------------------------------------------------------- validation first
def _recipe(**stage):
    return {"name": "t", "stages": [{"name": "s", "stage": "samples.agentless", "input": ".", **stage}]}


@pytest.mark.parametrize("data,message", [
    ({"name": "t", "stages": [{"stage": "nope"}]}, "stages[0].stage: unknown stage 'nope'"),
    (_recipe(options={"max_file": 3}), "stages[0] (s).options.max_file: unknown option for stage samples.agentless"),
    (_recipe(options={"max_files": "ten"}), "options.max_files: expected int, got str"),
    (_recipe(input="/definitely/missing"), "stages[0] (s).input: '/definitely/missing' is neither an earlier stage"),
    (_recipe(tasks=0), "stages[0] (s).tasks: must be a positive integer"),
    (_recipe(colour="red"), "unknown key colour"),
    ({"name": "t", "executor": {"type": "k8s"}, "stages": [{"stage": "demo.repo"}]}, "executor.type: 'k8s'"),
    ({"name": "t", "executor": {"type": "local", "partition": "x"}, "stages": [{"stage": "demo.repo"}]},
     "executor: unknown key partition"),
    ({"name": "t", "stages": []}, "`stages:` must be a non-empty list"),
    ({"name": "t", "stages": [{"stage": "demo.repo"}, {"stage": "demo.repo"}]}, "duplicate stage name"),
    ({"name": "t", "stages": [{"stage": "samples.agentless"}]}, "needs an `input:`"),
])
def test_bad_recipes_fail_before_any_work(tmp_path, data, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, base_output=str(tmp_path / "out"))
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_cli_reports_recipe_errors_with_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages:\n  - stage: samples.agentless\n    input: nowhere\n")
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    path.write_text("stages: [unclosed\n")
    assert main(["run", str(path)]) == 2 and "not valid YAML" in capsys.readouterr().err


def test_help_explains_each_option():
    helptext = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for flag in ("--tasks", "--workers", "--output", "--limit", "--executor", "--stages", "--force", "--check"):
        assert flag in helptext
    assert "local" in helptext and "slurm" in helptext and "ray" in helptext


def test_demo_recipe_checks(tmp_path):
    recipe = load_recipe(DEMO, base_output=str(tmp_path / "o"), executor_override={"tasks": 3})
    assert [s.name for s in recipe.stages] == ["repo", "pulls", "samples", "bundles", "synth", "redact", "decontam",
                                               "tokens",
                                               "megatron", "sft_trajectories", "sft_agent", "sft_decontam",
                                               "sft_tokens"]
    assert recipe.stage("redact").inputs == ["samples", "bundles", "synth"]
    assert recipe.stage("decontam").inputs == ["redact"]
    assert all(s.tasks == 3 for s in recipe.stages)  # the command line wins over the stage


def test_refuses_to_write_into_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "repo").mkdir(parents=True)
    (out / "repo" / "precious.txt").write_text("mine")
    assert main(["run", str(DEMO), "--output", str(out), "--quiet"]) == 2
    assert "not written by datakit" in capsys.readouterr().err
    assert (out / "repo" / "precious.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------ the demo
def test_demo_writes_samples_for_both_roles_and_counts_add_up(demo_run):
    out, proc = demo_run
    assert "datakit summary" in proc.stdout and "datakit summary" not in proc.stderr
    stats = json.loads((out / "samples" / "stats.json").read_text())
    validate(stats, "stage_stats")
    for role in ("bugfixer", "testwriter"):
        u = stats["units"][role]
        assert u["read"] == u["written"] + sum(u["quarantined"].values()) + sum(u["filtered"].values())
        assert u["written"] > 0
    pulls = json.loads((out / "pulls" / "stats.json").read_text())["units"]["pulls"]
    assert pulls["read"] == pulls["written"] + sum(pulls["quarantined"].values())
    assert stats["units"]["bugfixer"]["read"] == pulls["written"]

    samples = pl.read_parquet(out / "samples" / "*.parquet")
    kinds = set(zip(samples["kind"], samples["role"]))
    assert kinds == {(k, r) for k in ("localize", "edit") for r in ("bugfixer", "testwriter")}
    assert samples["id"].n_unique() == len(samples)
    quarantined = pl.read_parquet(out / "samples" / "quarantine" / "*.parquet")
    assert len(quarantined) == sum(sum(stats["units"][r]["quarantined"].values()) for r in ("bugfixer", "testwriter"))


def test_demo_edits_reapply_byte_for_byte(demo_run):
    out, _ = demo_run
    repo = open_mirror(out / "mirrors" / "acme__widgets.git")
    rows = pl.read_parquet(out / "samples" / "*.parquet").filter(pl.col("kind") == "edit").to_dicts()
    assert len(rows) >= 15
    for row in rows:
        edits = parse_edits(prompt_completion(row)[1])
        base = repo[row["meta"]["base_sha"]].tree
        head = repo[row["meta"]["head_sha"]].tree
        old = {e.path: read_blob(repo, base, e.path).decode() for e in edits if e.status != "added"}
        new = apply_edits(old, edits)
        for e in edits:
            assert new[e.path].encode() == read_blob(repo, head, e.path)
        assert_both_parsers_reproduce(repo, row)  # Agentless-like and SWE-RL-like readers
    statuses = {e.status for row in rows for e in parse_edits(prompt_completion(row)[1])}
    assert "modified" in statuses and statuses <= {"modified", "added"}  # deleted/renamed files are quarantined


def test_demo_outputs_read_with_pyarrow_polars_datasets(demo_run):
    out, _ = demo_run
    from datasets import load_dataset

    table = pq.read_table(out / "samples" / "00000.parquet")
    assert table.schema.equals(arrow_schema("sample"), check_metadata=False)
    assert pq.ParquetFile(out / "samples" / "00000.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    ds = load_dataset("parquet", data_files=str(out / "samples" / "00000.parquet"), split="train",
                      cache_dir=str(out.parent / "hf_cache"))
    assert len(ds) == table.num_rows and ds[0]["text"] == table.column("text")[0].as_py()
    for row in table.to_pylist():
        validate(row, "sample")
    for row in pq.read_table(out / "pulls" / "00000.parquet").to_pylist():
        validate(row, "pull_record")


def test_rerun_does_no_work_and_changes_no_byte(demo_run):
    out, _ = demo_run
    before = tree_digest(out)
    # every file but the mirrors' (sources fetches its unchanged mirror again), datakit's own state included
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "mirrors" not in p.parts}
    proc = datakit("run", DEMO, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("resumed: nothing to do") == 13
    assert tree_digest(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "mirrors" not in p.parts} == mtimes


def test_same_input_same_bytes(demo_run, tmp_path):
    out, _ = demo_run
    proc = datakit("run", DEMO, "--output", tmp_path / "again")
    assert proc.returncode == 0, proc.stderr
    a, b = tree_digest(out), tree_digest(tmp_path / "again")
    # every file but the mirrors' packs (libgit2 names them anew on each clone) is the same in another folder:
    # manifests and cards too (fingerprints count the mirrors by their place in the output folder); three files
    # name the folder itself on purpose: the demo's repos.txt, the Megatron blend (absolute prefixes) and
    # decontam's mirrors_dir
    names_the_folder = {"repo/repos.txt", "megatron/blend.txt", "decontam/decontam.json",
                        "sft_decontam/decontam.json"}
    same = [k for k in a if "mirrors" not in Path(k).parts and k not in names_the_folder]
    assert len(same) > 100 and [k for k in same if a[k] != b.get(k)] == []
    for k in names_the_folder:
        assert (out / k).read_text().replace(str(out), "<out>") == \
            (tmp_path / "again" / k).read_text().replace(str(tmp_path / "again"), "<out>")


def test_killed_task_resumes_without_loss_or_duplication(tmp_path):
    out = tmp_path / "out"
    assert datakit("run", DEMO, "--output", out).returncode == 0
    reference = tree_digest(out)
    # the state a kill leaves: the task's marker missing, its shard half-written
    logs = next((out / "samples" / ".datakit").glob("logs"))
    (logs / "completions" / "00000").unlink()
    shard = out / "samples" / "00000.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    (out / "samples" / "stats.json").unlink()
    proc = datakit("run", DEMO, "--output", out)
    assert proc.returncode == 0, proc.stderr
    # only the samples stage ran again; what depends on it had nothing new to do (same fingerprint)
    assert proc.stdout.count("resumed: nothing to do") == 12
    assert tree_digest(out) == reference


def test_changed_options_rerun_the_stage(demo_run, tmp_path):
    import shutil

    src, _ = demo_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["stages"][2]["options"]["roles"] = ["bugfixer"]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = datakit("run", path, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert set(pl.read_parquet(out / "samples" / "*.parquet")["role"]) == {"bugfixer"}


def test_stage_subcommands_and_several_tasks(demo_run, tmp_path):
    """`datakit sources` with 2 repositories on 2 tasks (a real worker pool), then `datakit samples`."""
    out, _ = demo_run
    repo = out / "repo" / "acme-widgets.git"
    proc = datakit("sources", f"acme/widgets {repo}", f"acme/widgets-copy {repo}", "--output", tmp_path / "s",
                   "--tasks", 2, "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    pulls = pl.read_parquet(tmp_path / "s" / "pulls" / "*.parquet")
    assert sorted(set(pulls["repo"])) == ["acme/widgets", "acme/widgets-copy"]
    assert len(list((tmp_path / "s" / "pulls").glob("0000*.parquet"))) == 2
    proc = datakit("samples", "--input", tmp_path / "s" / "pulls", "--mirrors", tmp_path / "s" / "mirrors",
                   "--output", tmp_path / "x", "--tasks", 2, "--roles", "testwriter")
    assert proc.returncode == 0, proc.stderr
    samples = pl.read_parquet(tmp_path / "x" / "samples" / "*.parquet")
    assert set(samples["role"]) == {"testwriter"} and set(samples["meta"].struct.field("repo")) == set(pulls["repo"])


def test_limit_caps_records_per_task(tmp_path):
    proc = datakit("run", DEMO, "--output", tmp_path / "o", "--limit", 3)
    assert proc.returncode == 0, proc.stderr
    # the pulls stage runs 2 tasks (one per repository name): 3 records each
    assert len(pl.read_parquet(tmp_path / "o" / "pulls" / "*.parquet")) == 2 * 3


def test_parse_recipe_defaults():
    r = parse_recipe({"stages": [{"stage": "demo.repo"}, {"stage": "sources.git", "input": "demo.repo"}]}, "x.yaml")
    assert r.name == "x" and r.executor["type"] == "local" and r.stages[1].input == "demo.repo"
    assert r.mirrors == r.output / "mirrors"


# ------------------------------------------------------------------------------- a real local Ray cluster
def test_ray_executor_gives_the_same_bytes(demo_run, tmp_path):
    out, _ = demo_run
    proc = datakit("run", DEMO, "--output", tmp_path / "ray", "--executor", "ray")
    assert proc.returncode == 0, proc.stderr
    a, b = tree_digest(out), tree_digest(tmp_path / "ray")
    data = [k for k in a if k.endswith((".parquet", "stats.json"))]
    assert data and all(a[k] == b[k] for k in data)


def test_ray_request_no_node_can_meet_fails_up_front(tmp_path):
    recipe = yaml.safe_load(DEMO.read_text())
    recipe["executor"] = {"type": "ray", "tasks": 1, "cpus_per_task": 1, "mem_per_cpu_gb": 100_000}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = datakit("run", path, "--output", tmp_path / "o")
    assert proc.returncode == 2 and "no node has 1 CPUs and 100000 GiB" in proc.stderr
