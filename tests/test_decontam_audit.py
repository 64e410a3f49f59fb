"""The decontamination audit (datakit/decontam/audit.py) and its notebook, on a decontam output folder built here."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datakit.decontam.audit import AuditError, load_audit, thresholds, write_audit
from datakit.io.schemas import arrow_schema

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "decontamination_audit.ipynb"
XSS = "<script>alert(1)</script>"


def _sample(sid: str, repo: str, pr: int, kind: str = "edit", role: str = "bugfixer", text: str = "") -> dict:
    return {
        "id": sid, "kind": kind, "role": role, "prompt": text, "completion": "", "text": text or f"sample {sid}",
        "messages": None,
        "meta": {"repo": repo, "pr": pr, "base_sha": f"{pr:040x}", "head_sha": f"{pr + 1:040x}", "files": ["a.py"],
                 "template": "agentless_edit@1", "problem_source": "issue", "structure_tree": None},
        "source": {"kind": "git", "method": "merge_commit", "repo": repo, "pr": pr, "commit": f"{pr:040x}",
                   "crawled_at": None},
    }


# (sample id, sample repo, rule, matched instance, matched repo, score, span text)
QUARANTINED = [
    ("q01", "django/django", "repo_name", None, "django/django", 1.0, None),
    ("q02", "django/django", "repo_name", None, "django/django", 1.0, None),
    ("q03", "django/django", "repo_name", None, "django/django", 1.0, None),
    ("q04", "kennethreitz/requests", "repo_renamed", None, "psf/requests", 1.0, None),
    ("q05", "alice/astropy", "repo_fork", None, "astropy/astropy", 1.0, None),
    ("q06", "corp/vendored-sympy", "mirror_root_commit", None, "sympy/sympy", 1.0, None),
    ("q07", "corp/vendored-sympy", "commit_base", "sympy__sympy-20590", "sympy/sympy", 1.0, None),
    ("q08", "bob/utils", "text_problem_statement", "astropy__astropy-12907", "astropy/astropy", 0.91,
     "Consider the following model: cm = m.Linear1D(10) & m.Linear1D(5) " + XSS),
    ("q09", "bob/utils", "text_patch", "django__django-11099", "django/django", 0.74,
     "-    regex = r'^[\\w.@+-]+$'\n+    regex = r'^[\\w.@+-]+\\Z'\n"),
    ("q10", "carol/tools", "text_patch", "django__django-11099", "django/django", 0.55,
     "+    regex = r'\\A[\\w.@+-]+\\Z'"),
    ("q11", "carol/tools", "text_test_patch", "sympy__sympy-20590", "sympy/sympy", 0.62,
     "def test_immutable():\n    assert not hasattr(Symbol('x'), '__dict__')\n"),
]
KEPT = [("k1", "bob/utils", 1), ("k2", "bob/utils", 2), ("k3", "carol/tools", 3), ("k4", "dave/app", 4),
        ("k5", "dave/app", 5)]


def _write(path: Path, rows: list[dict], schema_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(schema_name)
    pq.write_table(pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema), path,
                   compression="zstd")


def make_decontam_dir(root: Path, *, counters: dict | None = None, stats_patch: dict | None = None) -> Path:
    """Two ranks, as the decontam stage writes them."""
    kept = [_sample(sid, repo, pr) for sid, repo, pr in KEPT]
    quarantine, matches = [], []
    for i, (sid, repo, rule, inst, mrepo, score, span) in enumerate(QUARANTINED):
        sample = _sample(sid, repo, 100 + i, kind="localize" if i % 2 else "edit",
                         role="testwriter" if rule == "text_test_patch" else "bugfixer",
                         text=f"prefix {span or ''} suffix")
        quarantine.append({"id": sid, "stage": "decontam", "role": sample["role"], "reason": rule,
                           "detail": f"{rule}: {mrepo}" + (f" {inst}" if inst else ""),
                           "record": json.dumps(sample, sort_keys=True)})
        start = 7 if span else None
        matches.append({"sample_id": sid, "sample_repo": repo, "rule": rule, "matched_instance_id": inst,
                        "matched_repo": mrepo, "score": score, "matched_ngrams": int(score * 40) if span else 0,
                        "span_start": start, "span_end": start + len(span) if span else None, "span_text": span})
    for rank in (0, 1):
        _write(root / f"{rank:05d}.parquet", kept[rank::2], "sample")
        _write(root / "quarantine" / f"{rank:05d}.parquet", quarantine[rank::2], "quarantine")
        _write(root / "matches" / f"{rank:05d}.parquet", matches[rank::2], "decontam_match")
    per_rule: dict[str, int] = {}
    for q in QUARANTINED:
        per_rule[q[2]] = per_rule.get(q[2], 0) + 1
    stats = {"stage": "decontam", "type": "decontam.swebench", "tasks": 2,
             "units": {"samples": {"read": len(KEPT) + len(QUARANTINED), "written": len(KEPT),
                                   "quarantined": per_rule, "filtered": {}}},
             "counters": counters if counters is not None else {"scores.threshold": 0.5, "scores.checked": 16}}
    if stats_patch:
        stats["units"]["samples"].update(stats_patch)
    (root / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True), encoding="utf-8")
    return root


@pytest.fixture
def decontam_dir(tmp_path: Path) -> Path:
    return make_decontam_dir(tmp_path / "decontam")


def test_load_audit_frames(decontam_dir: Path):
    data = load_audit(decontam_dir)
    assert data.kept.columns == ["id", "kind", "role", "repo"]
    assert data.kept["id"].to_list() == ["k1", "k2", "k3", "k4", "k5"]
    assert data.kept.filter(data.kept["id"] == "k4")["repo"].item() == "dave/app"
    assert data.quarantine.height == data.matches.height == len(QUARANTINED)
    assert set(data.quarantine["sample_id"]) == set(data.matches["sample_id"])
    assert data.quarantine.filter(data.quarantine["id"] == "q11")["repo"].item() == "carol/tools"
    assert data.read == 16 and sum(data.quarantined.values()) == 11


def _table_row(md: str, first_cell: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_markdown_numbers(decontam_dir: Path, tmp_path: Path):
    md_path, html_path = write_audit(decontam_dir)
    assert md_path == decontam_dir / "audit" / "audit.md" and html_path == decontam_dir / "audit" / "audit.html"
    md = md_path.read_text(encoding="utf-8")
    # totals and the invariant
    assert _table_row(md, "read")[1] == "16"
    assert _table_row(md, "kept")[1] == "5"
    assert _table_row(md, "quarantined")[1] == "11"
    assert "read (16) = kept (5) + quarantined (11) — holds" in md
    # per rule: every rule is listed, zeros included (rule names are escaped in tables: repo\_name)
    expected = {"repo_name": 3, "repo_renamed": 1, "repo_fork": 1, "mirror_root_commit": 1, "mirror_base_commit": 0,
                "commit_base": 1, "text_problem_statement": 1, "text_patch": 2, "text_test_patch": 1}
    for rule, n in expected.items():
        row = _table_row(md, rule.replace("_", "\\_"))
        assert row[2] == str(n), (rule, row)
    assert _table_row(md, "text\\_patch")[3] == "12.50%"  # 2 of 16 read
    assert _table_row(md, "text\\_patch")[5] == "1"  # one distinct instance (django__django-11099)
    # per repository: removed, kept, then per rule
    header = next(line for line in md.splitlines() if line.startswith("| repo | removed | kept |"))
    cols = [c.strip().replace("\\_", "_") for c in header.strip().strip("|").split("|")]
    rows = {r: dict(zip(cols, _table_row(md, r))) for r in ["django/django", "bob/utils", "carol/tools",
                                                             "corp/vendored-sympy", "kennethreitz/requests",
                                                             "alice/astropy"]}
    assert rows["django/django"]["removed"] == "3" and rows["django/django"]["repo_name"] == "3"
    assert rows["bob/utils"]["removed"] == "2" and rows["bob/utils"]["kept"] == "2"
    assert rows["bob/utils"]["text_problem_statement"] == "1" and rows["bob/utils"]["text_patch"] == "1"
    assert rows["carol/tools"]["kept"] == "1" and rows["carol/tools"]["text_test_patch"] == "1"
    vendored = rows["corp/vendored-sympy"]
    assert vendored["mirror_root_commit"] == "1" and vendored["commit_base"] == "1"
    assert "dave/app" not in md  # nothing removed there
    order = [line.split("|")[1].strip() for line in md.splitlines() if line.split("|")[1:2] and
             line.split("|")[1].strip() in rows]
    assert order[0] == "django/django"  # most removals first
    # charts beside the markdown, threshold from the counters
    for name in ("audit_by_rule.png", "audit_by_repo.png", "audit_scores.png"):
        assert f"]({name})" in md and (md_path.parent / name).read_bytes().startswith(b"\x89PNG")
    assert "all text rules: 0.5" in md
    # examples: the reference is not shipped by default
    assert "django\\_\\_django-11099" in md and "holds n-gram hashes only" in md
    # markdown is rendered to HTML by viewers: sample text only verbatim inside fenced code blocks
    outside = re.sub(r"^(`{3,})text\n.*?^\1$", "", md, flags=re.MULTILINE | re.DOTALL)
    assert XSS in md and XSS not in outside and "<script" not in outside


def test_html_self_contained_and_escaped(decontam_dir: Path):
    _, html_path = write_audit(decontam_dir)
    text = html_path.read_text(encoding="utf-8")
    assert re.search(r'<img [^>]*src="data:image/png;base64,', text)
    assert text.count('src="data:image/png;base64,') == 3
    for attr in re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', text, flags=re.IGNORECASE):
        assert attr.startswith("data:"), attr
    assert not re.search(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', text, flags=re.IGNORECASE)
    # one inline script of the report's own (filter and page the removal list), no sample text inside it
    scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.DOTALL)
    assert text.lower().count("<script") == 1 and XSS not in scripts[0] and "innerHTML" not in scripts[0]
    assert "<link" not in text.lower() and "@import" not in text
    assert XSS not in text and html.escape(XSS) in text


def test_reference_shown_side_by_side(decontam_dir: Path, tmp_path: Path):
    reference = {
        "django__django-11099": {"problem_statement": "UsernameValidator allows trailing newline",
                                 "patch": "REFERENCE PATCH <b>11099</b>", "test_patch": "T"},
        "astropy__astropy-12907": {"problem_statement": "Modeling's separability_matrix REFERENCE", "patch": "P",
                                   "test_patch": "T"},
    }
    md_path, html_path = write_audit(decontam_dir, out_dir=tmp_path / "rep", reference=reference, max_examples=1)
    md, text = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    assert "REFERENCE PATCH <b>11099</b>" in md  # inside a code block
    assert "REFERENCE PATCH &lt;b&gt;11099&lt;/b&gt;" in text and "<b>11099</b>" not in text
    assert "separability_matrix REFERENCE" in text
    assert "sympy__sympy-20590" in text and "is not in the reference given" in text  # the test patch instance
    assert text.count('class="ex"') == 9  # every text match (4), max_examples=1 for the 5 other rules that removed


def test_byte_identical(decontam_dir: Path, tmp_path: Path):
    a = write_audit(decontam_dir, out_dir=tmp_path / "a")
    b = write_audit(decontam_dir, out_dir=tmp_path / "b")
    for pa_, pb in zip(a, b):
        assert pa_.read_bytes() == pb.read_bytes()
    for name in ("audit_by_rule.png", "audit_by_repo.png", "audit_scores.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    again = write_audit(decontam_dir, out_dir=tmp_path / "a")
    assert again[1].read_bytes() == b[1].read_bytes()
    stamped = write_audit(decontam_dir, out_dir=tmp_path / "c", generated_at="2025-01-02")[0].read_text()
    assert "2025-01-02" in stamped and "Generated" not in a[0].read_text()


def test_no_threshold_no_line(tmp_path: Path):
    d = make_decontam_dir(tmp_path / "d", counters={})
    md = write_audit(d)[0].read_text(encoding="utf-8")
    assert "no threshold line is drawn" in md and "audit_scores.png" in md


def test_thresholds_per_rule(tmp_path: Path):
    counters = {"scores.text_patch.threshold": 0.6, "scores.threshold.text_test_patch": 0.4,
                "scores.above_threshold": 5, "scores.checked": 16}
    d = make_decontam_dir(tmp_path / "d", counters=counters)
    assert thresholds(load_audit(d)) == {"text_patch": 0.6, "text_test_patch": 0.4}
    md = write_audit(d)[0].read_text(encoding="utf-8")
    assert "Threshold — text_patch: 0.6, text_test_patch: 0.4." in md
    md = write_audit(d, out_dir=tmp_path / "o", threshold=0.3)[0].read_text(encoding="utf-8")
    assert "Threshold — all text rules: 0.3." in md


def test_everything_removed(tmp_path: Path):
    d = make_decontam_dir(tmp_path / "d")
    for rank in (0, 1):
        _write(d / f"{rank:05d}.parquet", [], "sample")
    _patch_stats(d, read=len(QUARANTINED), written=0)
    md = write_audit(d)[0].read_text(encoding="utf-8")
    assert "read (11) = kept (0) + quarantined (11) — holds" in md
    assert _table_row(md, "bob/utils")[2] == "0"  # kept


def test_nothing_removed(tmp_path: Path):
    d = tmp_path / "empty"
    _write(d / "00000.parquet", [_sample("k1", "a/b", 1)], "sample")
    (d / "stats.json").write_text(json.dumps({"stage": "decontam", "type": "decontam.swebench", "units": {
        "samples": {"read": 1, "written": 1, "quarantined": {}, "filtered": {}}}}))
    md_path, html_path = write_audit(d)
    md = md_path.read_text()
    assert "read (1) = kept (1) + quarantined (0) — holds" in md and "No text-rule matches." in md
    assert not (md_path.parent / "audit_scores.png").exists() and not (md_path.parent / "audit_by_repo.png").exists()
    assert "Nothing was removed." in md and "No examples" in md
    assert html_path.read_text().count("data:image/png;base64,") == 1  # the per-rule chart (all zeros)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: _patch_stats(d, read=17), r"read \(17\) != written \(5\) \+ quarantined \(11\)"),
        (lambda d: _patch_stats(d, written=4), r"read \(16\) != written \(4\)"),
        (lambda d: (d / "00001.parquet").unlink(), r"3 kept samples on disk, stats.json says written = 5"),
        (lambda d: (d / "matches" / "00001.parquet").unlink(), r"6 match rows, but 11 quarantined samples"),
        (lambda d: (d / "quarantine" / "00000.parquet").unlink(), r"quarantine: 5 rows on disk"),
        (lambda d: (d / "stats.json").unlink(), r"stats.json: missing"),
    ],
)
def test_counts_that_do_not_add_up_raise(tmp_path: Path, break_it, message):
    d = make_decontam_dir(tmp_path / "bad")
    break_it(d)
    with pytest.raises(AuditError, match=message):
        load_audit(d)
    with pytest.raises(ValueError):  # AuditError is a ValueError
        write_audit(d)
    assert not (d / "audit" / "audit.md").exists()


def test_match_rule_disagrees_with_quarantine(tmp_path: Path):
    d = make_decontam_dir(tmp_path / "bad")
    t = pq.read_table(d / "matches" / "00000.parquet").to_pylist()
    t[0]["rule"] = "text_patch"
    _write(d / "matches" / "00000.parquet", t, "decontam_match")
    with pytest.raises(AuditError, match="without a match row of the same rule"):
        load_audit(d)


def _patch_stats(d: Path, **kw) -> None:
    stats = json.loads((d / "stats.json").read_text())
    stats["units"]["samples"].update(kw)
    (d / "stats.json").write_text(json.dumps(stats))


def test_notebook_executes(decontam_dir: Path, tmp_path: Path, monkeypatch):
    import nbclient  # in the test extras: a missing install fails here, it does not skip
    import nbformat
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # committed with outputs cleared
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    assert any('os.environ.get("DATAKIT_DECONTAM_DIR", "out/demo/decontam")' in c.source for c in nb.cells)
    monkeypatch.setenv("DATAKIT_DECONTAM_DIR", str(decontam_dir))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # the three charts, inline
    shown = "".join(json.dumps(o.get("data", {})) + o.get("text", "") for o in outputs)
    assert "django/django" in shown and "text_test_patch" in shown
    rendered = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "sympy__sympy-20590" in rendered and XSS not in rendered  # the examples, as escaped HTML

