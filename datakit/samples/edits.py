r"""SEARCH/REPLACE edit blocks in the exact format Agentless and SWE-RL read (and Kimi-Dev trains on).

Pure functions on ``str``; no I/O; standard library only.

A completion is one fenced block per edit, each with its own path line, separated by one blank line::

    ```python
    ### path/to/file.py
    <<<<<<< SEARCH
    s
    =======
    r
    >>>>>>> REPLACE
    ```

i.e. ``"```python\n### " + path + "\n<<<<<<< SEARCH\n" + s + "\n=======\n" + r + "\n>>>>>>> REPLACE\n```"``.
A :class:`Block` holds ``s`` and ``r`` as written, and means what SWE-RL's reward (``apply_code_change``) and
Agentless's applier make of it: *line-anchored* replacement. Applying it to a text ``t`` replaces the one
occurrence of ``"\n" + s`` in ``"\n" + t`` by ``"\n" + r``. So a block covering whole lines that end with a
newline leaves that last newline out of both ``s`` and ``r`` (the text after the match keeps it); a block that
ends at the end of a file without a final newline is written as is. An empty ``s`` (written as an empty line
between the markers, which both parsers need) is only valid on an empty text: it creates a new file, and
``r`` is then the whole file.

Blocks of one file are applied in order: block k must occur exactly once (overlapping occurrences and matches
that are a prefix of a longer line count, as SWE-RL replaces every one) in the text left by blocks 0..k-1.

What neither reference parser can carry raises :class:`EditError` (see :func:`check_portable`): a deleted or
renamed file, content that would read as a marker or a fence, a REPLACE that Agentless's ``strip()`` would cut
(CRLF, trailing whitespace or blank lines at the end of a file, an emptied file), or a change of the final newline.

Every failure raises :class:`EditError`, a ``ValueError`` with a machine-usable ``reason``:

    search_not_found        a SEARCH text does not occur in the current text
    search_ambiguous        a SEARCH text occurs more than once (or cannot be made unique)
    empty_search            an empty SEARCH applied to a non-empty text
    ambiguous_markers       content has a marker line, a line starting with ``` or a path the parsers misread
    unsafe_path             a path that leaves the repository or names git's own files (:func:`check_repo_path`)
    malformed_edit          the completion text cannot be parsed (message names the line number)
    invalid_edit            a FileEdit that cannot be rendered/applied (bad status, path or blocks)
    deleted_file            a deleted file: SEARCH/REPLACE cannot remove a file
    renamed_file            a renamed file: SEARCH/REPLACE cannot move a file
    crlf_line_endings       a REPLACE ends in "\r": Agentless strips it off
    trailing_whitespace     a REPLACE ends in whitespace or is empty at the end of a file: Agentless strips it
    empty_replace           a REPLACE that is empty (Agentless drops the block)
    final_newline_change    the change adds or removes a file's final newline (Agentless's reading keeps it)
    file_not_found          apply_edits: a modified/deleted/renamed-from path is missing
    file_exists             apply_edits: an added/renamed-to path already exists with content
    invalid_rename          edits_for_files: a rename that does not match old_files/new_files
    edit_roundtrip_mismatch check_roundtrip: render -> parse -> apply did not reproduce new_files
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "EditError",
    "Block",
    "FileEdit",
    "compute_blocks",
    "apply_blocks",
    "render_edits",
    "parse_edits",
    "apply_edits",
    "edits_for_files",
    "check_roundtrip",
    "check_portable",
    "check_repo_path",
    "STATUSES",
]

SEARCH_MARKER = "<<<<<<< SEARCH"
DIVIDER_MARKER = "======="
REPLACE_MARKER = ">>>>>>> REPLACE"
FENCE_OPEN = "```python"
FENCE_CLOSE = "```"
HEADER = "### "

STATUSES = ("modified", "added", "deleted", "renamed")


class EditError(ValueError):
    """An edit could not be computed, rendered, parsed or applied.

    ``reason`` is a short machine-usable code (see the module docstring); ``str(err)`` is a human message.
    """

    reason: str

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        self.message = message or reason
        super().__init__(f"{reason}: {self.message}" if message else reason)


@dataclass(frozen=True)
class Block:
    search: str  # as written, line-anchored (module docstring); "" only for a new file
    replace: str


@dataclass(frozen=True)
class FileEdit:
    path: str  # path after the change
    status: str  # "modified" | "added" | "deleted" | "renamed"
    old_path: str | None = None  # set for "renamed"
    blocks: tuple[Block, ...] = ()


# ----------------------------------------------------------------------------------------------
# computing blocks
# ----------------------------------------------------------------------------------------------


def _occurs_once_at(text: str, needle: str, pos: int) -> bool:
    """True iff ``needle`` (non-empty) occurs in ``text`` exactly once, overlapping occurrences
    included, and that occurrence starts at ``pos``."""
    if not needle:
        return False
    first = text.find(needle)
    if first != pos:
        return False
    return text.find(needle, pos + 1) == -1


def _split_lines(text: str) -> list[str]:
    """Lines ending in "\n" (kept), the last one possibly without. Only "\n" ends a line: both parsers anchor a
    block on "\n", so a block may not start after a lone "\r", "\x0c" or "\u2028" (str.splitlines would)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _written(search: str, replace: str) -> tuple[str, str]:
    """The exact texts S -> R of a line range as a block writes them: a newline that ends both is left to the text
    after the match (line-anchored reading, module docstring)."""
    if search.endswith("\n") and replace.endswith("\n"):
        return search[:-1], replace[:-1]
    return search, replace


def _cut_by_strip(replace: str) -> bool:
    """True when Agentless's `subcommand.strip()` would cut the end of this written REPLACE (or lose the block)."""
    return replace == "" or replace[-1].isspace()


def _offsets(lines: list[str]) -> list[int]:
    out = [0] * (len(lines) + 1)
    acc = 0
    for i, line in enumerate(lines):
        acc += len(line)
        out[i + 1] = acc
    return out


def _lis_anchors(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Longest chain of (i, j) pairs (sorted by i) with increasing j (patience sorting)."""
    tails: list[int] = []  # j of the chain tail for each length
    tail_idx: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for n, (_, j) in enumerate(pairs):
        k = bisect.bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            tail_idx.append(n)
        else:
            tails[k] = j
            tail_idx[k] = n
        back[n] = tail_idx[k - 1] if k else -1
    chain = []
    n = tail_idx[-1] if tail_idx else -1
    while n >= 0:
        chain.append(pairs[n])
        n = back[n]
    chain.reverse()
    return chain


# Above this many (old lines x new lines) with no anchor lines, SequenceMatcher (quadratic on repeated
# lines) is replaced by a Myers O((N+M)D) diff, capped at _MYERS_MAX_D edits.
_SEQUENCEMATCHER_MAX_CELLS = 250_000
_MYERS_MAX_D = 1000


def _myers_regions(
    a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int
) -> list[tuple[int, int, int, int]]:
    """Changed regions of a[alo:ahi] vs b[blo:bhi] by Myers' greedy diff; one region covering the
    whole range if more than _MYERS_MAX_D single-line edits are needed."""
    n, m = ahi - alo, bhi - blo
    v: dict[int, int] = {1: 0}
    trace: list[dict[int, int]] = []
    found = -1
    for d in range(min(n + m, _MYERS_MAX_D) + 1):
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[k - 1] < v[k + 1]):
                x = v[k + 1]
            else:
                x = v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[alo + x] == b[blo + y]:
                x += 1
                y += 1
            v[k] = x
            if x >= n and y >= m:
                found = d
                break
        if found >= 0:
            break
    if found < 0:
        return [(alo, ahi, blo, bhi)]
    matches: list[tuple[int, int]] = []  # equal line pairs, collected backwards
    x, y = n, m
    for d in range(found, 0, -1):
        vd = trace[d]
        k = x - y
        prev_k = k + 1 if (k == -d or (k != d and vd[k - 1] < vd[k + 1])) else k - 1
        prev_x = vd[prev_k]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            matches.append((x, y))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x -= 1
        y -= 1
        matches.append((x, y))
    matches.reverse()
    regions = []
    pi, pj = 0, 0
    for i, j in [*matches, (n, m)]:
        if i > pi or j > pj:
            regions.append((alo + pi, alo + i, blo + pj, blo + j))
        pi, pj = i + 1, j + 1
    return regions


def _changed_regions(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """Non-equal regions (i1, i2, j1, j2), in order, of a line diff of ``a`` against ``b``.

    difflib.SequenceMatcher(autojunk=False) is quadratic on long inputs with many repeated lines, so
    the ranges are first narrowed the way patience diff does: common leading/trailing lines are
    trimmed and lines occurring exactly once on each side are used as anchors (longest increasing
    chain); SequenceMatcher then diffs what is left between anchors.
    """
    regions: list[tuple[int, int, int, int]] = []
    stack = [(0, len(a), 0, len(b))]
    while stack:
        alo, ahi, blo, bhi = stack.pop()
        while alo < ahi and blo < bhi and a[alo] == b[blo]:
            alo += 1
            blo += 1
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
            ahi -= 1
            bhi -= 1
        if alo == ahi and blo == bhi:
            continue
        if alo == ahi or blo == bhi:
            regions.append((alo, ahi, blo, bhi))
            continue
        count_a: dict[str, int] = {}
        for i in range(alo, ahi):
            count_a[a[i]] = count_a.get(a[i], 0) + 1
        count_b: dict[str, int] = {}
        pos_b: dict[str, int] = {}
        for j in range(blo, bhi):
            line = b[j]
            if count_a.get(line) == 1:
                count_b[line] = count_b.get(line, 0) + 1
                pos_b[line] = j
        pairs = [
            (i, pos_b[a[i]])
            for i in range(alo, ahi)
            if count_a[a[i]] == 1 and count_b.get(a[i]) == 1
        ]
        anchors = _lis_anchors(pairs)
        if anchors:
            # gaps between anchors; pushed in reverse so they pop in order
            bounds = [(alo - 1, blo - 1), *anchors, (ahi, bhi)]
            for (pi, pj), (ni, nj) in reversed(list(zip(bounds, bounds[1:]))):
                if pi + 1 < ni or pj + 1 < nj:
                    stack.append((pi + 1, ni, pj + 1, nj))
            continue
        if (ahi - alo) * (bhi - blo) > _SEQUENCEMATCHER_MAX_CELLS:
            regions.extend(_myers_regions(a, b, alo, ahi, blo, bhi))
            continue
        matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                regions.append((alo + i1, alo + i2, blo + j1, blo + j2))
    return regions


def compute_blocks(old: str, new: str, context: int = 1) -> list[Block]:
    """Diff ``old`` against ``new`` line by line and return SEARCH/REPLACE blocks that turn one into
    the other when applied in order with :func:`apply_blocks`.

    Each changed region gets ``context`` unchanged lines on each side (bounded by the file); then each
    block's context grows symmetrically, one line per side per step, until its SEARCH occurs exactly
    once in the text it will be applied to (the text after the previous blocks were applied), at the
    intended position.  Blocks whose line ranges would overlap are merged.  An empty SEARCH is only
    produced when ``old == ""``.  Line endings and a missing final newline are preserved exactly.
    """
    if context < 0:
        raise ValueError("context must be >= 0")
    if old == new:
        return []
    if old == "":
        return [Block("", new)]

    a = _split_lines(old)
    b = _split_lines(new)
    na = len(a)
    aoff = _offsets(a)
    boff = _offsets(b)

    # hunk: [lo, hi, ci1, ci2, cj1, cj2]; [lo, hi) is the old-line range of the block, [ci1, ci2) /
    # [cj1, cj2) the old/new span of its changed lines.  lo and hi lie in the equal runs around the
    # changes, so the new-line range is [cj1 - (ci1 - lo), cj2 + (hi - ci2)).
    hunks: list[list[int]] = []
    for i1, i2, j1, j2 in _changed_regions(a, b):
        lo = max(i1 - context, 0)
        hi = min(i2 + context, na)
        if hunks and lo < hunks[-1][1]:
            prev = hunks[-1]
            prev[1] = max(prev[1], hi)
            prev[3] = i2
            prev[5] = j2
        else:
            hunks.append([lo, hi, i1, i2, j1, j2])

    def merge_forward(k: int) -> None:
        h = hunks[k]
        while k + 1 < len(hunks) and h[1] > hunks[k + 1][0]:
            nxt = hunks.pop(k + 1)
            h[1] = max(h[1], nxt[1])
            h[3] = nxt[3]
            h[5] = nxt[5]

    def text_before(k: int) -> str:
        # the text block k is applied to: new lines up to the block, old lines from it on.
        h = hunks[k]
        nlo = h[4] - (h[2] - h[0])
        return new[: boff[nlo]] + old[aoff[h[0]] :]

    def written(h: list[int]) -> tuple[str, str]:
        lo, hi = h[0], h[1]
        nlo = h[4] - (h[2] - lo)
        nhi = h[5] + (hi - h[3])
        return _written(old[aoff[lo] : aoff[hi]], new[boff[nlo] : boff[nhi]])

    k = 0
    current_k = -1
    padded = ""
    while k < len(hunks):
        if k != current_k:
            padded = "\n" + text_before(k)
            current_k = k
        h = hunks[k]
        lo, hi, ci1 = h[0], h[1], h[2]
        pos = boff[h[4] - (ci1 - lo)]  # where line lo starts in the text; its anchoring "\n" in `padded`
        search, replace = written(h)
        if _occurs_once_at(padded, "\n" + search, pos):
            if hi < na and _cut_by_strip(replace) and not replace.endswith("\r"):
                # Agentless strips each block: end it on a line that does not end in whitespace. (A CRLF line
                # always does; growing would not help, so check_portable refuses it instead.)
                h[1] = hi + 1
                merge_forward(k)
                continue
            k += 1
            continue
        # grow one line on each side (bounded by the file)
        new_lo = max(lo - 1, 0)
        new_hi = min(hi + 1, na)
        if new_lo == lo and new_hi == hi:  # only a file of blank lines has no unique anchored SEARCH
            raise EditError("search_ambiguous", "cannot make a SEARCH block unique")
        if k > 0 and new_lo < hunks[k - 1][1]:
            # would overlap the previous block: merge into it.  The merged SEARCH starts with the
            # previous block's whole lines, which are already unique at their position, so it is unique too.
            prev = hunks[k - 1]
            prev[1] = max(prev[1], hi)
            prev[3] = h[3]
            prev[5] = h[5]
            hunks.pop(k)
            k -= 1
            merge_forward(k)
            continue
        h[0] = new_lo
        h[1] = new_hi
        merge_forward(k)
        # text_before(k) does not depend on lo while lo stays in the equal run before the change,
        # so ``padded`` stays valid.

    return [Block(*written(h)) for h in hunks]


# ----------------------------------------------------------------------------------------------
# applying blocks
# ----------------------------------------------------------------------------------------------


def _where(path: str, index: int) -> str:
    return f"{path or '<file>'} block {index}"


def apply_blocks(text: str, blocks: Sequence[Block], path: str = "") -> str:
    """Apply ``blocks`` to ``text`` in order, line-anchored: ``"\n" + search`` must occur exactly once in
    ``"\n" + text`` (overlapping occurrences count) and becomes ``"\n" + replace``; an empty SEARCH is only allowed
    on an empty text."""
    for index, block in enumerate(blocks):
        search = block.search
        if search == "":
            if text != "":
                raise EditError(
                    "empty_search", f"{_where(path, index)}: empty SEARCH on a non-empty file"
                )
            text = block.replace
            continue
        padded = "\n" + text
        needle = "\n" + search
        first = padded.find(needle)
        if first < 0:
            raise EditError("search_not_found", f"{_where(path, index)}: SEARCH text not found")
        if padded.find(needle, first + 1) >= 0:
            raise EditError(
                "search_ambiguous", f"{_where(path, index)}: SEARCH text occurs more than once"
            )
        text = (padded[:first] + "\n" + block.replace + padded[first + len(needle) :])[1:]
    return text


# ----------------------------------------------------------------------------------------------
# rendering and parsing
# ----------------------------------------------------------------------------------------------

_MARKER_LINES = frozenset({SEARCH_MARKER, DIVIDER_MARKER, REPLACE_MARKER})


_DRIVE = re.compile(r"[A-Za-z]:")


# components that start with a word character or "-" and hold only word characters, ".", "-": never "", ".", "..",
# ".git", a drive ("C:") or a separator other than "/"
_PLAIN_PATH = re.compile(r"[\w\-][\w.\-]*(?:/[\w\-][\w.\-]*)*\Z", re.ASCII)


def check_repo_path(path: object) -> str:
    """``path`` unchanged when it is a plain relative path inside a repository's work tree; else
    EditError("unsafe_path"). Refused: an empty or non-string path, an absolute one (``/x``, ``C:x``), a ``..``,
    ``.`` or empty component (``a/../../b``, ``./a``, ``a//b``, ``a/``), a component that is git's own
    directory (``.git``, any case: case-insensitive file systems), a backslash (a separator on Windows) and NUL or
    a line break. Call it on every path a diff header, an edit or a model's answer names before using it."""
    if isinstance(path, str) and _PLAIN_PATH.match(path):  # the common case, decided by one regex
        return path
    if not isinstance(path, str) or path == "":
        raise EditError("unsafe_path", f"a path must be a non-empty string, got {path!r:.200}")
    parts = path.split("/")
    if ("\\" in path or "\0" in path or "\n" in path or "\r" in path or path.startswith("/") or _DRIVE.match(path)
            or any(part in ("", ".", "..") or part.casefold() == ".git" for part in parts)):
        raise EditError("unsafe_path", f"{path!r:.200} is not a relative path inside the repository (no ../, "
                                       "absolute path, .git/, backslash or NUL)")
    return path


def _check_path(path: str | None, what: str) -> str:
    if not isinstance(path, str) or path == "":
        raise EditError("invalid_edit", f"{what} must be a non-empty string, got {path!r}")
    if len(("x" + path + "x").splitlines()) != 1:
        raise EditError("invalid_edit", f"{what} contains a line break: {path!r}")
    if path != path.strip() or SEARCH_MARKER in path or REPLACE_MARKER in path:
        # Agentless reads the name as `text.lstrip("#").strip()` before the SEARCH marker
        raise EditError("ambiguous_markers", f"{what} would be misread by Agentless: {path!r}")
    return check_repo_path(path)


def _check_content(content: str, where: str) -> None:
    """Refuse a written SEARCH/REPLACE that either parser would split differently: a marker line (SWE-RL's regex,
    Agentless's `\n=======\n` split), a marker anywhere in a line (Agentless splits on the marker text), or a line
    starting with ``` (it closes Agentless's ```python block early)."""
    if not isinstance(content, str):
        raise EditError("invalid_edit", f"{where}: block text must be str")
    if "```" not in content and "=======" not in content and "<<<<<<< SEARCH" not in content and (
            ">>>>>>> REPLACE" not in content):
        return  # the common case, without splitting
    for number, line in enumerate(content.split("\n"), 1):
        if line in _MARKER_LINES or SEARCH_MARKER in line or REPLACE_MARKER in line or line.startswith(FENCE_CLOSE):
            raise EditError("ambiguous_markers", f"{where}: content line {number} reads as a marker: {line!r}")


def _render_block(path: str, block: Block, where: str) -> str:
    _check_content(block.search, where)
    _check_content(block.replace, where)
    return (f"{FENCE_OPEN}\n{HEADER}{path}\n{SEARCH_MARKER}\n{block.search}\n{DIVIDER_MARKER}\n{block.replace}\n"
            f"{REPLACE_MARKER}\n{FENCE_CLOSE}")


def render_edits(edits: Sequence[FileEdit]) -> str:
    """Render file edits as the completion text: one fenced block per edit, blank line between (module docstring).

    Only modified and added files can be written; a deleted or renamed file raises `deleted_file` /
    `renamed_file` (neither parser can remove or move a file)."""
    chunks = []
    seen: set[str] = set()
    for edit in edits:
        if edit.status not in STATUSES:
            raise EditError("invalid_edit", f"{edit.path!r}: unknown status {edit.status!r}")
        path = _check_path(edit.path, "path")
        if edit.status == "deleted":
            raise EditError("deleted_file", f"{path!r} is deleted: SEARCH/REPLACE cannot remove a file")
        if edit.status == "renamed":
            raise EditError("renamed_file", f"{edit.old_path!r} -> {path!r}: SEARCH/REPLACE cannot move a file")
        if edit.old_path is not None:
            raise EditError("invalid_edit", f"{path!r}: old_path is only allowed for renamed files")
        if path in seen:
            raise EditError("invalid_edit", f"{path!r}: two edits of one file")
        seen.add(path)
        if edit.status == "added":
            if len(edit.blocks) != 1 or edit.blocks[0].search != "":
                raise EditError("invalid_edit", f"{path!r}: an added file needs exactly one block with empty SEARCH")
        elif not edit.blocks or any(block.search == "" for block in edit.blocks):
            raise EditError("invalid_edit", f"{path!r}: a modified file needs blocks with non-empty SEARCH")
        if len(set(edit.blocks)) != len(edit.blocks):
            raise EditError("ambiguous_markers", f"{path!r}: two identical blocks (Agentless keeps one)")
        for index, block in enumerate(edit.blocks):
            chunks.append(_render_block(path, block, _where(path, index)))
    return "\n\n".join(chunks)


def parse_edits(text: str) -> list[FileEdit]:
    """Parse a completion text back into file edits; the exact inverse of :func:`render_edits`.

    Consecutive blocks of one path make one FileEdit; a file whose one block has an empty SEARCH is `added`.
    Raises EditError("ambiguous_markers") when a marker line shows up where block content should be,
    EditError("unsafe_path") for a `### path` outside the repository (:func:`check_repo_path`), and
    EditError("malformed_edit") (naming the line) for anything else that does not parse.
    """
    lines = text.split("\n")
    n = len(lines)
    edits: list[FileEdit] = []
    blocks: list[Block] = []
    current = ""
    header_line = 0

    def close_file() -> None:
        if not blocks:
            return
        if any(b.search == "" for b in blocks):
            if len(blocks) != 1:
                raise EditError(
                    "malformed_edit", f"line {header_line}: {current!r}: an empty SEARCH must be the file's only block"
                )
            edits.append(FileEdit(current, "added", None, (blocks[0],)))
        else:
            edits.append(FileEdit(current, "modified", None, tuple(blocks)))

    def expect(i: int, what: str) -> None:
        got = lines[i] if i < n else "<end of text>"
        raise EditError("malformed_edit", f"line {i + 1}: expected {what}, got {got!r}")

    def section(i: int, end_marker: str) -> tuple[str, int]:
        start = i
        while i < n and lines[i] != end_marker:
            line = lines[i]
            if line in _MARKER_LINES or line.startswith(FENCE_CLOSE):
                raise EditError("ambiguous_markers", f"line {i + 1}: unexpected {line!r} inside a block")
            i += 1
        if i >= n:
            raise EditError("malformed_edit", f"line {n}: unterminated block at end of text")
        return "\n".join(lines[start:i]), i + 1

    i = 0
    while i < n:
        line = lines[i]
        if line == "":
            i += 1
            continue
        if line != FENCE_OPEN:
            if line in _MARKER_LINES:
                raise EditError("ambiguous_markers", f"line {i + 1}: unexpected {line!r} outside a block")
            expect(i, repr(FENCE_OPEN))
        if i + 1 >= n or not lines[i + 1].startswith(HEADER) or lines[i + 1] == HEADER:
            expect(i + 1, "'### path'")
        path = check_repo_path(lines[i + 1][len(HEADER):])
        start = i + 2
        if i + 2 >= n or lines[i + 2] != SEARCH_MARKER:
            expect(i + 2, repr(SEARCH_MARKER))
        if i + 3 < n and lines[i + 3] == DIVIDER_MARKER:
            expect(i + 3, "a SEARCH line (an empty SEARCH is one empty line)")
        search, i = section(i + 3, DIVIDER_MARKER)
        replace, i = section(i, REPLACE_MARKER)
        if i >= n or lines[i] != FENCE_CLOSE:
            expect(i, repr(FENCE_CLOSE))
        if path != current or not blocks:
            close_file()
            current, blocks, header_line = path, [], start
        blocks.append(Block(search, replace))
        i += 1
    close_file()
    return edits


# ----------------------------------------------------------------------------------------------
# repository-level helpers
# ----------------------------------------------------------------------------------------------


def apply_edits(files: Mapping[str, str], edits: Sequence[FileEdit]) -> dict[str, str]:
    """Apply ``edits`` to ``files`` (path -> base content) and return a new dict with the result:
    modified files replaced, added files created, deleted files removed, renamed files moved (with
    their blocks applied to the old content).  Edits are applied in order."""
    result = dict(files)
    for edit in edits:
        status, path = edit.status, check_repo_path(edit.path)
        if edit.old_path is not None:
            check_repo_path(edit.old_path)
        if status == "modified":
            if path not in result:
                raise EditError("file_not_found", f"{path!r}: modified file does not exist")
            result[path] = apply_blocks(result[path], edit.blocks, path)
        elif status == "added":
            if result.get(path):  # an existing empty file reads the same as a missing one (SWE-RL: .get(path, ""))
                raise EditError("file_exists", f"{path!r}: added file already exists")
            result[path] = apply_blocks("", edit.blocks, path)
        elif status == "deleted":
            if path not in result:
                raise EditError("file_not_found", f"{path!r}: deleted file does not exist")
            if edit.blocks:
                raise EditError("invalid_edit", f"{path!r}: a deleted file has no blocks")
            del result[path]
        elif status == "renamed":
            old_path = edit.old_path
            if old_path is None or old_path not in result:
                raise EditError("file_not_found", f"{old_path!r}: renamed file does not exist")
            if path != old_path and path in result:
                raise EditError("file_exists", f"{path!r}: rename target already exists")
            content = result.pop(old_path)
            result[path] = apply_blocks(content, edit.blocks, path)
        else:
            raise EditError("invalid_edit", f"{path!r}: unknown status {status!r}")
    return result


def edits_for_files(
    old_files: Mapping[str, str],
    new_files: Mapping[str, str],
    renames: Mapping[str, str] | None = None,
    context: int = 1,
) -> list[FileEdit]:
    """File edits turning ``old_files`` into ``new_files`` (both path -> content; a path only in
    old is deleted, only in new is added, unless ``renames`` (old_path -> new_path) pairs them).
    Unchanged files get no edit.  Sorted by path (the path after the change)."""
    renames = dict(renames or {})
    targets: dict[str, str] = {}
    for old_path, new_path in renames.items():
        if old_path not in old_files or new_path not in new_files:
            raise EditError(
                "invalid_rename", f"rename {old_path!r} -> {new_path!r} does not match the file sets"
            )
        if old_path == new_path or old_path in new_files or new_path in old_files:
            raise EditError(
                "invalid_rename",
                f"rename {old_path!r} -> {new_path!r}: source still exists or target already existed",
            )
        if new_path in targets:
            raise EditError("invalid_rename", f"two renames target {new_path!r}")
        targets[new_path] = old_path

    edits: list[FileEdit] = []
    for path in sorted(set(old_files) | set(new_files)):
        if path in renames:
            continue  # handled under its new path
        if path in targets:
            old_path = targets[path]
            blocks = compute_blocks(old_files[old_path], new_files[path], context)
            edits.append(FileEdit(path, "renamed", old_path, tuple(blocks)))
        elif path not in new_files:
            edits.append(FileEdit(path, "deleted"))
        elif path not in old_files or (old_files[path] == "" and new_files[path] != ""):
            edits.append(FileEdit(path, "added", None, (Block("", new_files[path]),)))
        elif old_files[path] != new_files[path]:
            blocks = compute_blocks(old_files[path], new_files[path], context)
            edits.append(FileEdit(path, "modified", None, tuple(blocks)))
    return edits


def check_roundtrip(
    old_files: Mapping[str, str], new_files: Mapping[str, str], edits: Sequence[FileEdit]
) -> None:
    """Render, parse and apply ``edits`` to ``old_files``; raise EditError("edit_roundtrip_mismatch")
    naming the first differing path unless every edited path ends up byte-identical to ``new_files``
    (deleted paths and rename sources must be absent), or the reason from :func:`check_portable`."""
    check_portable(old_files, new_files, edits)
    parsed = parse_edits(render_edits(edits))
    if parsed != list(edits):
        for before, after in zip(edits, parsed):
            if before != after:
                raise EditError(
                    "edit_roundtrip_mismatch", f"{before.path!r}: parse(render(edit)) differs"
                )
        raise EditError("edit_roundtrip_mismatch", "parse(render(edits)) changed the number of files")
    result = apply_edits(old_files, parsed)
    present: set[str] = set()
    absent: set[str] = set()
    for edit in parsed:
        if edit.status == "deleted":
            absent.add(edit.path)
            present.discard(edit.path)
        else:
            if edit.status == "renamed" and edit.old_path is not None:
                absent.add(edit.old_path)
                present.discard(edit.old_path)
            present.add(edit.path)
            absent.discard(edit.path)
    for path in sorted(present | absent):
        if path in present:
            if path not in new_files:
                raise EditError(
                    "edit_roundtrip_mismatch", f"{path!r}: edited file is absent from new_files"
                )
            if result.get(path) != new_files[path]:
                raise EditError("edit_roundtrip_mismatch", f"{path!r}: content differs after apply")
        else:
            if path in result:
                raise EditError("edit_roundtrip_mismatch", f"{path!r}: should be absent after apply")
            if path in new_files:
                raise EditError(
                    "edit_roundtrip_mismatch", f"{path!r}: removed by the edits but present in new_files"
                )


def check_portable(old_files: Mapping[str, str], new_files: Mapping[str, str], edits: Sequence[FileEdit]) -> None:
    """Raise EditError unless Agentless's reading gives the same files as SWE-RL's (which is this module's).

    Agentless (`split_edit_multifile_commands`) strips each block, so a REPLACE must end on a non-space character
    (`crlf_line_endings`, `trailing_whitespace`, `empty_replace`); its applier rebuilds a file from its lines, so
    the final newline of a file cannot change (`final_newline_change`); a new file gets one.
    """
    for edit in edits:
        old = old_files.get(edit.old_path or edit.path, "")
        new = new_files.get(edit.path, "")
        if old and new and old.endswith("\n") != new.endswith("\n") or not old and new and not new.endswith("\n"):
            raise EditError("final_newline_change", f"{edit.path!r}: the change adds or removes the final newline")
        for index, block in enumerate(edit.blocks):
            replace = block.replace
            if block.search == "" and replace.endswith("\n"):
                replace = replace[:-1]  # a new file: Agentless's line join gives the final newline back
            if replace == "":
                raise EditError("empty_replace", f"{_where(edit.path, index)}: empty REPLACE (Agentless drops it)")
            if replace[-1].isspace():
                reason = "crlf_line_endings" if replace.endswith("\r") else "trailing_whitespace"
                raise EditError(reason, f"{_where(edit.path, index)}: REPLACE ends in {replace[-1]!r}, which "
                                        "Agentless strips")
