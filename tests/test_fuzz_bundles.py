"""Fuzzing the bundle diff round trip (datakit.bundles.diffs.verify_patch / apply_hunks) with hostile input.

git's own diff of any two texts (pygit2.Patch.create_from: git's diff code, no repository needed) must re-apply
byte for byte; a mutated or garbage diff must fail as PatchMismatch (what the bundles stage quarantines), never
crash; a header naming a path outside the repository fails with reason unsafe_path. Deterministic (derandomize).
"""

from __future__ import annotations

import pygit2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datakit.bundles.build import BundleCommit, BundleOut, build_bundle
from datakit.bundles.diffs import FileChange, PatchMismatch, header_path, verify_patch
from tests.fuzzing import FUZZ


LINE = st.sampled_from(["a", "b", "c", "", " x", "\t", "\r", "a\r", "\x0c", "é", "\u2028", "\\ No newline", "+",
                        "-", " ", "@@ -1 +1 @@", "--- a/x", "+++ b/x", "diff --git a/x b/x", "```"])


@st.composite
def texts(draw):
    lines = draw(st.lists(LINE, max_size=10))
    body = "\n".join(lines)
    return body + "\n" if lines and draw(st.booleans()) else body


def change_of(old: str | None, new: str | None, path: str = "f.txt") -> FileChange:
    patch = pygit2.Patch.create_from(None if old is None else old.encode(), None if new is None else new.encode(),
                                     old_as_path=path, new_as_path=path, context_lines=3)
    status = "added" if old is None else "deleted" if new is None else "modified"
    return FileChange(path, None if old is None else path, status, patch.text, old, new, 0, 0, None)


@FUZZ
@given(st.one_of(st.none(), texts()), st.one_of(st.none(), texts()))
def test_fuzz_git_diff_reapplies(old, new):
    if old is None and new is None or old == new:
        return
    change = change_of(old, new)
    verify_patch(change.patch, [change])  # raises PatchMismatch on any byte of difference


def mutate(draw, text: str) -> str:
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(["drop", "dup", "replace", "flip", "cut", "renumber"]))
        if not lines:
            break
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = draw(LINE)
        elif op == "flip" and lines[i][:1] in "+- ":
            lines[i] = {"+": "-", "-": " ", " ": "+"}[lines[i][:1]] + lines[i][1:]
        elif op == "cut":
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif op == "renumber":
            lines[i] = f"@@ -{draw(st.integers(0, 30))},{draw(st.integers(0, 30))} " \
                       f"+{draw(st.integers(0, 30))},{draw(st.integers(0, 30))} @@"
    return "\n".join(lines)


@FUZZ
@given(texts(), texts(), st.data())
def test_fuzz_mutated_diff_is_refused_or_exact(old, new, data):
    """A diff with lines dropped, doubled, replaced or renumbered: PatchMismatch, or (when the mutation kept its
    meaning) exactly the new text. verify_patch never passes a diff that gives other bytes."""
    if old == new:
        return
    change = change_of(old, new)
    patch = mutate(data.draw, change.patch)
    try:
        verify_patch(patch, [change])
    except PatchMismatch as exc:
        assert exc.reason in ("diff_roundtrip_failed", "unsafe_path") and str(exc)


@FUZZ
@given(st.lists(st.one_of(LINE, st.text(max_size=8)), max_size=20), texts())
def test_fuzz_garbage_diff(lines, old):
    change = FileChange("f.txt", "f.txt", "modified", "", old, old + "x", 0, 0, None)
    try:
        verify_patch("\n".join(lines), [change])
    except PatchMismatch as exc:
        assert str(exc)
    else:
        raise AssertionError("a garbage diff reproduced the commit's file")


UNSAFE = ["../x.py", "a/../../b.py", ".git/config", "sub/.git/hooks/x", "a\\b.py", "/etc/passwd"]


@pytest.mark.parametrize("path", UNSAFE)
def test_diff_header_outside_the_repository_is_unsafe(path):
    change = change_of("a\n", "b\n", path)
    if path.startswith("/"):  # libgit2 drops the leading "/": write the headers as a hand-made diff would
        change.patch = change.patch.replace(" a/etc/", " /etc/").replace(" b/etc/", " /etc/")
        assert "--- /etc/passwd" in change.patch
    with pytest.raises(PatchMismatch) as exc:
        verify_patch(change.patch, [change])
    assert exc.value.reason == "unsafe_path", exc.value
    pr = {"repo": "o/r", "number": 1, "title": "t", "source": {"kind": "git"}}
    with pytest.raises(BundleOut) as out:
        build_bundle(pr, [BundleCommit("a" * 40, "Fix it", "alice", False, [change])])
    assert out.value.reason == "unsafe_path" and not out.value.filtered


@pytest.mark.parametrize("path", ["ü/文件.py", "a b\t\"q\".py", ".github/ci.yml", "x.git/y", "a..b"])
def test_quoted_header_paths_are_read_as_git_writes_them(path):
    change = change_of("a\n", "b\n", path)
    verify_patch(change.patch, [change])
    assert header_path(change.patch.split("\n")[2][4:]) == path  # the `--- a/...` line, unquoted
