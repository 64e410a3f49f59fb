"""A commit's changes read from the mirror, and the round trip every bundled diff must pass.

`commit_changes` diffs a commit against its first parent (renames detected) and returns one `FileChange` per
changed file: its unified patch (git's file headers included), the text before and after, and the curation
verdict (`datakit.bundles.curate.file_verdict`, or `non_utf8`). `verify_patch` parses the bundle's patch text
back with `unidiff` and applies it to the parent's files with a strict applier of its own: every context and
removed line must match where the hunk says, the result must equal the commit's files byte for byte, and every
path a header names must lie inside the repository (`datakit.samples.edits.check_repo_path`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pygit2

from datakit.bundles.curate import file_verdict
from datakit.samples.edits import EditError, check_repo_path

_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")  # lines split on "\n" only (a "\r" or "\f" is line content)


@dataclass
class FileChange:
    path: str
    old_path: str | None  # None for an added file
    status: str
    patch: str  # unified diff of this file, from "diff --git"
    old_text: str | None
    new_text: str | None  # None for a deleted file
    added: int
    deleted: int
    verdict: str | None  # why it is left out of the bundle, or None


class PatchMismatch(ValueError):
    """A bundled diff that does not reproduce the commit's files (`reason` diff_roundtrip_failed), or that names
    a path outside the repository (`reason` unsafe_path)."""

    def __init__(self, message: str, reason: str = "diff_roundtrip_failed"):
        super().__init__(message)
        self.reason = reason


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def header_path(name: str) -> str | None:
    """The repository path a `---`/`+++` header names (git's `a/`/`b/` prefix off, a C-quoted name unquoted, as
    git writes names with special characters), or None for /dev/null."""
    if name == "/dev/null":
        return None
    if len(name) >= 2 and name[0] == name[-1] == '"':
        out, i, body = bytearray(), 0, name[1:-1]
        while i < len(body):
            octal = body[i + 1:i + 4]
            if body[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
                out.append(int(octal, 8) & 0xFF)  # a byte of a UTF-8 name (core.quotePath)
                i += 4
                continue
            if body[i] == "\\" and body[i + 1:i + 2] in _ESCAPES:
                out.append(_ESCAPES[body[i + 1]])
                i += 2
                continue
            out += body[i].encode("utf-8", "surrogatepass")
            i += 1
        name = out.decode("utf-8", "replace")
    return name[2:] if name.startswith(("a/", "b/")) else name


def check_header_paths(patched_file) -> None:
    """PatchMismatch(reason unsafe_path) unless both names of a parsed file diff lie inside the repository."""
    for name in (patched_file.source_file, patched_file.target_file):
        path = header_path(name or "")
        if path is not None:
            try:
                check_repo_path(path)
            except EditError as exc:
                raise PatchMismatch(f"diff header {name!r}: {exc.message}", "unsafe_path") from None


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def commit_changes(repo: pygit2.Repository, commit: pygit2.Commit) -> list[FileChange]:
    """The changes of a non-merge commit against its parent (an empty tree for a root commit)."""
    if commit.parents:
        diff = repo.diff(commit.parents[0], commit, context_lines=3)
    else:
        diff = commit.tree.diff_to_tree(swap=True, context_lines=3)
    diff.find_similar()
    changes = []
    for patch in diff:
        delta = patch.delta
        added_file = delta.status == pygit2.GIT_DELTA_ADDED
        deleted_file = delta.status == pygit2.GIT_DELTA_DELETED
        path = delta.old_file.path if deleted_file else delta.new_file.path
        old = new = None
        verdict = "binary" if delta.is_binary else file_verdict(path)  # by name first: no blob read for those
        if verdict is None:
            old = None if added_file else repo[delta.old_file.id].data
            new = None if deleted_file else repo[delta.new_file.id].data
            verdict = file_verdict(path, new if new is not None else old)  # binary or minified by content
        old_text = new_text = None
        if verdict is None:
            try:
                old_text, new_text = _text(old), _text(new)
            except UnicodeDecodeError:
                verdict = "non_utf8"
        _, additions, deletions = patch.line_stats
        status = {pygit2.GIT_DELTA_ADDED: "added", pygit2.GIT_DELTA_DELETED: "deleted",
                  pygit2.GIT_DELTA_RENAMED: "renamed"}.get(delta.status, "modified")
        changes.append(FileChange(
            path=path, old_path=None if added_file else delta.old_file.path, status=status,
            patch=patch.data.decode("utf-8", "replace") if verdict is None else "", old_text=old_text,
            new_text=new_text, added=additions, deleted=deletions, verdict=verdict))
    return changes


def apply_hunks(source: str, patched_file) -> str:
    """Apply one unidiff PatchedFile to `source`, strictly (every context and removed line must match)."""
    src = _LINE.findall(source)
    out: list[str] = []
    pos = 0
    for hunk in patched_file:
        start = hunk.source_start - 1 if hunk.source_length else hunk.source_start
        if start < pos or start > len(src):
            raise PatchMismatch(f"{patched_file.path}: hunk at line {hunk.source_start} is out of order or range")
        out.extend(src[pos:start])
        pos = start
        last = None  # the previous line's kind, for "\\ No newline at end of file"
        src_nonl = False  # the previous source line lacked its newline: the marker must follow
        for line in hunk:
            kind, value = line.line_type, line.value
            if kind == "\\":
                if last in (" ", "-"):
                    if not src_nonl:
                        raise PatchMismatch(f"{patched_file.path}: a no-newline marker on a line that has one")
                    src_nonl = False
                if last in (" ", "+"):
                    out[-1] = out[-1][:-1]
                continue
            if src_nonl:
                raise PatchMismatch(f"{patched_file.path}: line {pos} has no newline but the diff says it has")
            if kind in (" ", "-"):
                s = src[pos] if pos < len(src) else None
                if s != value and not (s is not None and s + "\n" == value and pos == len(src) - 1):
                    raise PatchMismatch(f"{patched_file.path}: line {pos + 1} does not match the hunk's "
                                        f"{'context' if kind == ' ' else 'removed line'}")
                src_nonl = s != value
                if kind == " ":
                    out.append(value)
                pos += 1
            elif kind == "+":
                out.append(value)
            last = kind
        if src_nonl:
            raise PatchMismatch(f"{patched_file.path}: line {pos} has no newline but the diff says it has")
    out.extend(src[pos:])
    return "".join(out)


def verify_patch(patch_text: str, changes: list[FileChange]) -> None:
    """Parse `patch_text` (the kept changes' patches, in order) with unidiff and apply each file's hunks to its
    text before; raise PatchMismatch unless every result equals the text after."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        parsed = PatchSet.from_string(patch_text)
    except UnidiffParseError as exc:
        raise PatchMismatch(f"unidiff cannot parse the diff: {exc}") from None
    if len(parsed) != len(changes):
        raise PatchMismatch(f"unidiff read {len(parsed)} files, the commit changes {len(changes)}")
    for patched, change in zip(parsed, changes):
        check_header_paths(patched)
        result = apply_hunks(change.old_text or "", patched)
        if result != (change.new_text or ""):
            raise PatchMismatch(f"{change.path}: the parsed diff applied to the parent does not give the commit's "
                                f"file")
