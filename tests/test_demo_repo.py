"""Tests for the embedded demo repository (datakit.demo.build_repo)."""

from __future__ import annotations

import re
from pathlib import Path

import pygit2
import pytest

from datakit.demo.build_repo import (
    DEMO_REPO_DIRNAME,
    DEMO_REPO_NAME,
    FIXTURES_DIR,
    build_demo_repo,
    demo_pr_specs,
)

MERGED_PRS = {3: "merge", 4: "squash", 7: "merge", 8: "squash", 10: "merge", 11: "squash", 12: "squash",
              14: "merge", 15: "merge", 18: "squash", 19: "merge", 21: "squash", 22: "merge", 23: "squash"}
UNMERGED_PRS = {20}
MERGE_RE = re.compile(r"^Merge pull request #(\d+) from [\w.-]+/[\w./-]+\n\n")
SQUASH_RE = re.compile(r"^.+ \(#(\d+)\)$")


def _refs(repo: pygit2.Repository) -> dict[str, str]:
    return {name: str(repo.references[name].target) for name in repo.references
            if repo.references[name].type == pygit2.enums.ReferenceType.DIRECT}


def _first_parent_chain(repo: pygit2.Repository) -> list[pygit2.Commit]:
    commit = repo.revparse_single("refs/heads/main")
    chain = [commit]
    while commit.parents:
        commit = commit.parents[0]
        chain.append(commit)
    return chain  # newest first, root last


def _pr_commit(repo: pygit2.Repository, number: int) -> pygit2.Commit:
    for c in _first_parent_chain(repo)[:-1]:
        first = c.message.splitlines()[0]
        if first.startswith(f"Merge pull request #{number} ") or first.endswith(f"(#{number})"):
            return c
    raise AssertionError(f"PR #{number} not found on main")


def _blob(repo: pygit2.Repository, commit: pygit2.Commit, path: str) -> pygit2.Blob:
    return repo[commit.tree[path].id]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> pygit2.Repository:
    path = build_demo_repo(tmp_path_factory.mktemp("demo"))
    return pygit2.Repository(str(path))


def test_constants_and_layout(demo, tmp_path):
    assert DEMO_REPO_NAME == "acme/widgets"
    assert demo.is_bare
    assert Path(demo.path).resolve().name == DEMO_REPO_DIRNAME
    assert demo.head.name == "refs/heads/main"
    assert not demo.is_empty
    tree = demo.revparse_single("main").tree
    for path in ("README.md", "pyproject.toml", "src/widgets/__init__.py", "tests/test_color.py",
                 "docs/usage.md", "vendor/tinycolor/tinycolor.py"):
        assert path in tree, path


def test_build_is_deterministic(tmp_path):
    a = pygit2.Repository(str(build_demo_repo(tmp_path / "a")))
    b = pygit2.Repository(str(build_demo_repo(str(tmp_path / "b"))))
    assert a.revparse_single("refs/heads/main").id == b.revparse_single("refs/heads/main").id
    assert _refs(a) == _refs(b)


def test_refs(demo):
    refs = _refs(demo)
    expected = {"refs/heads/main"} | {f"refs/pull/{n}/head" for n in set(MERGED_PRS) | UNMERGED_PRS}
    assert set(refs) == expected
    # fixtures and the expectations here agree
    specs = {s["number"]: s["merge_style"] for s in demo_pr_specs()}
    assert specs == {**MERGED_PRS, **{n: "unmerged" for n in UNMERGED_PRS}}


def test_merge_and_squash_counts_and_messages(demo):
    chain = _first_parent_chain(demo)
    root = chain[-1]
    assert not root.parents and root.message.startswith("Initial commit")
    merges = [c for c in chain if len(c.parents) == 2]
    squashes = [c for c in chain[:-1] if len(c.parents) == 1]
    assert len(merges) == 7
    assert len(squashes) == 7
    assert len(chain) == 1 + len(MERGED_PRS)
    for c in merges:
        m = MERGE_RE.match(c.message)
        assert m, c.message
        n = int(m.group(1))
        assert MERGED_PRS[n] == "merge"
        parts = c.message.split("\n\n", 2)
        assert len(parts) == 3 and parts[1] and parts[2].strip()  # title and body
        assert c.committer.name == "GitHub"
        assert c.parents[1].id == demo.references[f"refs/pull/{n}/head"].target
    for c in squashes:
        title, _, body = c.message.partition("\n\n")
        m = SQUASH_RE.match(title)
        assert m, c.message
        assert MERGED_PRS[int(m.group(1))] == "squash"
        assert body.strip()


def test_timestamps_and_signatures_are_fixed(demo):
    root = _first_parent_chain(demo)[-1]
    assert root.commit_time == 1704067200  # 2024-01-01T00:00:00Z
    assert root.commit_time_offset == 0
    times = sorted(c.commit_time for c in demo.walk(demo.revparse_single("main").id))
    assert all((t - times[0]) % 3600 == 0 for t in times)
    assert len(set(times)) == len(times)


def test_pull_heads(demo):
    main = demo.revparse_single("main").id
    for n, style in MERGED_PRS.items():
        head = demo.references[f"refs/pull/{n}/head"].target
        landed = _pr_commit(demo, n)
        if style == "merge":
            assert landed.parents[1].id == head
            assert demo.descendant_of(main, head)
        else:
            head_commit = demo[head]
            # squashed branch tip lives on a side branch based on a main commit
            assert not demo.descendant_of(main, head) and head != main
            assert len(head_commit.parents) == 1
            base = head_commit.parents[0].id
            assert base == main or demo.descendant_of(main, base)
    for n in UNMERGED_PRS:
        head = demo.references[f"refs/pull/{n}/head"].target
        assert not demo.descendant_of(main, head)


def test_pr3_has_two_commits_and_moved_base(demo):
    merge = _pr_commit(demo, 3)
    head = merge.parents[1]
    assert len(head.parents) == 1 and len(head.parents[0].parents) == 1
    base = demo.merge_base(merge.parents[0].id, head.id)
    assert base != merge.parents[0].id  # main advanced between branch point and merge
    diff = demo.diff(demo[base], merge.parents[1])
    assert {p.delta.new_file.path for p in diff} == {"src/widgets/color.py", "tests/test_color.py"}


def test_squash_tree_equals_branch_tree_when_based_on_main(demo):
    c = _pr_commit(demo, 21)
    head = demo[demo.references["refs/pull/21/head"].target]
    assert head.parents[0].id == c.parents[0].id
    assert head.tree.id == c.tree.id


def test_rename_is_detected(demo):
    c = _pr_commit(demo, 8)
    diff = c.parents[0].tree.diff_to_tree(c.tree)
    diff.find_similar()
    renames = [(p.delta.old_file.path, p.delta.new_file.path) for p in diff
               if p.delta.status == pygit2.enums.DeltaStatus.RENAMED]
    assert renames == [("src/widgets/util.py", "src/widgets/helpers.py")]
    assert "from .helpers import is_blank" in _blob(demo, c, "src/widgets/text.py").data.decode()


def test_add_and_delete(demo):
    added = _pr_commit(demo, 10)
    assert "src/widgets/progress.py" not in added.parents[0].tree
    assert "src/widgets/progress.py" in added.tree and "tests/test_progress.py" in added.tree
    deleted = _pr_commit(demo, 11)
    assert "src/widgets/compat.py" in deleted.parents[0].tree
    assert "src/widgets/compat.py" not in deleted.tree
    diff = deleted.parents[0].tree.diff_to_tree(deleted.tree)
    assert [p.delta.old_file.path for p in diff] == ["src/widgets/compat.py"]


def test_docs_tests_and_vendor_only_prs(demo):
    def changed(n):
        c = _pr_commit(demo, n)
        return {p.delta.new_file.path for p in c.parents[0].tree.diff_to_tree(c.tree)}

    assert changed(12) == {"README.md", "docs/usage.md"}
    assert changed(15) == {"tests/test_text.py"}
    assert changed(22) == {"vendor/tinycolor/tinycolor.py"}
    assert changed(23) == {"docs/credits.txt"}


def test_binary_file(demo):
    c = _pr_commit(demo, 14)
    blob = _blob(demo, c, "src/widgets/data/default_icon.png")
    assert blob.is_binary
    assert blob.data.startswith(b"\x89PNG\r\n\x1a\n")
    diff = c.parents[0].tree.diff_to_tree(c.tree)
    assert {p.delta.new_file.path for p in diff} >= {"src/widgets/data/default_icon.png", "src/widgets/assets.py"}


def test_crlf_file(demo):
    c = _pr_commit(demo, 18)
    for commit in (c.parents[0], c):
        data = _blob(demo, commit, "src/widgets/legacy_io.py").data
        assert b"\r\n" in data
        assert data.count(b"\n") == data.count(b"\r\n")


def test_no_eol_unicode_file(demo):
    c = _pr_commit(demo, 19)
    for commit in (c.parents[0], c):
        data = _blob(demo, commit, "src/widgets/i18n.py").data
        assert not data.endswith(b"\n")
        text = data.decode("utf-8")
        assert "キャンセル" in text
    assert "Größe" in _blob(demo, c, "src/widgets/i18n.py").data.decode("utf-8")


def test_ambiguous_line_fix(demo):
    c = _pr_commit(demo, 21)
    before = _blob(demo, c.parents[0], "src/widgets/theme.py").data.decode()
    after = _blob(demo, c, "src/widgets/theme.py").data.decode()
    assert before.count("    factor = 1 + amount\n") == 3
    assert after.count("    factor = 1 + amount\n") == 2
    assert after.count("    factor = 1 - amount\n") == 1


def test_latin1_file(demo):
    c = _pr_commit(demo, 23)
    data = _blob(demo, c, "docs/credits.txt").data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "François Lefèvre" in data.decode("latin-1")


def test_rebuild_is_noop(tmp_path):
    path = build_demo_repo(tmp_path)
    main = pygit2.Repository(str(path)).revparse_single("main").id
    marker = path / "datakit-marker"
    marker.write_text("keep me")
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    again = build_demo_repo(tmp_path)
    assert again == path
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before
    assert marker.exists()
    assert pygit2.Repository(str(again)).revparse_single("main").id == main
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEMO_REPO_DIRNAME]  # no temp dirs left


def test_rebuild_replaces_different_repo(tmp_path):
    path = build_demo_repo(tmp_path)
    repo = pygit2.Repository(str(path))
    expected = _refs(repo)
    root = _first_parent_chain(repo)[-1]
    repo.references.create("refs/heads/main", root.id, force=True)
    assert _refs(repo) != expected
    rebuilt = build_demo_repo(tmp_path)
    assert _refs(pygit2.Repository(str(rebuilt))) == expected


def test_rebuild_replaces_non_repo(tmp_path):
    (tmp_path / DEMO_REPO_DIRNAME).mkdir()
    (tmp_path / DEMO_REPO_DIRNAME / "junk").write_text("x")
    path = build_demo_repo(tmp_path)
    assert pygit2.Repository(str(path)).revparse_single("main")
    assert not (path / "junk").exists()


def test_fixture_set_is_small():
    total = sum(p.stat().st_size for p in FIXTURES_DIR.rglob("*") if p.is_file())
    assert total < 200 * 1024
