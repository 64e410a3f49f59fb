"""Curation rules for commit bundles, pure functions on strings (CommitPack / OctoPack, 2023, and what a lab adds).

Per commit message (`message_verdict`): a bot's commit is dropped (`bot_commit`); a message that says nothing —
"Merge branch …", "Bump x from 1 to 2", "wip", a version or a hex string alone, fewer than 10 characters — keeps its
diff but is flagged `weak_message`; one over 10,000 characters is cut to its subject (`long_message`).
Per file (`file_verdict`): lock files, generated, vendored and minified files and binary diffs are left out of
the bundle with their reason. The PR keeps its code changes; only what teaches nothing is left out.
"""

from __future__ import annotations

import posixpath
import re

from datakit.pulls.filters import is_bot
from datakit.samples.classify import FileClass, classify_path

MIN_MESSAGE_CHARS = 10
MAX_MESSAGE_CHARS = 10_000

LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "poetry.lock",
    "pipfile.lock", "pdm.lock", "uv.lock", "cargo.lock", "gemfile.lock", "composer.lock", "go.sum", "mix.lock",
    "podfile.lock", "packages.lock.json", "flake.lock", "conda-lock.yml", "pubspec.lock", "gradle.lockfile",
})

_BOT_MESSAGE = re.compile(
    r"^(?:bump \S+ from \S+ to \S+|update dependency \S+ to \S+|chore\(deps(?:-dev)?\): bump |"
    r"\[pre-commit\.ci\] |pre-commit autoupdate|\[skip ci\] auto|auto-?format(?:ted|ting)? by )",
    re.IGNORECASE)
_WEAK_MESSAGE = re.compile(
    r"^(?:merge (?:branch|remote-tracking branch|pull request|tag|commit) .*|wip\W*|fixup!.*|squash!.*|"
    r"v?\d+(?:\.\d+)+(?:[-.]?\w+)?|[0-9a-f]{7,40}|update \S+|\.|-+|fix|fixes|typo|changes|update|test|tests|"
    r"minor|cleanup|lint|format|oops|asdf|temp|tmp)$",
    re.IGNORECASE)


def message_verdict(message: str, author: str | None) -> str | None:
    """None (keep as is), `bot_commit` (drop the commit), `weak_message` (keep, flag) or `long_message` (keep the
    subject only)."""
    text = message.strip()
    subject = text.partition("\n")[0].strip()
    if is_bot(author) or _BOT_MESSAGE.match(subject):
        return "bot_commit"
    if len(text) > MAX_MESSAGE_CHARS:
        return "long_message"
    if len(text) < MIN_MESSAGE_CHARS or _WEAK_MESSAGE.match(subject):
        return "weak_message"
    return None


def file_verdict(path: str, data: bytes | None = None) -> str | None:
    """Why a changed file is left out of a bundle (`lock_file`, `vendored_or_generated`, `minified`, `binary`),
    or None to keep it. `data` (the new bytes, when known) catches binary and minified content by looking."""
    name = posixpath.basename(path).lower()
    if name in LOCK_FILES or name.endswith(".lock"):
        return "lock_file"
    if re.search(r"\.min\.(?:js|css|mjs)$|-min\.js$|\.bundle\.js$", name):
        return "minified"
    cls = classify_path(path)
    if cls is FileClass.VENDORED:
        return "vendored_or_generated"
    if cls is FileClass.BINARY:
        return "binary"
    if data is not None:
        if b"\0" in data[:8192]:
            return "binary"
        if _looks_minified(data):
            return "minified"
    return None


def _looks_minified(data: bytes) -> bool:
    """Long lines and few of them: a minified bundle or a data blob, not code anyone wrote."""
    if len(data) < 2048:
        return False
    lines = data.count(b"\n") + 1
    return len(data) / lines > 500
