"""Commit bundles on real git repositories built with pygit2: one document per PR, curated, every diff verified
by parsing it back with unidiff and applying it to the parent's files (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datakit.bundles.build import BundleLimits, BundleOut, build_bundle
from datakit.bundles.curate import file_verdict, message_verdict
from datakit.bundles.diffs import FileChange, PatchMismatch, apply_hunks, commit_changes, verify_patch
from datakit.bundles.render import BundleCommit, fence
from datakit.sources.git_pulls import find_pulls
from tests.gitrepo import RepoBuilder

CODE = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(12))


@pytest.mark.parametrize("message,author,verdict", [
    ("Fix the parser on empty input\n\nIt crashed.", "alice", None),
    ("Bump requests from 2.31.0 to 2.32.0", "alice", "bot_commit"),
    ("Fix the parser on empty input", "dependabot[bot]", "bot_commit"),
    ("wip", "alice", "weak_message"),
    ("v1.2.3", "alice", "weak_message"),
    ("3f2a9c1d", "alice", "weak_message"),
    ("Merge branch 'main' into feature", "alice", "weak_message"),
    ("Update README.md", "alice", "weak_message"),
    ("fix it", "alice", "weak_message"),  # < 10 characters
    ("Subject\n\n" + "x" * 10_001, "alice", "long_message"),
])
def test_message_rules(message, author, verdict):
    assert message_verdict(message, author) == verdict


@pytest.mark.parametrize("path,data,verdict", [
    ("src/app.py", b"x = 1\n", None),
    ("poetry.lock", b"", "lock_file"),
    ("web/package-lock.json", b"{}", "lock_file"),
    ("static/app.min.js", b"a", "minified"),
    ("static/bundle.js", b"var a=1;" * 1000, "minified"),
    ("vendor/lib/x.py", b"x = 1\n", "vendored_or_generated"),
    ("proto/api_pb2.py", b"x = 1\n", "vendored_or_generated"),
    ("img/logo.png", b"\x89PNG", "binary"),
    ("data/blob.txt", b"a\0b", "binary"),
])
def test_file_rules(path, data, verdict):
    assert file_verdict(path, data) == verdict


def test_fence_outgrows_backticks_in_the_diff():
    assert fence("+x\n") == "```"
    assert fence("+```python\n+````\n") == "`````"


@pytest.fixture
def repo(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"src/app.py": CODE, "src/crlf.py": "a = 1\r\nb = 2\r\n", "src/noeol.py": "x = 1\ny = 2",
              "docs/guide.md": "# Guide\n\n```python\nx = 1\n```\n", "src/odd.py": "a = '\f'\nb = '\u2028'\n",
              "package-lock.json": "{}\n", "README.md": "# app\n"}, "initial", parent=None)
    b.branch("feature")
    b.commit({"src/app.py": CODE.replace("return 3", "return 33"), "package-lock.json": '{"v": 2}\n'},
             "Make f3 return 33\n\nThe caller expects 33.", parent="feature", ref="refs/heads/feature")
    b.commit({"README.md": "# app\n\nmain moved\n"}, "Document the app on main")
    main = b.repo.branches["main"].target
    feature = b.repo.branches["feature"].target
    index = b.repo.merge_commits(feature, main)
    sig = b._sig("Alice")
    merged = b.repo.create_commit("refs/heads/feature", sig, sig, "Merge branch 'main' into feature",
                                  index.write_tree(b.repo), [feature, main])
    del merged
    b.commit({"src/crlf.py": "a = 1\r\nb = 3\r\n", "src/noeol.py": "x = 1\ny = 3",
              "src/odd.py": "a = '\f'\nb = '\u2028!'\n", "docs/guide.md": "# Guide\n\n```python\nx = 2\n```\n",
              "static/app.min.js": "var a=1;"},
             "Edge cases: CRLF, no final newline, form feeds, fences", parent="feature", ref="refs/heads/feature")
    b.commit({"src/app.py": CODE.replace("return 3", "return 33").replace("return 5", "return 55")},
             "Bump requests from 1.0 to 2.0", parent="feature", ref="refs/heads/feature", author="dependabot[bot]")
    b.commit({"src/new_mod.py": "VALUE = 1\n", "src/app.py": None, "src/app2.py":
              CODE.replace("return 3", "return 33").replace("return 5", "return 55")},
             "wip", parent="feature", ref="refs/heads/feature")
    b.merge_pr(1, "feature", "Make f3 return 33", "Fixes #7")
    b.squash_pr(2, {"src/new_mod.py": "VALUE = 2\n"}, "Bump VALUE to two", "Because two.")
    b.commit({"poetry.lock": "x\n"}, "Only a lock file change here", parent="main", ref="refs/pull/3/head")
    b.commit({"poetry.lock": "x\n"}, "Only a lock file change here (#3)")
    return b


def _bundles(b: RepoBuilder, limits: BundleLimits = BundleLimits()):
    from datakit.bundles.steps import CommitBundles

    out = {}
    step = CommitBundles("unused", "unused")
    step._repos["acme/app"] = b.repo
    for pr in find_pulls(b.repo, "acme/app"):
        step.limits = limits
        try:
            out[pr["number"]] = step._bundle(pr)
        except BundleOut as exc:
            out[pr["number"]] = exc
    return out


def test_bundle_reads_like_a_review_and_is_curated(repo):
    sample, counts = _bundles(repo)[1]
    text = sample["text"]
    assert text.startswith("# acme/app: pull request #1\n## Make f3 return 33\nFixes #7\n")
    assert text.index("Make f3 return 33\n\nThe caller expects 33.") < text.index("Merge branch 'main' into feature")
    assert "## Commit 2/4" in text and ": merge\nMerge branch 'main' into feature\n\n## Commit 3/4" in text
    assert "main moved" not in text  # the merge of main shows its message only
    assert "Bump requests" not in text and "bot_commit_dropped" in sample["meta"]["flags"]
    assert "package-lock.json" not in text and "app.min.js" not in text
    assert {"files_dropped.lock_file", "files_dropped.minified", "weak_message"} <= set(sample["meta"]["flags"])
    assert "rename from src/app.py" in text and "rename to src/app2.py" in text
    assert "`````diff" not in text and "````diff\n" in text  # the guide's ``` fences raise the bundle's fence
    assert counts["commits.bot_commit"] == 1 and counts["files.lock_file"] == 1
    assert sample["kind"] == "commit_bundle" and sample["role"] == "none" and sample["prompt_chars"] == 0
    assert sample["meta"]["commits"] == 4 and sample["meta"]["template"] == "commit_bundle@1"


def test_every_bundled_diff_round_trips(repo):
    """Parse each kept commit diff back with unidiff, apply it to the parent's files: the commit's files."""
    from unidiff import PatchSet

    checked = 0
    for commit in repo.repo.walk(repo.repo.branches["main"].target):
        if len(commit.parents) != 1:
            continue
        kept = [c for c in commit_changes(repo.repo, commit) if c.verdict is None]
        patch = "".join(c.patch for c in kept)
        for patched, change in zip(PatchSet.from_string(patch), kept):
            assert apply_hunks(change.old_text or "", patched) == (change.new_text or "")
            checked += 1
    assert checked >= 8


def test_a_tampered_diff_is_caught(repo):
    commit = next(c for c in repo.repo.walk(repo.repo.branches["main"].target)
                  if c.message.startswith("Edge cases"))
    kept = [c for c in commit_changes(repo.repo, commit) if c.verdict is None]
    verify_patch("".join(c.patch for c in kept), kept)
    crlf = next(c for c in kept if c.path == "src/crlf.py")
    for tamper in (crlf.patch.replace("\r\n", "\n"), crlf.patch.replace("+b = 3", "+b = 4")):
        with pytest.raises(PatchMismatch):
            verify_patch(tamper, [crlf])
    noeol = next(c for c in kept if c.path == "src/noeol.py")
    with pytest.raises(PatchMismatch):
        verify_patch(noeol.patch.replace("\\ No newline at end of file\n", ""), [noeol])


def test_squash_without_its_commits_falls_back_to_the_landed_commit(repo):
    pr = next(p for p in find_pulls(repo.repo, "acme/app") if p["number"] == 2)
    pr["commits"] = [{"sha": "0" * 40, "message": "gone"}]  # force-pushed away
    from datakit.bundles.steps import CommitBundles

    step = CommitBundles("unused", "unused")
    step._repos["acme/app"] = repo.repo
    sample, _ = step._bundle(pr)
    assert "landed_commit_only" in sample["meta"]["flags"] and "commits" in sample["source"]["missing"]
    assert "+VALUE = 2" in sample["text"]


def test_nothing_left_and_bounds_are_filtered(repo):
    out = _bundles(repo)
    assert isinstance(out[3], BundleOut) and out[3].reason == "no_code_change" and out[3].filtered
    small = _bundles(repo, BundleLimits(max_files=2))
    assert small[1].reason == "too_many_files" and small[1].filtered
    assert _bundles(repo, BundleLimits(max_lines=3))[1].reason == "too_many_lines"
    assert _bundles(repo, BundleLimits(max_bytes=200))[1].reason == "too_large"
    assert _bundles(repo, BundleLimits(max_commits=2))[1].reason == "too_many_commits"


def test_build_bundle_quarantines_a_diff_that_does_not_apply():
    change = FileChange("a.py", "a.py", "modified", "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n"
                        "@@ -1 +1 @@\n-x = 1\n+x = 2\n", "x = 9\n", "x = 2\n", 1, 1, None)
    pr = {"repo": "o/r", "number": 1, "title": "t", "source": {"kind": "git"}}
    with pytest.raises(BundleOut) as exc:
        build_bundle(pr, [BundleCommit("a" * 40, "Change x to two", "alice", False, [change])])
    assert exc.value.reason == "diff_roundtrip_failed" and not exc.value.filtered


_LINES = st.lists(st.sampled_from(["a", "b", "c", "", " x", "\t", "```", "=======", "a\r", "\f", "é", "\u2028"]),
                  max_size=12)


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_LINES, after=_LINES, eol_before=st.booleans(), eol_after=st.booleans())
def test_round_trip_property(tmp_path_factory, before, after, eol_before, eol_after):
    def text(lines, eol):
        body = "\n".join(lines)
        return body + "\n" if eol and lines else body

    b = RepoBuilder(tmp_path_factory.mktemp("p") / "r.git")
    b.commit({"f.txt": text(before, eol_before), "keep": "k\n"}, "one", parent=None)
    oid = b.commit({"f.txt": text(after, eol_after)}, "two")
    kept = [c for c in commit_changes(b.repo, b.repo[oid]) if c.verdict is None]
    verify_patch("".join(c.patch for c in kept), kept)


def test_stage_counts_add_up_and_parquet_reads_back(repo, tmp_path):
    import shutil

    mirrors = tmp_path / "mirrors"
    shutil.copytree(repo.path, mirrors / "acme__app.git")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""name: b
output: {tmp_path / 'out'}
mirrors: {mirrors}
executor: {{type: local, tasks: 2, workers: 1}}
stages:
  - {{name: pulls, stage: sources.git, options: {{repos: [acme/app], fetch: false}}}}
  - {{name: bundles, stage: bundles.commits, input: pulls}}
""")
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "run", str(recipe), "--quiet"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "out" / "bundles" / "stats.json").read_text())["units"]["pulls"]
    assert stats["read"] == 3 and stats["written"] == 2 and stats["filtered"] == {"no_code_change": 1}
    df = pl.read_parquet(tmp_path / "out" / "bundles" / "*.parquet")
    assert sorted(m["pr"] for m in df["meta"]) == [1, 2] and set(df["kind"]) == {"commit_bundle"}
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "bundles" / "*.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(ds["text"]) == sorted(df["text"].to_list())
