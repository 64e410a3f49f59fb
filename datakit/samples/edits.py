"""SEARCH/REPLACE edit blocks (the format Agentless and Kimi-Dev train on).

Pure functions on ``str``; no I/O; standard library only.

Completion text forms produced by :func:`render_edits` and accepted by :func:`parse_edits`
(files are separated by one blank line)::

    modified:  "### path\\n" then zero or more blocks
    added:     "### path (new file)\\n" then exactly one block whose SEARCH is empty and whose REPLACE
               is the whole content of the new file
    deleted:   "### path (deleted)\\n" and no blocks
    renamed:   "### old_path -> path (renamed)\\n" then zero or more blocks, applied to the old content

A block renders as::

    <<<<<<< SEARCH
    S
    =======
    R
    >>>>>>> REPLACE

i.e. ``"<<<<<<< SEARCH\\n" + S + "=======\\n" + R + ">>>>>>> REPLACE\\n"`` where S and R are the exact
texts.  If S (or R) is non-empty and does not end with ``"\\n"`` it is rendered followed by
``"\\n\\\\ No newline at end of file\\n"`` (the git convention), so that the parse is byte-exact.
Marker lines are exactly ``"<<<<<<< SEARCH\\n"``, ``"=======\\n"`` and ``">>>>>>> REPLACE\\n"``
(``"=======\\r\\n"`` inside a CRLF file is content, not a marker).

Blocks of one file are applied in order: block k must occur exactly once (overlapping occurrences
count) in the text obtained after applying blocks 0..k-1.  An empty SEARCH is only valid on an empty
text (a new file).

Every failure raises :class:`EditError`, a ``ValueError`` with a machine-usable ``reason``:

    search_not_found        a SEARCH text does not occur in the current text
    search_ambiguous        a SEARCH text occurs more than once
    empty_search            an empty SEARCH applied to a non-empty text
    ambiguous_markers       block content contains a marker line, so the rendering cannot be parsed back
    malformed_edit          the completion text cannot be parsed (message names the line number)
    invalid_edit            a FileEdit that cannot be rendered/applied (bad status, path or blocks)
    file_not_found          apply_edits: a modified/deleted/renamed-from path is missing
    file_exists             apply_edits: an added/renamed-to path already exists
    invalid_rename          edits_for_files: a rename that does not match old_files/new_files
    edit_roundtrip_mismatch check_roundtrip: render -> parse -> apply did not reproduce new_files
"""

from __future__ import annotations

import bisect
import difflib
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
    "STATUSES",
]

SEARCH_MARKER = "<<<<<<< SEARCH\n"
DIVIDER_MARKER = "=======\n"
REPLACE_MARKER = ">>>>>>> REPLACE\n"
MARKERS = frozenset({SEARCH_MARKER, DIVIDER_MARKER, REPLACE_MARKER})
NO_NEWLINE = "\\ No newline at end of file\n"

STATUSES = ("modified", "added", "deleted", "renamed")
_SUFFIX_ADDED = " (new file)"
_SUFFIX_DELETED = " (deleted)"
_SUFFIX_RENAMED = " (renamed)"
_ARROW = " -> "


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
    search: str  # exact text (may be "" only for a new file)
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

    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
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

    k = 0
    current_k = -1
    text = ""
    while k < len(hunks):
        if k != current_k:
            text = text_before(k)
            current_k = k
        h = hunks[k]
        lo, hi, ci1 = h[0], h[1], h[2]
        pos = boff[h[4] - (ci1 - lo)]
        if _occurs_once_at(text, old[aoff[lo] : aoff[hi]], pos):
            k += 1
            continue
        # grow one line on each side (bounded by the file)
        new_lo = max(lo - 1, 0)
        new_hi = min(hi + 1, na)
        if new_lo == lo and new_hi == hi:  # pragma: no cover - whole old file is always unique
            raise EditError("search_ambiguous", "cannot make a SEARCH block unique")
        if k > 0 and new_lo < hunks[k - 1][1]:
            # would overlap the previous block: merge into it.  The merged SEARCH starts with the
            # previous block's SEARCH, which is already unique at its position, so it is unique too.
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
        # so ``text`` stays valid.

    blocks = []
    for lo, hi, ci1, ci2, cj1, cj2 in hunks:
        nlo = cj1 - (ci1 - lo)
        nhi = cj2 + (hi - ci2)
        blocks.append(Block(old[aoff[lo] : aoff[hi]], new[boff[nlo] : boff[nhi]]))
    return blocks


# ----------------------------------------------------------------------------------------------
# applying blocks
# ----------------------------------------------------------------------------------------------


def _where(path: str, index: int) -> str:
    return f"{path or '<file>'} block {index}"


def apply_blocks(text: str, blocks: Sequence[Block], path: str = "") -> str:
    """Apply ``blocks`` to ``text`` in order.  Each SEARCH must occur exactly once in the current
    text (overlapping occurrences count); an empty SEARCH is only allowed on an empty text."""
    for index, block in enumerate(blocks):
        search = block.search
        if search == "":
            if text != "":
                raise EditError(
                    "empty_search", f"{_where(path, index)}: empty SEARCH on a non-empty file"
                )
            text = block.replace
            continue
        first = text.find(search)
        if first < 0:
            raise EditError("search_not_found", f"{_where(path, index)}: SEARCH text not found")
        if text.find(search, first + 1) >= 0:
            raise EditError(
                "search_ambiguous", f"{_where(path, index)}: SEARCH text occurs more than once"
            )
        text = text[:first] + block.replace + text[first + len(search) :]
    return text


# ----------------------------------------------------------------------------------------------
# rendering and parsing
# ----------------------------------------------------------------------------------------------


def _check_path(path: str | None, what: str) -> str:
    if not isinstance(path, str) or path == "":
        raise EditError("invalid_edit", f"{what} must be a non-empty string, got {path!r}")
    if len(("x" + path + "x").splitlines()) != 1:
        raise EditError("invalid_edit", f"{what} contains a line break: {path!r}")
    return path


def _header(edit: FileEdit) -> str:
    if edit.status not in STATUSES:
        raise EditError("invalid_edit", f"{edit.path!r}: unknown status {edit.status!r}")
    path = _check_path(edit.path, "path")
    if edit.status == "renamed":
        old_path = _check_path(edit.old_path, "old_path")
        if _ARROW in path or _ARROW in old_path:
            raise EditError("invalid_edit", f"renamed path contains {_ARROW!r}: {old_path!r} -> {path!r}")
        return f"### {old_path}{_ARROW}{path}{_SUFFIX_RENAMED}\n"
    if edit.old_path is not None:
        raise EditError("invalid_edit", f"{path!r}: old_path is only allowed for renamed files")
    if edit.status == "added":
        if len(edit.blocks) != 1 or edit.blocks[0].search != "":
            raise EditError(
                "invalid_edit", f"{path!r}: an added file needs exactly one block with empty SEARCH"
            )
        return f"### {path}{_SUFFIX_ADDED}\n"
    if edit.status == "deleted":
        if edit.blocks:
            raise EditError("invalid_edit", f"{path!r}: a deleted file has no blocks")
        return f"### {path}{_SUFFIX_DELETED}\n"
    if path.endswith((_SUFFIX_ADDED, _SUFFIX_DELETED, _SUFFIX_RENAMED)):
        raise EditError("invalid_edit", f"modified path would be misread as a status: {path!r}")
    return f"### {path}\n"


def _render_section(content: str, where: str) -> str:
    if not isinstance(content, str):
        raise EditError("invalid_edit", f"{where}: block text must be str")
    if content == "":
        return ""
    body = content if content.endswith("\n") else content + "\n"
    lines = body.splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        if line in MARKERS:
            raise EditError(
                "ambiguous_markers", f"{where}: content line {number} is a marker line {line!r}"
            )
    if body is content:
        if lines[-1] == NO_NEWLINE:
            raise EditError(
                "ambiguous_markers", f"{where}: content ends with a '\\ No newline' line"
            )
        return body
    return body + NO_NEWLINE


def _render_block(block: Block, where: str) -> str:
    return (
        SEARCH_MARKER
        + _render_section(block.search, where)
        + DIVIDER_MARKER
        + _render_section(block.replace, where)
        + REPLACE_MARKER
    )


def render_edits(edits: Sequence[FileEdit]) -> str:
    """Render file edits as the completion text (forms in the module docstring)."""
    chunks = []
    for edit in edits:
        parts = [_header(edit)]
        for index, block in enumerate(edit.blocks):
            parts.append(_render_block(block, _where(edit.path, index)))
        chunks.append("".join(parts))
    return "\n".join(chunks)


def _parse_header(line: str, lineno: int) -> tuple[str, str, str | None]:
    header = line[4:]
    if header.endswith("\r\n"):
        header = header[:-2]
    elif header.endswith("\n"):
        header = header[:-1]
    if header.endswith(_SUFFIX_ADDED):
        status, old_path, path = "added", None, header[: -len(_SUFFIX_ADDED)]
    elif header.endswith(_SUFFIX_DELETED):
        status, old_path, path = "deleted", None, header[: -len(_SUFFIX_DELETED)]
    elif header.endswith(_SUFFIX_RENAMED):
        status = "renamed"
        pair = header[: -len(_SUFFIX_RENAMED)]
        if pair.count(_ARROW) != 1:
            raise EditError(
                "malformed_edit", f"line {lineno}: renamed header needs 'old -> new': {line!r}"
            )
        old_path, path = pair.split(_ARROW)
        if not old_path:
            raise EditError("malformed_edit", f"line {lineno}: empty old path in header {line!r}")
    else:
        status, old_path, path = "modified", None, header
    if not path:
        raise EditError("malformed_edit", f"line {lineno}: empty path in header {line!r}")
    return path, status, old_path


def _finish_section(content: list[str], lineno: int) -> str:
    if content and content[-1] == NO_NEWLINE:
        if len(content) < 2 or not content[-2].endswith("\n"):
            raise EditError(
                "malformed_edit",
                f"line {lineno - 1}: '\\ No newline' marker without a preceding content line",
            )
        return "".join(content[:-2]) + content[-2][:-1]
    return "".join(content)


def parse_edits(text: str) -> list[FileEdit]:
    """Parse a completion text back into file edits; the exact inverse of :func:`render_edits`.

    Raises EditError("ambiguous_markers") when a marker line shows up where block content should be,
    and EditError("malformed_edit") (naming the line) for anything else that does not parse.
    """
    edits: list[FileEdit] = []
    current: tuple[str, str, str | None] | None = None
    header_line = 0
    blocks: list[Block] = []
    state = "outside"  # outside | search | replace
    search_lines: list[str] = []
    replace_lines: list[str] = []
    search_text = ""

    def close_file() -> None:
        if current is None:
            return
        path, status, old_path = current
        if status == "added" and (len(blocks) != 1 or blocks[0].search != ""):
            raise EditError(
                "malformed_edit",
                f"line {header_line}: new file {path!r} needs exactly one block with empty SEARCH",
            )
        if status == "deleted" and blocks:
            raise EditError(
                "malformed_edit", f"line {header_line}: deleted file {path!r} must have no blocks"
            )
        edits.append(FileEdit(path, status, old_path, tuple(blocks)))

    lines = text.splitlines(keepends=True)
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        if state == "search":
            if line == DIVIDER_MARKER:
                search_text = _finish_section(search_lines, lineno)
                replace_lines = []
                state = "replace"
            elif line in MARKERS:
                raise EditError(
                    "ambiguous_markers", f"line {lineno}: unexpected {line!r} inside SEARCH"
                )
            else:
                search_lines.append(line)
            continue
        if state == "replace":
            if line == REPLACE_MARKER or (lineno == len(lines) and line == REPLACE_MARKER[:-1]):
                blocks.append(Block(search_text, _finish_section(replace_lines, lineno)))
                state = "outside"
            elif line in MARKERS:
                raise EditError(
                    "ambiguous_markers", f"line {lineno}: unexpected {line!r} inside REPLACE"
                )
            else:
                replace_lines.append(line)
            continue
        # outside a block
        if line.startswith("### "):
            close_file()
            current = _parse_header(line, lineno)
            header_line = lineno
            blocks = []
        elif line == SEARCH_MARKER:
            if current is None:
                raise EditError("malformed_edit", f"line {lineno}: block before any '### path' header")
            search_lines = []
            state = "search"
        elif line in MARKERS:
            raise EditError("ambiguous_markers", f"line {lineno}: unexpected {line!r} outside a block")
        elif line.strip() == "":
            continue
        else:
            raise EditError("malformed_edit", f"line {lineno}: unexpected text {line!r}")
    if state != "outside":
        raise EditError("malformed_edit", f"line {lineno}: unterminated block at end of text")
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
        status, path = edit.status, edit.path
        if status == "modified":
            if path not in result:
                raise EditError("file_not_found", f"{path!r}: modified file does not exist")
            result[path] = apply_blocks(result[path], edit.blocks, path)
        elif status == "added":
            if path in result:
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
        elif path not in old_files:
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
    (deleted paths and rename sources must be absent)."""
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
