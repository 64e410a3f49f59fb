"""Which files a (PR, role) unit is about, where its problem statement comes from, and ids that survive a template
change — each on a git repository built here."""

from __future__ import annotations

import dataclasses
import json

import pygit2

from datakit.io.records import as_document, prompt_completion
from datakit.samples import templates
from datakit.samples.agentless import sample_id
from datakit.samples.classify import GitAttributes, looks_encoded
from datakit.samples.steps import AgentlessSamples
from tests.gitrepo import RepoBuilder
from tests.test_samples import PROBLEM, by, run_samples
from tests.test_samples_format import assert_both_parsers_reproduce


def units(pulls, quarantine, filtered_dir):
    """{(pr number, role): reason} of every unit not written (quarantined or filtered)."""
    import polars as pl

    number = {p["id"]: p["number"] for p in pulls}
    out = {(number[q["id"].split("/")[0]], q["role"]): q["reason"] for q in quarantine}
    for f in filtered_dir.glob("*.parquet"):
        for row in pl.read_parquet(f).to_dicts():
            out[(json.loads(row["record"])["number"], row["role"])] = "filtered:" + row["reason"]
    return out


# ------------------------------------------------------------------------------------------ part 1: ids, statements
def test_sample_ids_do_not_change_with_the_template_version(tmp_path, monkeypatch):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"a.py": "x = 1\n", "tests/test_a.py": "def test_a():\n    pass\n"}, "init", parent=None)
    b.squash_pr(1, {"a.py": "x = 2\n", "tests/test_a.py": "def test_a():\n    assert True\n"}, "Fix x", PROBLEM)
    _, pulls, before, _ = run_samples(b, tmp_path / "1")
    bumped = {key: dataclasses.replace(t, version=t.version + 1) for key, t in templates.TEMPLATES.items()}
    monkeypatch.setattr(templates, "TEMPLATES", bumped)
    _, _, after, _ = run_samples(b, tmp_path / "2")
    assert len(before) == 4 and [s["id"] for s in before] == [s["id"] for s in after]
    assert {s["meta"]["template"] for s in before} != {s["meta"]["template"] for s in after}
    assert {s["id"] for s in before} == {sample_id(pulls[0], k, r) for k in ("localize", "edit")
                                         for r in ("bugfixer", "testwriter")}


def test_merge_commit_without_description_takes_the_problem_from_its_commits(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"src/calc.py": "def add(a, b):\n    return a - b\n"}, "init", parent=None)
    b.branch("fix-add")
    b.commit({"src/calc.py": "def add(a, b):\n    return a + b\n"},
             "add() subtracts instead of adding\n\nadd(2, 2) returned 0; it must return 4.",
             parent="fix-add", ref="refs/heads/fix-add")
    b.commit({"src/calc.py": "def add(a, b):\n    return a + b\n\n\nZERO = 0\n"}, "Merge branch 'main' into fix-add",
             parent="fix-add", ref="refs/heads/fix-add")  # boilerplate message, left out
    b.merge_pr(3, "fix-add", title="", body="")  # "Merge pull request #3 from alice/fix-add", nothing else
    b.commit({"src/calc.py": "def add(a, b):\n    return a + b\n\n\nZERO = 0\nONE = 1\n"}, "one", parent="main")
    b.squash_pr(4, {"src/calc.py": "def add(a, b):\n    return a + b\n\n\nZERO = 0\nONE = 2\n"}, "Fix ONE")
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    edit3, edit4 = sorted(by(samples, "edit", "bugfixer"), key=lambda s: s["meta"]["pr"])
    assert edit3["meta"]["problem_source"] == "commits"
    assert ("--- BEGIN ISSUE ---\nadd() subtracts instead of adding\n\nadd(2, 2) returned 0; it must return 4.\n"
            "--- END ISSUE ---") in prompt_completion(edit3)[0]
    assert "Merge " not in prompt_completion(edit3)[0].split("--- END ISSUE ---")[0]
    assert edit4["meta"]["problem_source"] == "pull_request"
    step = AgentlessSamples(str(tmp_path / "mirrors"), str(tmp_path / "q2"))
    list(step.run(as_document(p) for p in pulls))
    counters = {k: int(v.total) for k, v in step.stats.stats.items()}
    assert counters["problem_source.commits"] == 1 and counters["problem_source.pull_request"] == 1
    assert counters["problem.one_line"] == 1 and counters["problem.under_40_chars"] == 1  # "Fix ONE"


# ------------------------------------------------------------------------------------------ part 3: the right files
def test_vendored_generated_and_fixture_files_are_no_targets(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({
        "pip/__init__.py": "", "pip/_internal/run.py": "R = 1\n",
        "pip/packages/urllib3/pool.py": "POOL = 1\n",  # bundled inside a Python package
        "packages/app/main.py": "MAIN = 1\n",  # a monorepo's top-level packages/: real code
        "third_party/lib/x.py": "X = 1\n", "web/node_modules/left/index.js": "module.exports = 1\n",
        "gen/api_client.py": "CLIENT = 1\n", "static/bundle.js": "var b = 1;\n",
        ".gitattributes": "gen/** linguist-generated\nstatic/*.js linguist-vendored=true\n*.keep.py -linguist-vendored\n",
        "tests/certs/server.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "tests/data/blob.b64data": ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 3 + "\n") * 6,
        ".github/workflows/ci.yml": "on: push\n", ".github/scripts/setup.ps1": "Write-Host hi\n",
        "tests/test_run.py": "def test_run():\n    pass\n",
    }, "init", parent=None)
    b.squash_pr(1, {"pip/packages/urllib3/pool.py": "POOL = 2\n", "third_party/lib/x.py": "X = 2\n",
                    "web/node_modules/left/index.js": "module.exports = 2\n", "gen/api_client.py": "CLIENT = 2\n",
                    "static/bundle.js": "var b = 2;\n", ".github/scripts/setup.ps1": "Write-Host ho\n",
                    "pip/_internal/run.py": "R = 2\n", "packages/app/main.py": "MAIN = 2\n",
                    "tests/certs/server.pem": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
                    "tests/data/blob.b64data": ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 3 + "\n") * 7,
                    "tests/test_run.py": "def test_run():\n    assert R == 2\n"}, "Bump everything", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    (edit,) = by(samples, "edit", "bugfixer")
    assert edit["meta"]["files"] == ["packages/app/main.py", "pip/_internal/run.py"]
    (tedit,) = by(samples, "edit", "testwriter")
    assert tedit["meta"]["files"] == ["tests/test_run.py"]  # not the certificate, not the encoded blob
    (loc,) = by(samples, "localize", "bugfixer")
    structure = prompt_completion(loc)[0].split("### Repository Structure ###\n")[1]
    for hidden in ("urllib3", "third_party", "node_modules", "api_client.py", "bundle.js", "setup.ps1"):
        assert hidden not in structure
    assert "packages/\n    app/\n        main.py\n" in structure and "pip/\n    __init__.py\n    _internal/" in structure
    for sample in by(samples, "edit", "bugfixer") + by(samples, "edit", "testwriter"):
        assert_both_parsers_reproduce(repo, sample)


def test_gitattributes_rules_and_encoded_data():
    attrs = GitAttributes("# c\ndocs/_static/*.js linguist-vendored\nlib/** linguist-generated\n"
                          "*.pb.py linguist-generated=true\nkeep.pb.py -linguist-generated\n/root.py linguist-vendored\n"
                          "x.py text eol=lf\n")
    assert attrs.vendored("docs/_static/a.js") and not attrs.vendored("docs/_static/sub/a.js")
    assert attrs.vendored("lib/a/b/c.py") and attrs.vendored("src/m.pb.py") and not attrs.vendored("src/keep.pb.py")
    assert attrs.vendored("root.py") and not attrs.vendored("src/root.py") and not attrs.vendored("x.py")
    assert not GitAttributes("x.py text\n")
    assert looks_encoded(b"TWFu" * 40 + b"\n" + b"TWFu" * 40 + b"\n")
    assert not looks_encoded(b"def f(x):\n    return x\n" * 30) and not looks_encoded(b"short\n")


def _mode_change(b: RepoBuilder, number: int, path: str, extra: dict) -> None:
    """A squash PR that makes `path` executable (same bytes) and applies `extra` changes."""
    main = b.repo.branches["main"].peel()
    tree_oid = b._tree(main.tree, {p: d.encode() for p, d in extra.items()})
    tree = b.repo[tree_oid]
    tb = b.repo.TreeBuilder(tree)
    tb.insert(path, tree[path].id, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
    new_tree = tb.write()
    sig = b._sig()
    b.repo.create_commit(f"refs/pull/{number}/head", sig, sig, "wip", new_tree, [main.id])
    b.repo.create_commit("refs/heads/main", sig, sig, f"Make {path} executable (#{number})\n\n{PROBLEM}\n",
                         new_tree, [main.id])


def test_localize_and_edit_agree_on_files(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"tool.py": "print(1)\n", "lib.py": "L = 1\n", "tests/test_lib.py": "def test_l():\n    pass\n"},
             "init", parent=None)
    _mode_change(b, 1, "tool.py", {"lib.py": "L = 2\n"})  # a mode change beside a real change
    _mode_change(b, 2, "tool.py", {})  # only a mode change
    b.squash_pr(3, {"lib.py": "L = 3\n", "tests/test_new.py": "def test_n():\n    assert L == 3\n",
                    "tests/test_lib.py": "def test_l():\n    assert L\n"}, "Modify a test and create one", PROBLEM)
    b.squash_pr(4, {"lib.py": "L = 4\n", "tests/test_only_new.py": "def test_o():\n    assert L == 4\n"},
                "Only a new test", PROBLEM)
    b.squash_pr(5, {"new_mod.py": "N = 1\n"}, "Only a new module", PROBLEM)
    repo, pulls, samples, quarantine = run_samples(b, tmp_path)
    got = units(pulls, quarantine, tmp_path / "filtered")
    assert got == {(1, "testwriter"): "no_test_change", (2, "bugfixer"): "no_code_change",
                   (2, "testwriter"): "no_test_change", (4, "testwriter"): "filtered:only_new_files",
                   (5, "bugfixer"): "filtered:only_new_files", (5, "testwriter"): "no_test_change"}
    written = {(s["meta"]["pr"], s["role"], s["kind"]): s for s in samples}
    assert len(written) == len(samples)
    for (pr, role) in {(pr, role) for pr, role, _ in written}:
        assert (pr, role, "localize") in written and (pr, role, "edit") in written  # a unit is written whole
    assert written[(1, "bugfixer", "localize")]["meta"]["files"] == ["lib.py"]  # the mode change left out of both
    assert written[(1, "bugfixer", "edit")]["meta"]["files"] == ["lib.py"]
    tloc = written[(3, "testwriter", "localize")]
    # "edit or create": the created test file is in the TestWriter's answer, the edited one first (most changed)
    assert set(tloc["meta"]["files"]) == {"tests/test_lib.py", "tests/test_new.py"}
    assert prompt_completion(tloc)[1] == "```\n" + "".join(f"{p}\n" for p in tloc["meta"]["files"]) + "```"
    assert "edit or create" in prompt_completion(tloc)[0]
    tedit = written[(3, "testwriter", "edit")]
    assert "### tests/test_lib.py\n" in prompt_completion(tedit)[0]  # the prompt shows at least one file
    assert sorted(tedit["meta"]["files"]) == ["tests/test_lib.py", "tests/test_new.py"]
    assert_both_parsers_reproduce(repo, tedit)
