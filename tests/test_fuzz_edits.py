"""Fuzzing the SEARCH/REPLACE builder, renderer, parser and applier (datakit.samples.edits) with hostile text.

Every failure must be an EditError whose reason is one the module documents (what the samples stage
quarantines); every success must re-apply byte for byte. Paths that leave the repository are refused everywhere
a path is read. Deterministic (derandomize) so CI sees the same cases every run.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datakit.samples import edits as E
from datakit.samples.edits import (Block, EditError, FileEdit, apply_blocks, apply_edits, check_repo_path,
                                   check_roundtrip, compute_blocks, edits_for_files, parse_edits, render_edits)
from tests.fuzzing import FUZZ


# the reason table of the module docstring: the only reasons a caller may see
DOCUMENTED = set(re.findall(r"^    ([a-z_]+) +\S", E.__doc__, re.M))


def test_reason_table_is_read():
    assert {"search_not_found", "malformed_edit", "unsafe_path", "empty_replace", "edit_roundtrip_mismatch"} <= DOCUMENTED


def assert_documented(err: EditError) -> None:
    assert isinstance(err, EditError) and err.reason in DOCUMENTED, f"undocumented reason {err.reason!r}: {err}"
    assert str(err)


# characters each parser treats specially: line ends, markers, fences, Agentless's strip(), splitlines' breaks
HOSTILE = st.sampled_from(list("ab =<>`#\t\n\r\x0c\x0b\u2028\u0085é") + ["\r\n", "=======", "```", "\n\n"])
MARKER_LINES = ["<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE", "```python", "```", "```py", "### a.py",
                "### ../x.py", "### /etc/passwd", "### .git/config", "### a\\b.py", "###", "### ", ""]


def hostile_text(max_size: int = 40):
    pieces = st.lists(st.one_of(HOSTILE, st.sampled_from(MARKER_LINES).map(lambda m: m + "\n"),
                                st.text(max_size=4)), max_size=max_size)
    return pieces.map("".join)


@st.composite
def text_pairs(draw):
    """An old text and a new one: unrelated, or the old one with a few hostile splices."""
    old = draw(hostile_text())
    if draw(st.booleans()):
        return old, draw(hostile_text())
    new = old
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(new)))
        j = draw(st.integers(i, min(len(new), i + 8)))
        new = new[:i] + draw(hostile_text(6)) + new[j:]
    return old, new


@FUZZ
@given(text_pairs(), st.integers(0, 2))
def test_fuzz_compute_blocks_reapply(pair, context):
    old, new = pair
    try:
        blocks = compute_blocks(old, new, context)
    except EditError as err:
        assert_documented(err)
        assert err.reason == "search_ambiguous"
        return
    assert apply_blocks(old, blocks) == new  # byte for byte, CR, form feeds and missing final newline included


@FUZZ
@given(text_pairs(), st.sampled_from(["a.py", "src/x y.py", "ü/文件.py", "#.py"]))
def test_fuzz_builder_quarantines_or_roundtrips(pair, path):
    """What the samples stage runs: edits_for_files + check_roundtrip. Either a documented reason (quarantine) or
    render → parse → apply gives the new file exactly."""
    old, new = pair
    old_files, new_files = ({path: old} if old else {}), {path: new}
    try:
        edits = edits_for_files(old_files, new_files)
        check_roundtrip(old_files, new_files, edits)
    except EditError as err:
        assert_documented(err)
        return
    text = render_edits(edits)
    parsed = parse_edits(text)
    assert parsed == edits
    assert apply_edits(old_files, parsed)[path] == new if old != new else parsed == []


SAFE_PATHS = st.sampled_from(["a.py", "b/c.py", "d e.py", "ü/文件.py", ".github/ci.yml", "#x.py"])
UNSAFE_PATHS = st.one_of(
    st.sampled_from([" lead.py", "x<<<<<<< SEARCH", "../up.py", "/abs.py", ".git/config", "a\\b", "a//b",
                     "A/.GIT/hooks/x", "a/./b", "C:x", "a/"]),
    st.text(alphabet=st.sampled_from(list("ab/.\\ #\n\0:")), min_size=0, max_size=6))
PATHS = st.one_of(SAFE_PATHS, SAFE_PATHS, SAFE_PATHS, UNSAFE_PATHS)
# block text: mostly ordinary lines (so most edits render), sometimes hostile
BLOCK_TEXT = st.one_of(st.text(alphabet=st.sampled_from(list("ab(): \t\n\ré")), max_size=20), hostile_text(8))


@st.composite
def file_edits(draw):
    """Mostly edits render_edits accepts (distinct safe paths, modified or added); else anything."""
    out = []
    wellformed = draw(st.integers(0, 2)) > 0
    paths = (st.lists(SAFE_PATHS, unique=True, max_size=3) if wellformed
             else st.lists(PATHS, max_size=3))
    for path in draw(paths):
        status = draw(st.sampled_from(["modified", "added"] if wellformed else
                                      ["modified"] * 4 + ["added"] * 2 + ["deleted", "renamed", "bogus"]))
        if status == "added":
            blocks = (Block("", draw(BLOCK_TEXT)),)
        else:
            blocks = tuple(Block(draw(BLOCK_TEXT.filter(bool)) if draw(st.integers(0, 9)) else "", draw(BLOCK_TEXT))
                           for _ in range(draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, 3))))
        out.append(FileEdit(path, status, draw(st.one_of(st.none(), PATHS)) if status == "renamed" else None, blocks))
    return out


@FUZZ
@given(file_edits())
def test_fuzz_render_parse_inverse(edits):
    """parse_edits(render_edits(x)) == x for everything render accepts; render refuses the rest with a reason."""
    try:
        text = render_edits(edits)
    except EditError as err:
        assert_documented(err)
        return
    assert parse_edits(text) == edits
    for e in edits:
        assert check_repo_path(e.path) == e.path


@st.composite
def completions(draw):
    """Completion-like text: marker, fence and header lines in any order with hostile lines between; or a real
    rendered completion, whole or with lines dropped, duplicated or replaced (what a model gets wrong)."""
    garbage = draw(st.lists(st.one_of(st.sampled_from(MARKER_LINES), hostile_text(3)), max_size=30))
    kind = draw(st.sampled_from(["garbage", "rendered", "mutated", "mutated"]))
    if kind == "garbage":
        return "\n".join(garbage)
    try:
        lines = render_edits(draw(file_edits())).split("\n")
    except EditError:
        lines = render_edits([FileEdit("a.py", "modified", None, (Block("x", "y"), Block("z", "w")))]).split("\n")
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(lines)))
            op = draw(st.sampled_from(["drop", "dup", "replace", "insert", "cut"]))
            if op == "cut":
                lines = lines[:i]
            elif op == "insert" or i == len(lines):
                lines[i:i] = garbage[:2]
            elif op == "drop":
                del lines[i]
            elif op == "dup":
                lines.insert(i, lines[i])
            else:
                lines[i] = draw(st.sampled_from(MARKER_LINES))
    return "\n".join(lines)


@FUZZ
@given(completions(), st.dictionaries(st.sampled_from(["a.py", "b.py"]), hostile_text(10), max_size=2))
def test_fuzz_parse_apply_garbage(text, files):
    """Random text into parse_edits (what a model's answer is): only EditError, and what parses is safe, renders
    back to itself and applies or fails with a reason."""
    try:
        parsed = parse_edits(text)
    except EditError as err:
        assert_documented(err)
        assert err.reason in {"malformed_edit", "ambiguous_markers", "unsafe_path"}
        return
    for e in parsed:
        assert check_repo_path(e.path) == e.path
    try:
        assert parse_edits(render_edits(parsed)) == parsed
    except EditError as err:  # parse accepts what Agentless would misread (a padded path, a duplicated block)
        assert err.reason == "ambiguous_markers"
    try:
        result = apply_edits(files, parsed)
    except EditError as err:
        assert_documented(err)
        return
    assert set(files) <= set(result) and all(isinstance(v, str) for v in result.values())


UNSAFE = ["../x.py", "a/../../b.py", "a/..", "..", ".", "/etc/passwd", "//server/share", ".git/config",
          "sub/.git/hooks/pre-commit", ".GIT/config", "a\\..\\b.py", "..\\x", "a\0b.py", "a\nb", "a\rb", "",
          "a//b.py", "./a.py", "a/./b.py", "dir/", "C:/x.py", "c:x.py"]
SAFE = ["a.py", "src/pkg/__init__.py", ".github/workflows/ci.yml", ".gitignore", "a..b.py", "...", "x/.gitkeep",
        "ü/文件.py", "a b/c d.py", "#x.py"]


@pytest.mark.parametrize("path", UNSAFE)
def test_unsafe_paths_refused_everywhere(path):
    for call in (lambda: check_repo_path(path),
                 lambda: parse_edits(f"```python\n### {path}\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```"),
                 lambda: render_edits([FileEdit(path, "modified", None, (Block("a", "b"),))]),
                 lambda: apply_edits({path: "a"}, [FileEdit(path, "modified", None, (Block("a", "b"),))]),
                 lambda: apply_edits({path: "a"}, [FileEdit("ok.py", "renamed", path, ())])):
        with pytest.raises(EditError) as err:
            call()
        # a line break in a path is refused by the parser's line structure or the renderer's check first
        assert err.value.reason in ({"unsafe_path"} if "\n" not in path and "\r" not in path and path
                                    else {"unsafe_path", "malformed_edit", "invalid_edit"}), (path, err.value)


@pytest.mark.parametrize("path", SAFE)
def test_safe_paths_pass(path):
    assert check_repo_path(path) == path
    edits = [FileEdit(path, "modified", None, (Block("a", "b"),))]
    assert parse_edits(render_edits(edits)) == edits
    assert apply_edits({path: "a"}, edits) == {path: "b"}


def test_non_string_path_is_refused():
    for bad in (None, 3, b"a.py", ["a.py"]):
        with pytest.raises(EditError) as err:
            check_repo_path(bad)
        assert err.value.reason == "unsafe_path"
