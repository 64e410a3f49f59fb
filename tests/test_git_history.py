"""PR discovery on histories shaped like real ones: pull refs whose head is a merge, PRs merged by a commit that
does not name them, the same change under several PR numbers, merge-only PRs, fast-forwards, squashes with a
custom title, refs whose objects are missing, and merge shas that never landed (issues 9 and 11)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import pyarrow.parquet as pq
import pygit2
import pytest

from datakit.pulls.records import fill_from_mirror, new_pull_record
from datakit.sources.git_pulls import History, discover
from tests.gitrepo import RepoBuilder

BODY = "".join(f"line {i}\n" for i in range(30))


def _merge(b: RepoBuilder, into: str, head, message: str, author: str = "Maintainer") -> pygit2.Oid:
    """A merge commit of `head` into branch `into` (first parent = the branch), like `git merge --no-ff`."""
    repo = b.repo
    ours = repo.branches[into].target
    index = repo.merge_commits(ours, head)
    assert not index.conflicts
    sig = b._sig(author)
    return repo.create_commit(f"refs/heads/{into}", sig, sig, message, index.write_tree(repo), [ours, head])


def _paths(found) -> set[str]:
    return {f["path"] for f in found.record["files"]}


@pytest.fixture
def history(tmp_path):
    b = RepoBuilder(tmp_path / "up.git")
    b.commit({"src/a.py": BODY, "src/b.py": BODY, "src/c.py": BODY, "docs/x.md": "x\n"}, "init", parent=None)

    # PR 1: the contributor merged main into their branch (head = that merge), a maintainer merged the branch
    # with "Merge branch 'feature'": no subject names PR 1, only its pull ref does.
    b.branch("feature")
    b.commit({"src/a.py": BODY.replace("line 3\n", "line three\n")}, "Fix line three in a\n\nIt was wrong.",
             parent="feature", ref="refs/heads/feature")
    b.commit({"src/b.py": BODY.replace("line 9\n", "line nine\n")}, "Someone else's change to b")  # on main
    head1 = _merge(b, "feature", b.repo.branches["main"].target, "Merge branch 'main' into feature", "Contrib")
    b.repo.references.create("refs/pull/1/head", head1)
    b.commit({"docs/x.md": "x\ny\n"}, "docs on main")
    _merge(b, "main", head1, "Merge branch 'feature'")

    # PR 2: GitHub merge commit whose PR head is a merge of main into the branch
    b.branch("two")
    b.commit({"src/c.py": BODY.replace("line 1\n", "line one\n")}, "Fix c", parent="two", ref="refs/heads/two")
    b.commit({"src/b.py": BODY.replace("line 9\n", "line nine\n").replace("line 20\n", "line twenty\n")},
             "b on main")
    _merge(b, "two", b.repo.branches["main"].target, "Merge branch 'main' into two", "Contrib")
    b.merge_pr(2, "two", "Fix c", "Fixes #20")

    # PR 3 and PR 4: the same branch opened twice; PR 3 closed, PR 4 merged by GitHub → PR 3's ref is reachable
    # but PR 4 names the landing: PR 3 is a duplicate of PR 4's change.
    b.branch("again")
    b.commit({"src/a.py": BODY.replace("line 3\n", "line three\n").replace("line 5\n", "line five\n")},
             "Fix line five", parent="again", ref="refs/heads/again")
    b.repo.references.create("refs/pull/3/head", b.repo.branches["again"].target)
    b.merge_pr(4, "again", "Fix line five (re-opened)")

    # PR 5: a contributor's PR that only merges another branch (its only commit is a merge)
    b.branch("side")
    b.commit({"src/c.py": BODY.replace("line 1\n", "line one\n").replace("line 2\n", "line two\n")},
             "Fix line two", parent="side", ref="refs/heads/side")
    b.branch("only-merge")
    b.commit({"docs/x.md": "x\ny\nz\n"}, "docs z on main")
    _merge(b, "only-merge", b.repo.branches["side"].target, "Merge branch 'side' into only-merge", "Contrib")
    b.repo.references.create("refs/pull/5/head", b.repo.branches["only-merge"].target)
    b.merge_pr(6, "side", "Fix line two")
    _merge(b, "main", b.repo.branches["only-merge"].target, "Merge branch 'only-merge'")

    # PR 7: squash merge with a custom title (no "(#7)"): the ref's tree is the landed commit's tree
    b.commit({"src/b.py": BODY.replace("line 25\n", "line 25!\n")}, "tweak b", parent="main",
             ref="refs/pull/7/head")
    b.commit({"src/b.py": BODY.replace("line 25\n", "line 25!\n")}, "Tweak b: a custom squash title", parent="main")

    # PR 9: unmerged; PR 10: unmerged with its commit object missing (real snapshots have them)
    b.commit({"src/wip.py": "w = 1\n"}, "wip", parent="main", ref="refs/pull/9/head")
    lost = b.commit({"src/lost.py": "l = 1\n"}, "lost", parent="main", ref="refs/pull/10/head")
    obj = b.path / "objects" / str(lost)[:2] / str(lost)[2:]
    obj.unlink()
    return b


def _discover(b: RepoBuilder):
    return {f.record["number"]: f for f in discover(b.repo, "acme/app")}


def test_merge_head_gives_the_prs_own_change_not_the_merged_work(history):
    found = _discover(history)
    pr1 = found[1]
    assert pr1.reason is None and pr1.record["source"]["method"] == "pull_ref"
    assert _paths(pr1) == {"src/a.py"}, "main's change to b merged into the branch is not PR 1's"
    assert pr1.record["title"] == "Fix line three in a" and pr1.record["body"] == "It was wrong."
    assert "+line three" in pr1.record["diff"] and "line nine" not in pr1.record["diff"]
    pr2 = found[2]
    assert pr2.reason is None and pr2.record["source"]["method"] == "merge_commit"
    assert _paths(pr2) == {"src/c.py"} and "twenty" not in pr2.record["diff"]


def test_same_change_under_two_numbers_is_kept_once(history):
    found = _discover(history)
    assert found[4].reason is None and found[4].record["source"]["method"] == "merge_commit"
    assert found[3].reason == "duplicate_change" and "#4" in found[3].detail
    assert found[3].record["patch_id"] == found[4].record["patch_id"]


def test_a_pr_that_only_merges_other_work_is_filtered(history):
    found = _discover(history)
    assert found[5].reason == "merge_only"
    assert found[6].reason is None and _paths(found[6]) == {"src/c.py"}


def test_squash_with_a_custom_title_is_found_by_tree(history):
    pr7 = _discover(history)[7]
    assert pr7.reason is None and pr7.record["source"]["method"] == "tree_match"
    assert pr7.record["title"] == "Tweak b: a custom squash title" and _paths(pr7) == {"src/b.py"}


def test_unmerged_and_missing_objects_are_reported_not_fatal(history):
    found = _discover(history)
    assert found[9].reason == "unmerged" and "commits" not in found[9].record  # no diff computed
    assert found[10].reason == "missing_object" and "refs/pull/10/head" in found[10].detail
    full = {f.record["number"]: f for f in discover(history.repo, "acme/app", full_unmerged=True)}
    assert full[9].reason == "unmerged" and _paths(full[9]) == {"src/wip.py"}


def test_landing_order_and_determinism(history, tmp_path):
    order = [f.record["number"] for f in discover(history.repo, "acme/app")]
    assert order[-2:] == [9, 10]  # unmerged, then missing objects
    merged = order[:-2]
    assert merged.index(1) < merged.index(2) < merged.index(4) < merged.index(7)
    copy = pygit2.Repository(str(shutil.copytree(history.path, tmp_path / "copy.git")))
    again = [(f.record["number"], f.reason, f.record.get("patch_id")) for f in discover(copy, "acme/app")]
    first = [(f.record["number"], f.reason, f.record.get("patch_id")) for f in discover(history.repo, "acme/app")]
    assert again == first


def test_fast_forwarded_merge_head_is_ambiguous(tmp_path):
    b = RepoBuilder(tmp_path / "ff.git")
    b.commit({"a.py": BODY}, "init", parent=None)
    b.branch("f")
    b.commit({"a.py": BODY.replace("line 1\n", "one\n")}, "contrib fix", parent="f", ref="refs/heads/f")
    b.commit({"b.py": "b\n"}, "main moves")
    head = _merge(b, "f", b.repo.branches["main"].target, "Merge branch 'main' into f", "Contrib")
    b.repo.references.create("refs/pull/3/head", head)
    b.repo.references.create("refs/heads/main", head, force=True)  # fast-forward main to the merge
    b.commit({"c.py": "c\n"}, "ff'd non-merge head", parent="main", ref="refs/pull/4/head")
    b.repo.references.create("refs/heads/main", b.repo.references["refs/pull/4/head"].target, force=True)
    found = _discover(b)
    assert found[3].reason == "ambiguous_merge_head"
    assert found[4].reason is None and found[4].record["source"]["method"] == "fast_forward"
    assert _paths(found[4]) == {"c.py"}


def test_duplicate_patch_under_two_numbers(tmp_path):
    """A backport: PR 2 cherry-picks PR 1's change onto a release branch that is merged back later."""
    b = RepoBuilder(tmp_path / "bp.git")
    b.commit({"a.py": BODY, "b.py": BODY}, "init", parent=None)
    b.branch("release")
    change = {"a.py": BODY.replace("line 4\n", "line four\n")}
    b.squash_pr(1, change, "Fix four")
    b.commit({"b.py": BODY.replace("line 20\n", "line 20?\n")}, "main moves")
    b.commit(change, "Fix four (backport)", parent="release", ref="refs/heads/release")
    b.repo.references.create("refs/pull/2/head", b.repo.branches["release"].target)
    _merge(b, "main", b.repo.branches["release"].target, "Merge branch 'release'")
    found = _discover(b)
    assert found[1].reason is None
    assert found[2].reason == "duplicate_change" and "#1" in found[2].detail


def test_history_is_one_walk_and_finds_landed_commits(history):
    h = History(history.repo)
    assert h.chain[-1].id == history.repo.branches["main"].target
    assert all(h.landed[c.id] == i for i, c in enumerate(h.chain))
    assert h.named[4][0] == "merge_commit" and h.named[2][0] == "merge_commit"


def test_unlanded_merge_sha_is_replaced_by_the_landed_commit(history):
    """The API's merge sha is a test merge (refs/pull/N/merge) that never reached main."""
    repo = history.repo
    head = repo.references["refs/pull/1/head"].target
    test_merge = history.commit({}, "Merge abc into def", parent=None, ref=None,
                                parents=[repo.branches["main"].target, head])
    rec = new_pull_record(repo="acme/app", number=1, title="t", body="", author="x", created_at=None,
                          updated_at=None, merged_at="2024-01-01T00:00:00Z", base_sha="", head_sha=str(head),
                          merge_sha=str(test_merge), kind="github", method="graphql")
    fill_from_mirror(rec, repo)
    assert rec["merge_sha"] != str(test_merge) and rec["source"]["landing"] == "pull_ref"
    assert {f["path"] for f in rec["files"]} == {"src/a.py"} and "landing_not_found" not in rec["flags"]

    # a squash whose number the subject does not say, but whose tree is the head's
    pr7 = repo.references["refs/pull/7/head"].target
    rec = new_pull_record(repo="acme/app", number=7, title="t", body="", author="x", created_at=None,
                          updated_at=None, merged_at="x", base_sha="", head_sha=str(pr7),
                          merge_sha="0" * 40, kind="github", method="graphql")
    fill_from_mirror(rec, repo)
    squash = next(c for c in History(repo).chain if c.message.startswith("Tweak b: a custom squash title"))
    assert rec["source"]["landing"] == "tree" and rec["merge_sha"] == str(squash.id)

    # nothing landed it: recorded, not invented
    wip = repo.references["refs/pull/9/head"].target
    rec = new_pull_record(repo="acme/app", number=9, title="t", body="", author="x", created_at=None,
                          updated_at=None, merged_at="x", base_sha=str(repo[wip].parents[0].id), head_sha=str(wip),
                          merge_sha="f" * 40, kind="github", method="graphql")
    fill_from_mirror(rec, repo)
    assert rec["merge_sha"] is None and rec["source"]["landing"] is None and "landing_not_found" in rec["flags"]
    assert {f["path"] for f in rec["files"]} == {"src/wip.py"}


def test_landed_by_patch_id_after_a_rebase(tmp_path):
    """A rebase merge: new shas, main moved on (tree differs), no "(#N)": found by patch-id."""
    b = RepoBuilder(tmp_path / "rb.git")
    b.commit({"a.py": BODY, "b.py": BODY}, "init", parent=None)
    b.commit({"a.py": BODY.replace("line 7\n", "seven\n")}, "contrib", parent="main", ref="refs/pull/3/head")
    b.commit({"b.py": BODY.replace("line 2\n", "two\n")}, "main moves")
    b.commit({"a.py": BODY.replace("line 7\n", "seven\n")}, "contrib (rebased)")
    head = b.repo.references["refs/pull/3/head"].target
    rec = new_pull_record(repo="o/r", number=3, title="t", body="", author="x", created_at=None, updated_at=None,
                          merged_at="x", base_sha="", head_sha=str(head), merge_sha=None, kind="github",
                          method="graphql")
    fill_from_mirror(rec, b.repo)
    assert rec["source"]["landing"] == "patch_id" and rec["merge_sha"] == str(b.repo.branches["main"].target)


def test_stage_counts_and_filtered_output(history, tmp_path):
    """A mirror snapshot on disk whose unmerged ref lost its object (a fetch of it would fail whole)."""
    shutil.copytree(history.path, tmp_path / "mirrors" / "acme__app.git")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "sources", "acme/app", "--no-fetch", "--mirrors",
                           str(tmp_path / "mirrors"), "--output", str(out), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    stats = json.loads((out / "pulls" / "stats.json").read_text())["units"]["pulls"]
    assert stats["quarantined"] == {"missing_object": 1, "unmerged": 1}
    assert stats["filtered"] == {"duplicate_change": 1, "merge_only": 1}
    kept = [r for f in sorted((out / "pulls").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted(r["number"] for r in kept) == [1, 2, 4, 6, 7]
    assert all(r["patch_id"] for r in kept)
    filtered = [r for f in sorted((out / "pulls" / "filtered").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sorted((r["reason"], r["detail"].count("#4")) for r in filtered) == [("duplicate_change", 1), ("merge_only", 0)]


def test_every_repository_failing_exits_non_zero(tmp_path):
    repos = tmp_path / "repos.txt"
    repos.write_text(f"acme/gone {tmp_path / 'nope.git'}\n")
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "sources", "--repos-file", str(repos),
                           "--output", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "every repository failed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_merged_pr_with_a_missing_object_is_quarantined_not_fatal(tmp_path):
    """A snapshot that lost a blob of one merged PR: that PR is `missing_object`, the others are kept."""
    b = RepoBuilder(tmp_path / "s.git")
    b.commit({"a.py": BODY}, "init", parent=None)
    b.squash_pr(1, {"a.py": BODY.replace("line 1\n", "one\n")}, "Fix one")
    b.squash_pr(2, {"b.py": "lost = True\n"}, "Add b")
    blob = b.repo.create_blob(b"lost = True\n")
    (b.path / "objects" / str(blob)[:2] / str(blob)[2:]).unlink()
    found = _discover(b)
    assert found[1].reason is None
    assert found[2].reason == "missing_object" and "PR #2" in found[2].detail


def test_a_cut_history_quarantines_the_repository(tmp_path):
    b = RepoBuilder(tmp_path / "cut.git")
    first = b.commit({"a.py": BODY}, "init", parent=None)
    b.squash_pr(1, {"a.py": BODY.replace("line 1\n", "one\n")}, "Fix one")
    (b.path / "objects" / str(first)[:2] / str(first)[2:]).unlink()  # the root commit is gone
    shutil.copytree(b.path, tmp_path / "mirrors" / "acme__cut.git")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "datakit.cli", "sources", "acme/cut", "--no-fetch", "--mirrors",
                           str(tmp_path / "mirrors"), "--output", str(out), "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "every repository failed" in proc.stderr
    q = [r for f in sorted((out / "pulls" / "quarantine").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [r["reason"] for r in q] == ["history_unreadable"]
