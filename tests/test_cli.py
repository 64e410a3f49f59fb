"""The CLI as a new user meets it (issue 17, items 1 and 2): every mistake ends in one or two lines naming what is
wrong, where and what to do, with exit status 2 and no traceback (unless --debug); results go to stdout, progress
and logs to stderr, `--json` prints the summary for scripts, no colour when not a terminal, progress in records."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from datakit.cli import main, summary_table
from datakit.pipeline.progress import PROGRESS_DIR, counted, human
from datakit.pipeline.runner import StageResult

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "demo.yaml"
TOKEN = "ghp_" + "Z9" * 18  # a token-shaped secret that must never be printed


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datakit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=300)


def one_error(capsys, argv) -> str:
    """Run in-process; the error must be one or two lines on stderr, exit 2, nothing on stdout, no traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("WARNING:", "ERROR:"))]
    assert code == 2, err
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err
    assert "Traceback" not in err and out == ""
    return "\n".join(lines)


# ----------------------------------------------------------------------------- inputs that are not what a stage reads
def test_empty_input_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    msg = one_error(capsys, ["tokens", "--input", tmp_path / "empty", "--output", tmp_path / "o", "--quiet"])
    assert f"stage tokens (tokens): input {tmp_path / 'empty'} is empty" in msg and "Parquet" in msg
    assert not (tmp_path / "o").exists()  # found before the stage's folder was made


def test_folder_of_jsonl_and_txt(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"messages": []}\n')
    (folder / "notes.txt").write_text("hello\n")
    msg = one_error(capsys, ["decontam", "--input", folder, "--no-mirror-rules", "--output", tmp_path / "o"])
    assert "holds no .parquet files (only .jsonl, .txt)" in msg and "synth.ingest" in msg


def test_single_parquet_file_as_input(demo_output, tmp_path, capsys):
    shard = tmp_path / "one.parquet"
    shutil.copy(demo_output / "samples" / "00000.parquet", shard)
    msg = one_error(capsys, ["tokens", "--input", shard, "--output", tmp_path / "o", "--seq-len", 4096])
    assert f"input {shard} is a file" in msg and f"give its folder ({tmp_path})" in msg


def test_corrupt_parquet_file_is_named(demo_output, tmp_path, capsys):
    folder = tmp_path / "cut"
    folder.mkdir()
    data = (demo_output / "samples" / "00000.parquet").read_bytes()
    (folder / "00000.parquet").write_bytes(data)
    (folder / "00001.parquet").write_bytes(data[: len(data) // 2])
    msg = one_error(capsys, ["tokens", "--input", folder, "--output", tmp_path / "o", "--seq-len", 4096])
    assert msg.startswith(f"error: {folder / '00001.parquet'}: not a readable Parquet file") and "--force" in msg


def test_stage_that_kept_nothing_says_where_to_look(tmp_path, capsys):
    folder = tmp_path / "decontam"
    (folder / ".datakit").mkdir(parents=True)
    (folder / ".datakit" / "fingerprint").write_text("abc\n")
    msg = one_error(capsys, ["tokens", "--input", folder, "--output", tmp_path / "o"])
    assert "kept no records" in msg and str(folder / "stats.json") in msg


# ------------------------------------------------------------------------------------------- other commands' inputs
@pytest.mark.parametrize("text,expected", [
    ("{agentless: 2}", "datakit tokens: mixture.agentless: expected {tokens: N | fraction: F, upsample: F}, got 2"),
    ("{agentless: [", "--mixture: not JSON"),
    ('["agentless"]', "--mixture: expected a mapping"),
    ('{"agentles": {"upsample": 2}}', "mixture: unknown 'agentles'"),
])
def test_mixture_on_the_command_line(demo_output, tmp_path, capsys, text, expected):
    msg = one_error(capsys, ["tokens", "--input", demo_output / "samples", "--mixture", text, "--output",
                             tmp_path / "o"])
    assert expected in msg
    assert not (tmp_path / "o").exists()


def test_mixture_accepts_yaml_flow(demo_output, tmp_path, capsys):
    assert main(["tokens", "--input", str(demo_output / "decontam"), "--mixture", "{agentless: {upsample: 1}}",
                 "--seq-len", "4096", "--output", str(tmp_path / "o"), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    counters = summary["stages"][0]["counters"]
    assert counters["mixture.agentless.tokens"] == counters["mixture.agentless.unique_tokens"]  # ×1, not ×2


def test_inspect_on_a_samples_file(demo_output, capsys):
    msg = one_error(capsys, ["inspect", demo_output / "samples" / "00000.parquet"])
    assert "is a Sample file" in msg and "tokens stage's output" in msg


def test_inspect_on_a_folder_and_a_missing_file(demo_output, tmp_path, capsys):
    assert "is a folder" in one_error(capsys, ["inspect", demo_output / "tokens"])
    assert "no such file" in one_error(capsys, ["inspect", tmp_path / "nope.parquet"])


def test_audit_reference_to_a_missing_folder(demo_output, tmp_path, capsys):
    msg = one_error(capsys, ["audit", demo_output / "decontam", "--reference", tmp_path / "nowhere",
                             "--out", tmp_path / "audit"])
    assert f"--reference {tmp_path / 'nowhere'}: no such folder" in msg and "verified.jsonl" in msg
    assert not (tmp_path / "audit").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_crawl_against_an_api_that_is_down(tmp_path):
    repos = tmp_path / "repos.txt"
    repos.write_text("acme/widgets\n")
    recipe = tmp_path / "crawl.yaml"
    recipe.write_text(yaml.safe_dump({"name": "crawl", "stages": [{
        "name": "pulls", "stage": "sources.github", "input": str(repos),
        "options": {"api_url": f"http://127.0.0.1:{_closed_port()}", "max_retries": 0, "backoff": 0.01,
                    "timeout": 2.0}}]}))
    proc = cli("run", recipe, "--output", tmp_path / "out", "--quiet", env={"GITHUB_TOKENS": TOKEN})
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no response (ConnectionError)" in errors[0], proc.stderr
    assert "check --api-url" in proc.stderr and "Traceback" not in proc.stderr
    for text in (proc.stdout, proc.stderr, *(p.read_text() for p in (tmp_path / "out").rglob("*.log"))):
        assert TOKEN not in text


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = cli("tokens", "--input", tmp_path / "empty", "--output", tmp_path / "o", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StageFailed" in proc.stderr


@pytest.mark.parametrize("value", ["-3", "0"])
def test_limit_must_be_positive(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(DEMO), "--limit", value, "--check"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.splitlines() == [f"datakit run: error: argument --limit: a positive number of records per task, got "
                                f"{value} (leave --limit out for all of them)", "  see `datakit run --help`"]


# ---------------------------------------------------------------------- option values: at --check, before any stage
def _demo_with(tmp_path, edit) -> Path:
    recipe = yaml.safe_load(DEMO.read_text())
    edit({s["name"]: s for s in recipe["stages"]})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("edit,expected", [
    (lambda s: s["samples"]["options"].update(roles=["testwritter"]),
     "stages[2] (samples).options: roles: unknown 'testwritter' (known: bugfixer, testwriter); did you mean "
     "'testwriter'?"),
    (lambda s: s["tokens"]["options"]["mixture"].update(agentless={"upsampel": 2}),
     "stages[7] (tokens).options: mixture.agentless: expected {tokens: N | fraction: F, upsample: F}"),
    (lambda s: s["tokens"]["options"]["mixture"].update(synthetik={"upsample": 4}),
     "mixture: unknown 'synthetik' (known: agentless, commit_bundles, sft, synthetic); did you mean 'synthetic'?"),
    (lambda s: s["tokens"]["options"]["mixture"].update(sft={"upsample": 2}),
     "mixture.sft: no input of this stage makes sft samples (they make: agentless, commit_bundles, synthetic)"),
    (lambda s: s["samples"]["options"].update(max_files=-1), "max_files must be ≥ 1, got -1"),
    (lambda s: s["tokens"]["options"].update(never_split=["chat"]), "never_split: unknown 'chat'"),
    (lambda s: s["synth"]["options"].update(format="openia"), "did you mean 'openai'?"),
    (lambda s: s["tokens"]["options"].update(target_tokens=-1), "target_tokens must be ≥ 0, got -1"),
    (lambda s: s["sft_trajectories"]["options"].update(generations=["teacher/missing.jsonl"]),
     "(sft_trajectories).options: generations: teacher/missing.jsonl does not exist"),
])
def test_option_values_fail_at_check_before_any_stage(tmp_path, capsys, edit, expected):
    path = _demo_with(tmp_path, edit)
    msg = one_error(capsys, ["run", path, "--check"])
    assert f"error: {path}: " in msg and expected in msg
    one_error(capsys, ["run", path, "--output", tmp_path / "out", "--quiet"])
    assert not (tmp_path / "out").exists()  # not even the demo.repo stage ran


def test_mixture_sources_follow_the_recipe_through_filters(tmp_path, capsys):
    """The demo's tokens stage reads decontam, which passes on samples, bundles and synth: all three are valid;
    a path input is not known in advance, so any source of SOURCE_BY_KIND passes."""
    assert main(["run", str(DEMO), "--check"]) == 0 and "recipe OK" in capsys.readouterr().out
    path = _demo_with(tmp_path, lambda s: s["tokens"].update(input=str(tmp_path)))
    assert main(["run", str(path), "--check"]) == 0


# ----------------------------------------------------------------------------------------------- output conventions
def test_stages_list_goes_to_stdout_without_colour():
    proc = cli("stages")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "samples.agentless" in proc.stdout and "\x1b[" not in proc.stdout


def test_run_results_on_stdout_json_for_scripts(demo_output, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output, out)
    proc = cli("run", DEMO, "--output", out, "--stages", "samples,tokens")
    assert proc.returncode == 0, proc.stderr
    assert "datakit summary" in proc.stdout and f"samples: {out / 'samples'}" in proc.stdout
    assert "datakit summary" not in proc.stderr and "\x1b[" not in proc.stdout + proc.stderr
    proc = cli("run", DEMO, "--output", out, "--stages", "samples,tokens", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    samples, tokens = summary["stages"]
    assert samples["stage"] == "samples" and samples["resumed"] and samples["output"] == str(out / "samples")
    assert samples["units"] == json.loads((out / "samples" / "stats.json").read_text())["units"]
    # why units and rows differ: every written PR×role unit of the Agentless stage writes two rows
    written = sum(u["written"] for u in samples["units"].values())
    assert samples["rows"] == 2 * written == sum(pq.read_metadata(p).num_rows for p in (out / "samples").glob("*.parquet"))
    assert tokens["rows"] == tokens["counters"]["pack.rows"]


def test_check_verdict_on_stdout():
    proc = cli("run", DEMO, "--check")
    assert proc.returncode == 0 and proc.stdout.startswith("recipe OK: 13 stages") and proc.stderr == ""


def test_counters_are_readable_and_units_explained():
    assert human(11125200.0) == "11,125,200" and human(3) == "3" and human(0.25) == "0.25"
    result = StageResult("tokens", "tokens", Path("/o"), "f", 1, 1.0, False,
                         {"documents": {"read": 38, "written": 38, "quarantined": {}, "filtered": {}}},
                         {"mixture.agentless.tokens": 11125200.0}, rows=70)
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table([result]))
    text = console.file.getvalue()
    assert "11,125,200" in text and "e+07" not in text
    assert "70" in text and "units are what a stage counts" in text and "up-sampled copies" in text


def test_progress_counts_records_per_stage(demo_output, tmp_path):
    """With a terminal, each stage's bar counts the records its first step yields, of the input's rows."""
    from rich.console import Console

    from datakit.pipeline.runner import run_recipe
    from datakit.recipe import load_recipe

    out = tmp_path / "out"
    shutil.copytree(demo_output, out)
    for name in ("samples", "tokens"):
        shutil.rmtree(out / name)
    recipe = load_recipe(DEMO, base_output=str(out))
    console = Console(file=io.StringIO(), force_terminal=True, color_system=None, width=200)
    results = run_recipe(recipe, only=["samples", "tokens"], console=console)
    shown = console.file.getvalue()
    for r in results:
        done = counted(r.output / ".datakit" / "logs" / PROGRESS_DIR)
        assert done == next(iter(r.units.values()))["read"] > 0  # a PullRecord per PR; a document per sample
        assert f"{r.name} ({r.type})" in shown and f"{done}/{done} records" in shown
    assert "tasks" in shown and "rec/s" in shown


def test_recipe_yaml_error_is_one_line_with_its_place(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text("stages: [unclosed\n")
    assert one_error(capsys, ["run", path, "--check"]) == f"error: {path}:2:1: not valid YAML: expected ',' or ']', " \
                                                          "but got '<stream end>'"
