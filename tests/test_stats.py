"""`datakit stats` (datakit/stats/) on the demo's output: its figures against the data they come from (Parquet
counts, the token manifests, stats.json), a self-contained, deterministic HTML report, a rerun that rewrites
nothing, and the error a folder that is not a datakit output gives."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from datakit.cli import _subcommands, main, next_steps
from datakit.stats import StatsError, load
from datakit.stats.report import HTML_FILE, JSON_FILE, figures, write_report
from datakit.tokens.mixture import SOURCE_BY_KIND


@pytest.fixture(scope="module")
def run(demo_output) -> dict:
    """The demo's figures, loaded once (read-only: nothing is written into demo_output)."""
    rs = load(demo_output)
    return {"rs": rs, "fig": figures(rs, demo_output / "corpus_stats")}


def _copy(demo_output: Path, dest: Path) -> Path:
    shutil.copytree(demo_output, dest, symlinks=True, ignore=shutil.ignore_patterns("mirrors", "corpus_stats"))
    return dest


def test_rows_per_source_and_role_equal_a_polars_count_of_the_parquet(run, demo_output):
    fig = run["fig"]
    for stage in ("samples", "decontam", "sft_decontam"):
        frame = pl.read_parquet(demo_output / stage / "*.parquet", columns=["kind", "role"])
        counts = (frame.with_columns(pl.col("kind").replace_strict(SOURCE_BY_KIND).alias("source"))
                  .group_by("source", "role").len().iter_rows())
        want = {(s, r): n for s, r, n in counts}
        got = {(x["source"], x["role"]): x["rows"] for x in fig["samples"] if x["stage"] == stage}
        assert got == want, stage
    pulls = pl.read_parquet(demo_output / "pulls" / "*.parquet", columns=["repo"])
    got = {r["repo"]: r["rows"] for r in fig["repositories"] if r["stage"] == "pulls"}
    assert got == dict(pulls.group_by("repo").len().iter_rows())
    rows = {(s["stage"], s["rows"]) for s in fig["stages"] if s["rows"] is not None}
    assert ("decontam", pl.scan_parquet(demo_output / "decontam" / "*.parquet").select(pl.len()).collect().item()) \
        in rows


def test_tokens_equal_the_manifest(run, demo_output):
    fig = run["fig"]
    for stage in ("tokens", "sft_tokens"):
        manifest = json.loads((demo_output / stage / "manifest.json").read_text())
        rows = [t for t in fig["tokens"] if t["stage"] == stage and t["split"] == "train"]
        for source, p in manifest["per_source"].items():
            mine = [t for t in rows if t["source"] == source]
            assert sum(t["tokens"] for t in mine) == p["tokens"], (stage, source)
            assert sum(t["unique_tokens"] for t in mine) == p["unique_tokens"], (stage, source)
            assert sum(t["documents"] for t in mine) == p["documents"], (stage, source)
            assert sum(t["unique_documents"] for t in mine) == p["unique_documents"], (stage, source)
        assert sum(t["tokens"] for t in rows) == manifest["tokens"]
        totals = next(t for t in fig["token_totals"] if t["stage"] == stage)
        assert (totals["rows"], totals["tokens"]) == (manifest["rows"], manifest["tokens"])
        per_repo = sum(r["tokens"] for r in fig["repositories"] if r["stage"] == stage)
        assert per_repo == manifest["tokens"]
        up = {u["source"]: u["upsample"] for u in fig["upsampling"] if u["stage"] == stage}
        assert up == {s: p["upsample"] for s, p in manifest["per_source"].items()}
    # the demo's mixture: Agentless x2, synthetic x4; the role comes from the sample stages by id
    tok = {(t["source"], t["role"]): t for t in fig["tokens"] if t["stage"] == "tokens"}
    assert tok[("agentless", "bugfixer")]["documents"] == 2 * tok[("agentless", "bugfixer")]["unique_documents"]
    assert tok[("synthetic", "none")]["tokens"] == 4 * tok[("synthetic", "none")]["unique_tokens"]
    assert not [t for t in fig["tokens"] if t["role"] == "(unknown)"]
    lengths = [t for t in fig["tokens"] if t["unique_documents"]]
    assert all(t["min"] <= t["p50"] <= t["p90"] <= t["p99"] <= t["max"] for t in lengths)


def test_reasons_equal_stats_json(run, demo_output):
    want = []
    for path in sorted(demo_output.glob("*/stats.json")):
        doc = json.loads(path.read_text())
        for unit, u in doc["units"].items():
            for outcome in ("quarantined", "filtered"):
                want += [(doc["stage"], unit, outcome, r, n) for r, n in u[outcome].items() if n]
    got = [(r["stage"], r["unit"], r["outcome"], r["reason"], r["count"]) for r in run["fig"]["reasons"]]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))
    # the quarantine on disk, by repository, adds up to stats.json's counts per stage and reason
    on_disk: dict[tuple[str, str], int] = {}
    for r in run["fig"]["set_aside"]:
        if r["outcome"] == "quarantined":
            on_disk[(r["stage"], r["reason"])] = on_disk.get((r["stage"], r["reason"]), 0) + r["rows"]
    counted: dict[tuple[str, str], int] = {}
    for stage, _, outcome, reason, n in want:
        if outcome == "quarantined" and (demo_output / stage / "quarantine").is_dir():
            counted[(stage, reason)] = counted.get((stage, reason), 0) + n
    assert on_disk == counted and len(on_disk) >= 10
    requests = [r for r in run["fig"]["set_aside"] if r["stage"] == "decontam"]
    assert {(r["repo"], r["reason"]) for r in requests} == {("kennethreitz/requests", "repo_renamed")}
    assert sum(r["rows"] for r in requests) == 38 and {r["source"] for r in requests} >= {"agentless", "commit_bundles"}
    decon = {d["stage"]: d for d in run["fig"]["decontamination"]}
    stats = json.loads((demo_output / "decontam" / "stats.json").read_text())["units"]["samples"]
    assert {r["rule"]: r["removed"] for r in decon["decontam"]["rules"]} == stats["quarantined"]
    assert decon["decontam"]["repos"] == [{"repo": "kennethreitz/requests", "removed": 38, "kept": 0}]


def test_html_is_self_contained_deterministic_and_a_rerun_rewrites_nothing(demo_output, tmp_path, capsys):
    a = _copy(demo_output, tmp_path / "a" / "demo")
    # what `datakit audit` writes, by name (the report only links it; tests/test_decontam_audit.py tests the audit)
    (a / "decontam" / "audit").mkdir()
    (a / "decontam" / "audit" / "audit.html").write_text("<!DOCTYPE html>\n")
    b = _copy(a, tmp_path / "b" / "demo")  # the same run, audit included, elsewhere
    assert main(["stats", str(a)]) == 0
    shown = capsys.readouterr().out
    assert "tokens by source and role" in shown and "../decontam/audit/audit.html" in shown
    html_a, json_a = a / "corpus_stats" / HTML_FILE, a / "corpus_stats" / JSON_FILE
    assert main(["stats", str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json_a.read_text())
    assert html_a.read_bytes() == (b / "corpus_stats" / HTML_FILE).read_bytes()  # elsewhere: the same bytes
    assert json_a.read_bytes() == (b / "corpus_stats" / JSON_FILE).read_bytes()
    text = html_a.read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text)
    assert [x for x in links if not x.startswith("#")] == ["../decontam/audit/audit.html"]
    assert (a / "corpus_stats" / "../decontam/audit/audit.html").is_file()
    assert not re.search(r"https?://", text) and "<script" not in text and "<img" not in text
    assert text.count("<svg ") >= 8 and "Top repositories by tokens" in text and "Document lengths in tokens" in text
    assert "kennethreitz/requests" in text and "repo_renamed" in text
    before = {p: p.stat().st_mtime_ns for p in (html_a, json_a)}
    assert main(["stats", str(a)]) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten
    # nothing written into a stage folder (it would change the input fingerprint of the stages that read it)
    assert not [p for p in a.glob("*/corpus_stats*") if (p.parent / "stats.json").is_file()]


def test_large_tables_are_cut_in_the_html_not_in_the_json(run, monkeypatch):
    from datakit.stats import report

    monkeypatch.setattr(report, "HTML_ROWS", 1)
    text = report.render_html(run["rs"], run["fig"])
    redact = [r for r in run["fig"]["repositories"] if r["stage"] == "redact"]
    assert len(redact) == 3 and "… and 2 more rows in corpus_stats.json" in text


def test_one_stage_folder(demo_output, tmp_path):
    run = _copy(demo_output, tmp_path / "demo")
    html, js, fig = write_report(run / "tokens")
    assert html == run / "corpus_stats" / "tokens" / HTML_FILE and js.is_file()
    assert [s["stage"] for s in fig["stages"]] == ["tokens"] and fig["single_stage"]
    assert {t["role"] for t in fig["tokens"]} == {"(unknown)"}  # no sample stage to name them
    assert sum(t["tokens"] for t in fig["tokens"]) == json.loads((run / "tokens" / "manifest.json").read_text())[
        "tokens"]
    assert not (run / "tokens" / "corpus_stats").exists()


def test_a_validation_split(demo_output, tmp_path):
    """A tokens stage that holds out acme/widgets: its valid/ split is counted apart, against its own manifest."""
    from tests.test_recipes import datakit

    recipe = {"name": "v", "output": str(tmp_path / "o"), "executor": {"type": "local", "tasks": 1, "workers": 1},
              "stages": [{"name": "tokens", "stage": "tokens", "inputs": [str(demo_output / "decontam")],
                          "options": {"seq_len": 4096, "validation": {"repos": ["acme/widgets"]}}}]}
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    proc = datakit("run", tmp_path / "r.yaml", "--quiet")
    assert proc.returncode == 0, proc.stderr
    _, _, fig = write_report(tmp_path / "o")
    valid = json.loads((tmp_path / "o" / "tokens" / "valid" / "manifest.json").read_text())
    rows = [t for t in fig["tokens"] if t["split"] == "valid"]
    assert sum(t["tokens"] for t in rows) == valid["tokens"] and sum(t["documents"] for t in rows) == valid["documents"]
    assert {t["role"] for t in rows} == {"(unknown)"}  # no sample stage in this run to name them
    totals = {t["split"]: t for t in fig["token_totals"]}
    assert totals["valid"]["tokens"] == valid["tokens"] and totals["train"]["tokens"] > 0
    assert {t["source"] for t in fig["tokens"] if t["split"] == "train"} == {"synthetic"}  # no repository: train


def test_not_a_datakit_output_is_one_line_naming_the_fix(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a datakit output" in err and "out/demo" in err
    assert main(["stats", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(StatsError):
        load(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "stats.json").write_text("{not json")
    assert main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken/stats.json: cannot be read as JSON" in err and "rerun the stage" in err
    assert not (tmp_path / "corpus_stats").exists()


def test_charts_are_well_formed_svg_with_escaped_labels():
    import xml.etree.ElementTree as ET

    from datakit.stats import svg

    evil = '<script>alert(1)</script>/"repo"&'
    charts = [svg.bars([evil, "b"], {"one": [3, 0], "two": [1, 2]}, title=evil, xlabel="x"),
              svg.histogram(["1–2", "2–4"], {evil: [0, 5]}, title="t", xlabel=evil, ylabel="n"),
              svg.bars([], {"one": []}, title="empty", xlabel="x")]
    for chart in charts:
        root = ET.fromstring(chart)  # well-formed: every label escaped
        assert root.tag == "svg" and "<script" not in chart and "http" not in chart
        assert chart is charts[2] or evil in "".join(root.itertext())  # shown as text, not markup
    assert charts[0] == svg.bars([evil, "b"], {"one": [3, 0], "two": [1, 2]}, title=evil, xlabel="x")
    assert svg.ticks(38) == [0, 10, 20, 30, 40] and svg.ticks(0) == [0.0, 1.0]


def test_the_first_run_ends_with_stats(tmp_path):
    from datakit.pipeline.runner import StageResult

    results = [StageResult("decontam", "decontam", tmp_path / "decontam", "f", 1, 0.0, False, rows=3)]
    text = next_steps("demo.yaml", tmp_path, results, _subcommands())
    assert "stats" in _subcommands() and f"datakit stats {tmp_path}" in text.split("next:\n", 1)[1].splitlines()[0]
