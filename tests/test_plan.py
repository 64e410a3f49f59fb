"""`datakit plan` on the demo recipe against the demo's real run: documents, tokens and disk within 2×, every
number naming where it comes from (issue 14 §1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "demo.yaml"


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


def _within_2x(predicted: float, actual: float) -> bool:
    return actual == predicted == 0 or (actual > 0 and 0.5 <= predicted / actual <= 2.0)


def test_plan_predicts_the_demo_run(tmp_path):
    plan = json.loads(_cli("plan", str(RECIPE), "--sample-repos", "1", "--json", cwd=tmp_path).stdout)
    _cli("run", str(RECIPE), "--output", str(tmp_path / "real"), "--quiet", cwd=tmp_path)
    real = tmp_path / "real"
    assert plan["totals"]["repositories"] == 2 and plan["totals"]["sampled"] == 1
    for stage in plan["stages"]:
        out = real / stage["name"]
        assert stage["provenance"].startswith("sample×"), stage
        assert stage["figure"], stage  # a throughput with its file and key, or why there is none
        if stage["type"] == "demo.repo":
            continue
        disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and ".datakit" not in p.parts)
        assert _within_2x(stage["disk_bytes"], disk), (stage["name"], stage["disk_bytes"], disk)
        manifest = out / "manifest.json"
        if manifest.is_file():
            per_source = json.loads(manifest.read_text())["per_source"]
            for source, predicted in stage["tokens"].items():
                assert _within_2x(predicted, per_source[source]["tokens"]), (stage["name"], source)
        elif list(out.glob("*.parquet")):
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("*.parquet"))
            assert _within_2x(stage["documents"], rows), (stage["name"], stage["documents"], rows)
        if stage["core_hours"] is not None:
            assert "benchmarks/results/" in stage["figure"]


def test_plan_prints_a_table_with_sources(tmp_path):
    text = _cli("plan", str(RECIPE), cwd=tmp_path).stdout
    assert text.startswith("# plan: demo\n") and "| samples | samples.agentless |" in text
    assert "benchmarks/results/samples.json" in text and "sample×1 (2 of 2 repositories)" in text


def test_plan_of_the_corpus_recipe_offline_says_what_it_cannot_sample(tmp_path):
    """No token, no network, no /data here: every stage says why it has no sample, and the token-bound stages
    still follow from the recipe's budgets (50 / 20 / 20×4 B)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKENS"}
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "plan", str(ROOT / "recipes" / "kimi_dev_midtrain.yaml"),
                           "--json"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    stages = {s["name"]: s for s in json.loads(proc.stdout)["stages"]}
    assert "no GitHub token" in stages["github"]["provenance"]
    assert all(s["provenance"].startswith("not sampled") for s in stages.values())
    assert stages["tokens"]["tokens"] == {"agentless": 5e10, "commit_bundles": 2e10, "synthetic": 8e10}
    assert stages["tokens"]["core_hours"] > 0 and "benchmarks/results/tokens.json" in stages["tokens"]["figure"]
