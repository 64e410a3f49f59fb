"""The git source on real repositories written with pygit2: merge commits, squash merges, pull refs, mirrors."""

from __future__ import annotations

import pygit2
import pytest

from datakit.io.schemas import validate
from datakit.sources.git_mirror import MirrorError, RepoSpec, clone_mirror, mirror_path, read_blob
from datakit.sources.git_pulls import find_pulls
from tests.gitrepo import RepoBuilder


@pytest.fixture
def upstream(tmp_path):
    b = RepoBuilder(tmp_path / "upstream.git")
    b.commit({"src/app.py": "def f():\n    return 1\n", "tests/test_app.py": "def test_f():\n    pass\n",
              "README.md": "# app\n"}, "initial", parent=None)
    # PR 1: two commits on a branch, merged with a merge commit after main moved on (merge base != first parent)
    b.branch("fix-f")
    b.commit({"tests/test_app.py": "def test_f():\n    assert f() == 2\n"}, "add failing test", parent="fix-f",
             ref="refs/heads/fix-f")
    b.commit({"src/app.py": "def f():\n    return 2\n"}, "fix f", parent="fix-f", ref="refs/heads/fix-f")
    b.commit({"README.md": "# app\n\nmore\n"}, "docs on main")
    b.merge_pr(1, "fix-f", "Fix f returning 1", "f() must return 2.\n\nFixes #9", user="alice")
    # PR 2: squash merge
    b.squash_pr(2, {"src/app.py": "def f():\n    return 2\n\n\ndef g():\n    return 3\n"}, "Add g", "g is new")
    # PR 3: a pull ref never merged
    b.commit({"src/wip.py": "x = 1\n"}, "wip", parent="main", ref="refs/pull/3/head")
    return b


def test_clone_and_find_pulls(upstream, tmp_path):
    repo = clone_mirror(RepoSpec("acme/app", str(upstream.path)), tmp_path / "mirrors")
    assert repo.is_bare and mirror_path(tmp_path / "mirrors", "acme/app").is_dir()
    assert "refs/pull/1/head" in repo.listall_references()
    pulls = {p["number"]: p for p in find_pulls(repo, "acme/app")}
    assert sorted(pulls) == [1, 2, 3]

    p1 = pulls[1]
    assert p1["source"]["method"] == "merge_commit"
    assert p1["title"] == "Fix f returning 1" and "Fixes #9" in p1["body"] and p1["author"] == "alice"
    assert [c["message"].strip() for c in p1["commits"]] == ["add failing test", "fix f"]
    merge = repo[p1["merge_sha"]]
    assert len(merge.parents) == 2 and str(merge.parents[1].id) == p1["head_sha"]
    assert p1["base_sha"] != str(merge.parents[0].id)  # main moved on after the branch point
    assert {f["path"]: f["status"] for f in p1["files"]} == {"src/app.py": "modified", "tests/test_app.py": "modified"}
    assert "-    return 1\n+    return 2" in p1["diff"] and "README" not in p1["diff"]

    p2 = pulls[2]
    assert p2["source"]["method"] == "squash" and p2["title"] == "Add g" and p2["body"] == "g is new"
    assert p2["head_sha"] == p2["merge_sha"] and p2["files"][0]["additions"] == 4
    assert p2["merged_at"] is not None

    p3 = pulls[3]
    assert p3["source"]["method"] == "pull_ref" and p3["merged_at"] is None and p3["merge_sha"] is None
    assert [f["path"] for f in p3["files"]] == ["src/wip.py"]
    for p in pulls.values():
        validate(p, "pull_record")


def test_refetch_updates_existing_mirror(upstream, tmp_path):
    spec = RepoSpec("acme/app", str(upstream.path))
    clone_mirror(spec, tmp_path / "m")
    upstream.squash_pr(4, {"src/new.py": "y = 2\n"}, "Add new")
    repo = clone_mirror(spec, tmp_path / "m")
    assert 4 in {p["number"] for p in find_pulls(repo, "acme/app")}


def test_ids_are_stable(upstream, tmp_path):
    a = [p["id"] for p in find_pulls(clone_mirror(RepoSpec("acme/app", str(upstream.path)), tmp_path / "a"), "acme/app")]
    b = [p["id"] for p in find_pulls(clone_mirror(RepoSpec("acme/app", str(upstream.path)), tmp_path / "b"), "acme/app")]
    assert a == b and len(set(a)) == 3


def test_rename_detected_and_blobs_read(tmp_path):
    b = RepoBuilder(tmp_path / "r.git")
    body = "".join(f"line {i}\n" for i in range(40))
    b.commit({"pkg/old_name.py": body}, "init", parent=None)
    b.squash_pr(5, {"pkg/old_name.py": None, "pkg/new_name.py": body.replace("line 3\n", "line three\n")}, "Rename")
    repo = clone_mirror(RepoSpec("o/r", str(b.path)), tmp_path / "m")
    (pr,) = find_pulls(repo, "o/r")
    assert pr["files"] == [{"path": "pkg/new_name.py", "status": "renamed", "old_path": "pkg/old_name.py",
                            "additions": 1, "deletions": 1}]
    base = repo[pr["base_sha"]]
    assert read_blob(repo, base.tree, "pkg/old_name.py") == body.encode()
    assert read_blob(repo, base.tree, "pkg/new_name.py") is None
    assert read_blob(repo, base.tree, "pkg") is None  # a tree is not a file


def test_missing_local_repo_is_a_clear_error(tmp_path):
    with pytest.raises(MirrorError, match="does not exist"):
        clone_mirror(RepoSpec("o/r", str(tmp_path / "nope")), tmp_path / "m")


@pytest.mark.parametrize("spec,name,url", [
    ("psf/requests", "psf/requests", "https://github.com/psf/requests.git"),
    ("o/r /tmp/x.git", "o/r", "/tmp/x.git"),
    ("o/r=file:///tmp/x", "o/r", "file:///tmp/x"),
    ({"name": "o/r", "url": "u"}, "o/r", "u"),
])
def test_repo_spec_parse(spec, name, url):
    assert RepoSpec.parse(spec) == RepoSpec(name, url)


@pytest.mark.parametrize("bad", ["requests", "a/b/c", "", "o/r x y"])
def test_repo_spec_rejects(bad):
    with pytest.raises(ValueError):
        RepoSpec.parse(bad)


def test_pygit2_reads_merge_commits_like_git(upstream):
    main = upstream.repo.branches["main"].peel(pygit2.Commit)
    subjects = [c.message.splitlines()[0] for c in upstream.repo.walk(main.id)]
    assert any(s.startswith("Merge pull request #1") for s in subjects)
    assert any(s.endswith("(#2)") for s in subjects)
