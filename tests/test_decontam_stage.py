"""The decontam stage end to end: the demo's renamed mirror, a planted set through the CLI, mirrors, the audit."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datakit.cli import main
from datakit.decontam.index import FingerprintIndex, boilerplate_words, build_index
from datakit.decontam.reference import Instance, load_reference
from datakit.io.schemas import validate
from tests.conftest import requires_shared, shared_missing
from tests.gitrepo import RepoBuilder
from tests.test_recipes import datakit
from tests.test_tokens_stage import write_samples

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "swebench"
needs_shared = requires_shared("swebench/verified.jsonl")


def test_demo_quarantines_the_renamed_swebench_mirror(demo_output, tmp_path):
    out = demo_output  # the demo run shared by the session (tests/conftest.py)
    stats = json.loads((out / "decontam" / "stats.json").read_text())["units"]["samples"]
    assert stats["read"] == stats["written"] + sum(stats["quarantined"].values())
    kept = pl.read_parquet(out / "decontam" / "*.parquet")
    from_git = kept.filter(pl.col("kind") != "synthetic")  # Agentless samples and commit bundles of the mirrors
    assert set(kept["kind"]) == {"localize", "edit", "commit_bundle", "synthetic"}
    # the same repository under a former name of psf/requests: its every sample goes, the original's all stay
    assert set(stats["quarantined"]) == {"repo_renamed"} and len(from_git) == stats["quarantined"]["repo_renamed"]
    assert set(from_git["meta"].struct.field("repo")) == {"acme/widgets"}
    matches = pl.read_parquet(out / "decontam" / "matches" / "*.parquet")
    quarantine = pl.read_parquet(out / "decontam" / "quarantine" / "*.parquet")
    assert len(matches) == len(quarantine) == stats["quarantined"]["repo_renamed"]
    assert set(matches["matched_repo"]) == {"psf/requests"} and set(matches["sample_repo"]) == {"kennethreitz/requests"}
    for row in matches.to_dicts():
        validate(row, "decontam_match")
    # the tokens stage saw only the kept samples
    manifest = json.loads((out / "tokens" / "manifest.json").read_text())
    agentless = kept.filter(pl.col("kind").is_in(["localize", "edit"]))
    assert manifest["per_source"]["agentless"]["unique_documents"] == len(agentless)  # (up-sampled ×2 in the demo)
    assert manifest["per_source"]["commit_bundles"]["unique_documents"] == len(from_git) - len(agentless)
    # and the audit renders offline (beside, not into, the shared demo output: other workers compare its files)
    assert main(["audit", str(out / "decontam"), "--out", str(tmp_path / "audit")]) == 0
    md = (tmp_path / "audit" / "audit.md").read_text()
    assert "repo_renamed" in md and "kennethreitz/requests" in md
    assert (tmp_path / "audit" / "audit.html").stat().st_size > 1000


def _planted(instances: list[Instance]) -> tuple[list[dict], list[dict]]:
    """(contaminated, clean) samples: whole, partial, re-spaced quotes, gold and test patch hunks; look-alikes."""
    by_repo = {}
    for inst in instances:
        by_repo.setdefault(inst.repo, inst)
    dirty, clean = [], []
    for k, inst in enumerate(sorted(by_repo.values(), key=lambda i: i.instance_id)):
        ps = inst.problem_statement
        paragraphs = [p for p in ps.replace("\r\n", "\n").split("\n\n")  # not an environment dump
                      if len(p.split()) >= 40 and (~boilerplate_words(p)).sum() >= 40]
        dirty.append({"id": f"whole{k}", "text": f"Issue:\n{ps}\nPlease fix."})
        dirty.append({"id": f"crlf{k}", "text": ps.replace("\r\n", "\n").replace("\n", "\r\n").replace(" ", "  ").upper()})
        if paragraphs:
            dirty.append({"id": f"para{k}", "text": "We saw this in production:\n\n" + max(paragraphs, key=len)})
        hunk = "@@" + inst.patch.split("@@", 2)[-1][:3000]
        dirty.append({"id": f"patch{k}", "text": f"### fix\n{hunk}"})
        if inst.test_patch:
            dirty.append({"id": f"test{k}", "text": "@@" + inst.test_patch.split("@@", 2)[-1][:3000]})
        name = inst.repo.split("/")[1]
        clean.append({"id": f"clean{k}", "text": f"{name} raises an error when the config file is missing.\n"
                                                 f"Steps: import {name}; call {name}.setup() twice.\n"
                                                 "Expected a warning, got a traceback in a different module."})
    return dirty, clean


@needs_shared
def test_planted_set_recall_and_false_positives(tmp_path, capsys):
    instances = load_reference("files", SHARED)
    dirty, clean = _planted(instances)
    import sysconfig

    stdlib = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:400]
    clean += [{"id": f"std{i}", "text": p.read_text(encoding="utf-8", errors="replace")[:20000]}
              for i, p in enumerate(stdlib)]
    samples = [{"kind": "edit", "role": "bugfixer", "meta": {"repo": "acme/widgets"}, **s} for s in dirty + clean]
    samples += [
        {"id": "name", "kind": "edit", "role": "bugfixer", "text": "x = 1\n", "meta": {"repo": "Django/Django"}},
        {"id": "fork", "kind": "edit", "role": "bugfixer", "text": "x = 2\n",
         "meta": {"repo": "someone/linter", "fork_of": "PyCQA/pylint"}},
        {"id": "commit", "kind": "edit", "role": "bugfixer", "text": "x = 3\n",
         "meta": {"repo": "acme/x", "base_sha": instances[0].base_commit}},
    ]
    inp = write_samples(tmp_path / "in", samples)
    proc = datakit("decontam", "--input", inp, "--output", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    matches = {r["sample_id"]: r for r in pl.read_parquet(tmp_path / "o" / "decontam" / "matches" / "*.parquet").to_dicts()}
    caught = [s["id"] for s in dirty if s["id"] in matches]
    false_pos = [s["id"] for s in clean if s["id"] in matches]
    recall = len(caught) / len(dirty)
    fpr = len(false_pos) / len(clean)
    with capsys.disabled():
        print(f"\nplanted contamination recall {recall:.1%} ({len(caught)}/{len(dirty)}); "
              f"false positives {fpr:.2%} ({len(false_pos)}/{len(clean)})")
    assert recall == 1.0, sorted(set(s["id"] for s in dirty) - set(caught))
    assert fpr < 0.001, false_pos
    assert matches["name"]["rule"] == "repo_name" and matches["fork"]["rule"] == "repo_fork"
    assert matches["commit"]["rule"] == "commit_base" and matches["commit"]["matched_instance_id"] == instances[0].instance_id
    assert matches["whole0"]["rule"] == "text_problem_statement" and matches["whole0"]["score"] > 0.9
    assert matches["patch0"]["rule"] in ("text_patch", "text_test_patch")
    span = matches[min(k for k in matches if k.startswith("para"))]
    assert span["span_text"] and span["span_start"] < span["span_end"]


def test_mirror_histories_are_checked(tmp_path):
    """A mirror under an innocent name whose history holds a reference base commit is caught (mirror_base_commit)."""
    ref = RepoBuilder(tmp_path / "ref.git")
    ref.commit({"a.py": "a = 1\n"}, "root", parent=None)
    base = ref.commit({"a.py": "a = 2\n"}, "the base commit")
    ref.squash_pr(1, {"a.py": "a = 3\n"}, "Fix a", "a must be 3")
    index = build_index([Instance("acme__ref-1", "acme/ref", str(base), "Some unrelated statement " * 5,
                                  "diff --git a/z b/z\n", None)],
                        background=("templates",))  # the rule under test is the history's, not the text's
    index_path = tmp_path / "index.npz"
    index.save(index_path)
    proc = datakit("sources", f"innocent/name {ref.path}", "--output", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    proc = datakit("samples", "--input", tmp_path / "s" / "pulls", "--mirrors", tmp_path / "s" / "mirrors",
                   "--output", tmp_path / "x")
    assert proc.returncode == 0, proc.stderr
    proc = datakit("decontam", "--input", tmp_path / "x" / "samples", "--mirrors", tmp_path / "s" / "mirrors",
                   "--index", index_path, "--output", tmp_path / "d")
    assert proc.returncode == 0, proc.stderr
    rules = set(pl.read_parquet(tmp_path / "d" / "decontam" / "matches" / "*.parquet")["rule"])
    assert rules == {"mirror_base_commit"}
    assert not list((tmp_path / "d" / "decontam").glob("0*.parquet")) or \
        len(pl.read_parquet(tmp_path / "d" / "decontam" / "*.parquet")) == 0


def test_build_index_cli(tmp_path):
    if why := shared_missing("swebench/verified.jsonl"):
        pytest.skip(why)
    # a dozen instances, the background without this machine's site-packages (the whole build is ~45 s, most of
    # it the site-packages scan; test_decontam_content covers the build itself)
    subset = tmp_path / "verified"
    subset.mkdir()
    rows = (SHARED / "verified.jsonl").read_text().splitlines()[:12]
    (subset / "verified.jsonl").write_text("\n".join(rows) + "\n")
    assert main(["decontam", "build-index", "--from-files", str(subset), "--out", str(tmp_path / "i.npz"),
                 "--background", "stdlib,templates"]) == 0
    index = FingerprintIndex.load(tmp_path / "i.npz")
    assert len(index.instance_ids) == 12 and len(index.hashes) > 1000
    assert set(index.meta["background"]) >= {"stdlib", "templates"} and "site_packages" not in index.meta["background"]
    assert main(["decontam", "build-index", "--out", str(tmp_path / "j.npz")]) == 2
    assert main(["decontam", "build-index", "--from-files", str(subset), "--out", str(tmp_path / "k.npz"),
                 "--background", "stdlib,pypi"]) == 2
