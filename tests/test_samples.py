"""Agentless samples from real git repositories: every edit sample re-applied to the base reproduces the PR's files."""

from __future__ import annotations

import string

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datakit.io.records import as_document, prompt_completion
from datakit.io.schemas import validate
from datakit.samples.agentless import Limits, Reject, build_unit, target_files
from datakit.samples.classify import FileClass, classify_path
from datakit.samples.edits import apply_edits, parse_edits
from datakit.samples.steps import AgentlessSamples
from datakit.samples.structure import StructureRenderer
from datakit.sources.git_mirror import RepoSpec, clone_mirror, read_blob
from datakit.sources.git_pulls import find_pulls
from tests.gitrepo import RepoBuilder
from tests.test_samples_format import assert_both_parsers_reproduce

PROBLEM = "Something is broken\nSteps to reproduce: call it."


def run_samples(builder: RepoBuilder, tmp_path, limits: Limits = Limits(), name: str = "o/r"):
    mirrors = tmp_path / "mirrors"
    repo = clone_mirror(RepoSpec(name, str(builder.path)), mirrors)
    pulls = list(find_pulls(repo, name))
    step = AgentlessSamples(str(mirrors), str(tmp_path / "q"), limits)
    samples = [d.metadata for d in step.run((as_document(p) for p in pulls))]
    qfile = tmp_path / "q" / "00000.parquet"
    quarantine = pl.read_parquet(qfile).to_dicts() if qfile.exists() else []
    return repo, pulls, samples, quarantine


def reapply(repo, sample) -> None:
    """Independent check: parse the completion, apply to the base files, compare bytes with head (and with the
    Agentless-like and SWE-RL-like readers of tests/test_samples_format.py)."""
    assert_both_parsers_reproduce(repo, sample)
    edits = parse_edits(prompt_completion(sample)[1])
    base = repo[sample["meta"]["base_sha"]].tree
    head = repo[sample["meta"]["head_sha"]].tree
    paths = {e.path for e in edits if e.status != "added"}
    old = {p: read_blob(repo, base, p).decode("utf-8") for p in paths}
    result = apply_edits(old, edits)
    for e in edits:
        assert result[e.path].encode("utf-8") == read_blob(repo, head, e.path), e.path


def prompt(sample) -> str:
    return prompt_completion(sample)[0]


def completion(sample) -> str:
    return prompt_completion(sample)[1]


def by(samples, kind, role):
    return [s for s in samples if s["kind"] == kind and s["role"] == role]


def test_bugfix_with_tests_multi_hunk_and_several_commits(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    code = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(30))
    b.commit({"src/lib/core.py": code, "src/lib/other.py": "A = 1\n", "tests/test_core.py": "def test_a():\n    pass\n",
              "docs/index.md": "# docs\n", "setup.cfg": "[x]\n"}, "init", parent=None)
    b.branch("fix")
    b.commit({"tests/test_core.py": "def test_a():\n    pass\n\n\ndef test_f3():\n    assert f3(0) == 33\n"},
             "test first", parent="fix", ref="refs/heads/fix")
    new = code.replace("return x + 3\n", "return x + 33\n").replace("return x + 27\n", "return x * 27\n")
    b.commit({"src/lib/core.py": new, "docs/index.md": "# docs\nv2\n"}, "fix", parent="fix", ref="refs/heads/fix")
    b.merge_pr(7, "fix", "f3 is off by 30", "Calling f3(0) gives 3.")
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    assert quarantine == []
    (loc,) = by(samples, "localize", "bugfixer")
    assert completion(loc) == "```\nsrc/lib/core.py\n```"
    assert "### GitHub Problem Description ###\nf3 is off by 30\nCalling f3(0) gives 3." in prompt(loc)
    structure = prompt(loc).split("### Repository Structure ###\n")[1]
    assert structure.startswith("src/\n    lib/\n        core.py\n        other.py\n")
    assert "tests" not in structure and "index.md" not in structure and "setup.cfg" not in structure
    (tloc,) = by(samples, "localize", "testwriter")
    assert "tests/\n    test_core.py\n" in prompt(tloc) and completion(tloc) == "```\ntests/test_core.py\n```"
    (edit,) = by(samples, "edit", "bugfixer")
    assert completion(edit).count("<<<<<<< SEARCH") == 2  # two hunks, far apart
    assert "--- BEGIN ISSUE ---\nf3 is off by 30" in prompt(edit) and "### src/lib/core.py\n" in prompt(edit)
    assert edit["meta"]["template"] == "bugfixer_edit@2" and edit["meta"]["files"] == ["src/lib/core.py"]
    assert "prompt" not in edit and "completion" not in edit  # the text is stored once
    assert prompt(edit).endswith("use a separate code block for each one.\n")
    assert completion(edit).startswith("```python\n### src/lib/core.py\n<<<<<<< SEARCH\n")
    for s in samples:
        reapply(repo, s) if s["kind"] == "edit" else None
        validate(s, "sample")


def test_ambiguous_lines_no_eol_unicode_and_crlf(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    repeated = "def a():\n    return None\n\n" * 5
    crlf = "x = 1\r\ny = 2\r\nz = 3\r\n"
    noeol = "name = 'Größe'\nlabel = 'キャンセル 🎉'"
    b.commit({"a.py": repeated, "b.py": crlf, "c.py": noeol}, "init", parent=None)
    lines = repeated.split("\n")
    lines[7] = "    return 0"  # the third `return None` only
    b.squash_pr(1, {"a.py": "\n".join(lines), "c.py": noeol.replace("🎉", "✓")}, "Fix things", PROBLEM)
    b.squash_pr(2, {"b.py": crlf.replace("y = 2", "y = 20")}, "CRLF", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    (edit,) = by(samples, "edit", "bugfixer")
    comp = completion(edit)
    assert comp.endswith("<<<<<<< SEARCH\nname = 'Größe'\nlabel = 'キャンセル 🎉'\n=======\n"
                         "name = 'Größe'\nlabel = 'キャンセル ✓'\n>>>>>>> REPLACE\n```")  # no final newline, as written
    a_block = comp.split("### a.py\n")[1].split("\n>>>>>>> REPLACE")[0]
    search = a_block.split("<<<<<<< SEARCH\n")[1].split("\n=======\n")[0]
    assert ("\n" + repeated).count("\n" + search) == 1  # grown until unique, line-anchored
    reapply(repo, edit)
    # Agentless strips each block, so the "\r" ending every REPLACE of a CRLF file cannot be carried
    assert sorted((q["role"], q["reason"]) for q in quarantine) == [
        ("bugfixer", "crlf_line_endings"), ("testwriter", "no_test_change"), ("testwriter", "no_test_change")]


def test_new_files_and_deleted_or_renamed_ones(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    body = "".join(f"value_{i} = {i}\n" for i in range(20))
    b.commit({"pkg/old.py": body, "pkg/gone.py": "x = 1\n", "pkg/keep.py": "k = 1\n"}, "init", parent=None)
    b.squash_pr(3, {"pkg/added.py": "def added():\n    return 1\n", "pkg/keep.py": "k = 2\n"}, "Add", PROBLEM)
    b.squash_pr(4, {"pkg/old.py": None, "pkg/new.py": body.replace("value_5 = 5", "value_5 = 55")}, "Move", PROBLEM)
    b.squash_pr(5, {"pkg/gone.py": None, "pkg/keep.py": "k = 3\n"}, "Remove", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    (edit,) = by(samples, "edit", "bugfixer")
    comp = completion(edit)
    assert "```python\n### pkg/added.py\n<<<<<<< SEARCH\n\n=======\ndef added():\n    return 1\n\n>>>>>>> REPLACE\n```" in comp
    reapply(repo, edit)
    (loc,) = by(samples, "localize", "bugfixer")
    assert "pkg/added.py" not in completion(loc)  # not in the base structure: nothing to find
    assert loc["meta"]["files"] == ["pkg/keep.py"]
    number = {p["id"]: p["number"] for p in pulls}
    reasons = {number[q["id"].split("/")[0]]: q["reason"] for q in quarantine if q["role"] == "bugfixer"}
    assert reasons == {4: "renamed_file", 5: "deleted_file"}


def test_binary_non_utf8_limits_are_quarantined(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"a.py": "x = 1\n", "b.py": "s = 'caf\xe9'\n".encode("latin-1"), "c.py": b"\x00\x01bin",
              "big.py": "y = 1\n" * 10}, "init", parent=None)
    b.squash_pr(1, {"b.py": "s = 'th\xe9'\n".encode("latin-1")}, "Latin-1", PROBLEM)
    b.squash_pr(2, {"c.py": b"\x00\x02bin"}, "Binary", PROBLEM)
    b.squash_pr(3, {"big.py": "y = 2\n" * 10}, "Big", PROBLEM)
    b.squash_pr(4, {"a.py": "x = 2\n", "README.md": "docs\n"}, "Docs and code", PROBLEM)
    b.squash_pr(5, {"README.md": "docs 2\n"}, "Docs only", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp_path, Limits(max_file_bytes=50))
    reasons = {(pulls_by_id(pulls, q["id"].split("/")[0]), q["role"]): q["reason"] for q in quarantine}
    assert reasons[(1, "bugfixer")] == "non_utf8"
    assert reasons[(2, "bugfixer")] == "binary_file"
    assert reasons[(3, "bugfixer")] == "file_too_large"
    assert (4, "bugfixer") not in reasons
    assert reasons[(5, "bugfixer")] == "no_code_change"
    assert all(reasons[(n, "testwriter")] == "no_test_change" for n in range(1, 6))
    # nothing lost: each (PR, role) unit is either written or quarantined, with the whole record kept
    written = {(s["meta"]["pr"], s["role"]) for s in samples}
    assert len(written) + len(quarantine) == 2 * len(pulls)
    assert all('"diff"' in q["record"] for q in quarantine)


def test_no_problem_statement_is_quarantined():
    pr = {"repo": "o/r", "number": 1, "title": "", "body": "", "base_sha": "a", "head_sha": "b", "source": {},
          "files": [{"path": "a.py", "status": "modified", "additions": 1, "deletions": 1}]}
    with pytest.raises(Reject) as exc:
        build_unit(pr, "bugfixer", target_files(pr, "bugfixer"), {"a.py": (b"x\n", b"y\n")}, lambda: "", None)
    assert exc.value.reason == "no_problem_statement"


def pulls_by_id(pulls, pid):
    return next(p["number"] for p in pulls if p["id"] == pid)


def test_too_many_files_and_prompt_limit(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({f"m{i}.py": f"v = {i}\n" for i in range(4)}, "init", parent=None)
    b.squash_pr(1, {f"m{i}.py": f"v = {i + 1}\n" for i in range(4)}, "Many", PROBLEM)
    _, _, samples, quarantine = run_samples(b, tmp_path, Limits(max_files=3))
    assert samples == [] and {q["reason"] for q in quarantine} == {"too_many_files", "no_test_change"}
    _, _, samples, quarantine = run_samples(b, tmp_path / "2", Limits(max_prompt_bytes=200))
    assert samples == [] and quarantine[0]["reason"] == "prompt_too_large"


def test_structure_cache_reuses_subtrees_and_changes_nothing(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    files = {f"pkg{d}/sub/mod{i}.py": f"x = {i}\n" for d in range(5) for i in range(5)}
    b.commit(files, "init", parent=None)
    for n in range(1, 6):
        b.squash_pr(n, {f"pkg0/sub/mod{n % 5}.py": f"x = {n * 10}\n"}, f"Fix {n}", PROBLEM)
    repo, pulls, cached, _ = run_samples(b, tmp_path)
    step_uncached = AgentlessSamples(str(tmp_path / "mirrors"), str(tmp_path / "q2"), structure_cache_mb=0)
    uncached = [d.metadata for d in step_uncached.run(as_document(p) for p in pulls)]
    assert [s["text"] for s in cached] == [s["text"] for s in uncached]
    r = StructureRenderer(repo, min_cache_depth=1)
    for p in pulls:
        r.render(repo[p["base_sha"]].tree, include_tests=False)
    assert r.hits >= 4 * 4  # pkg1..pkg4 are unchanged between commits: served from the cache
    tiny = StructureRenderer(repo, cache_bytes=30, min_cache_depth=1)
    texts = [tiny.render(repo[p["base_sha"]].tree, include_tests=False) for p in pulls]
    assert tiny._cached_bytes <= 30 and texts == [r.render(repo[p["base_sha"]].tree, False) for p in pulls]


def test_structure_rendering_format(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"z.py": "", "a/b/c.py": "", "a/test_x.py": "", "vendor/v.py": "", "a/img.png": b"\x89PNG",
              "docs/conf.py": "", "a/tests/helper.py": ""}, "init", parent=None)
    tree = b.repo.branches["main"].peel().tree
    r = StructureRenderer(b.repo)
    assert r.render(tree, include_tests=False) == "a/\n    b/\n        c.py\nz.py\n"
    assert r.render(tree, include_tests=True) == (
        "a/\n    b/\n        c.py\n    test_x.py\n    tests/\n        helper.py\nz.py\n")


@pytest.mark.parametrize("path,cls", [
    ("src/attestation.py", FileClass.CODE), ("src/_pytest/python.py", FileClass.CODE),
    ("pytest/main.py", FileClass.CODE), ("contest/run.py", FileClass.CODE), ("lib/latest.py", FileClass.CODE),
    ("tests/test_a.py", FileClass.TEST), ("pkg/test_a.py", FileClass.TEST), ("pkg/a_test.py", FileClass.TEST),
    ("pkg/tests/util.py", FileClass.TEST), ("testing/conftest.py", FileClass.TEST), ("x/conftest.py", FileClass.TEST),
    ("cmd/server_test.go", FileClass.TEST), ("src/FooTest.java", FileClass.TEST), ("web/a.spec.ts", FileClass.TEST),
    ("web/__tests__/a.js", FileClass.TEST), ("spec/models/user_spec.rb", FileClass.TEST),
    ("README.md", FileClass.DOCS), ("docs/conf.py", FileClass.DOCS), ("CHANGELOG", FileClass.DOCS),
    ("setup.cfg", FileClass.CONFIG), ("pyproject.toml", FileClass.CONFIG), (".github/ci.yml", FileClass.CONFIG),
    ("logo.png", FileClass.BINARY), ("tests/data/img.png", FileClass.BINARY),
    ("vendor/lib.py", FileClass.VENDORED), ("a/third_party/x/tests/test_y.py", FileClass.VENDORED),
    ("proto/x_pb2.py", FileClass.VENDORED), ("static/app.min.js", FileClass.VENDORED),
    # fixtures that are not code, CI folders (issue 9)
    ("tests/certs/a.pem", FileClass.DATA), ("tests/ssl/a.key", FileClass.DATA), ("tests/ssl/openssl.cnf", FileClass.DATA),
    ("x/server.crt", FileClass.DATA), (".github/workflows/test.yml", FileClass.CONFIG),
    (".github/scripts/install.ps1", FileClass.CONFIG), (".circleci/run.sh", FileClass.CONFIG),
    ("ci_tools/ci/runner.py", FileClass.CODE), ("scripts/build.bat", FileClass.CONFIG),
    ("node_modules/a/index.js", FileClass.VENDORED), ("src/third_party/x.py", FileClass.VENDORED),
])
def test_classify(path, cls):
    assert classify_path(path) is cls


def test_swebench_substring_rule_is_beaten():
    tricky = ["src/attestation.py", "src/_pytest/python.py", "contest/run.py", "lib/latest.py"]
    assert all("test" in p for p in tricky)
    assert not any(classify_path(p) is FileClass.TEST for p in tricky)


# ------------------------------------------------------------------------ property: git → samples → re-applied
NOT_CARRIED = {"crlf_line_endings", "trailing_whitespace", "final_newline_change", "empty_replace",
               "ambiguous_markers", "search_ambiguous"}  # the last: a file of empty lines only
_lines = st.sampled_from(["a = 1", "b = 2", "return x", "", "    pass", "# é", "x"])
_eol = st.sampled_from(["\n", "\n", "\r\n"])
_text = st.lists(st.tuples(_lines, _eol), min_size=0, max_size=25).map(lambda ls: "".join(a + e for a, e in ls))


@st.composite
def _file_and_edit(draw):
    old = draw(_text)
    if draw(st.booleans()):
        old = old.rstrip("\r\n") if old.strip() else old  # sometimes no newline at end of file
    lines = old.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines)))
        j = draw(st.integers(i, min(len(lines), i + 3)))
        lines[i:j] = draw(st.lists(st.tuples(_lines, _eol).map("".join), max_size=3))
    return old, "".join(lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(_file_and_edit(), min_size=1, max_size=3))
def test_property_random_edits_reapply_exactly(tmp_path_factory, files):
    tmp = tmp_path_factory.mktemp("prop")
    b = RepoBuilder(tmp / "up.git")
    b.commit({f"src/m{i}.py": old for i, (old, _) in enumerate(files)} | {"keep.py": "k\n"}, "init", parent=None)
    changes = {f"src/m{i}.py": new for i, (old, new) in enumerate(files) if new != old}
    if not changes:
        return
    b.squash_pr(1, changes, "Random change", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp)
    edits = by(samples, "edit", "bugfixer")
    refused = [q["reason"] for q in quarantine if q["role"] == "bugfixer"]
    assert len(edits) + len(refused) == 1
    if refused:  # only what one of the two parsers cannot carry
        assert refused[0] in NOT_CARRIED, quarantine
    else:
        reapply(repo, edits[0])
