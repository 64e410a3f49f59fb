"""PullRecord + its commits' changes → one `commit_bundle` Sample, curated and verified. Pure (no git).

Curation (`datakit.bundles.curate`): bot commits are dropped, weak messages flagged, long ones cut to their
subject; lock, generated, vendored, minified, binary and non-UTF-8 files are left out of the diffs. Every kept
commit diff is parsed back with unidiff and applied to the parent's files (`verify_patch`), or the PR is
quarantined (`diff_roundtrip_failed`). A bundle over its bounds (commits, files, changed lines, bytes) or with no
code change left is filtered with its reason. `meta.flags` says what curation did.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from datakit.bundles.curate import message_verdict
from datakit.bundles.diffs import PatchMismatch, verify_patch
from datakit.bundles.render import TEMPLATE, BundleCommit, render_bundle


@dataclass(frozen=True)
class BundleLimits:
    max_commits: int = 100
    max_files: int = 100  # distinct files changed across the bundle's kept diffs
    max_lines: int = 10_000  # added + deleted lines
    max_bytes: int = 1024 * 1024  # the rendered document, UTF-8


class BundleOut(Exception):
    """A PR that gives no bundle: `filtered` (by design: bounds, nothing left) or not (a failure: quarantined)."""

    def __init__(self, reason: str, detail: str, filtered: bool):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.filtered = reason, detail, filtered


def bundle_id(pr: dict) -> str:
    """The same recipe as every sample id: sha256 of `repo#pr/role/kind` (stable across template versions)."""
    return hashlib.sha256(f"{pr['repo']}#{pr['number']}/none/commit_bundle".encode()).hexdigest()[:16]


def build_bundle(pr: dict, commits: list[BundleCommit], limits: BundleLimits = BundleLimits(),
                 landed_only: bool = False) -> tuple[dict, Counter]:
    """The bundle sample and the curation counts (`commits.<verdict>`, `files.<verdict>`), or BundleOut.
    `commits` carry all their changes; `landed_only`: the PR's own commits were gone, this is the landed one."""
    counts: Counter = Counter()
    flags: set[str] = {"landed_commit_only"} if landed_only else set()
    if len(commits) > limits.max_commits:
        raise BundleOut("too_many_commits", f"{len(commits)} commits > {limits.max_commits}", True)
    kept: list[BundleCommit] = []
    for c in commits:
        verdict = message_verdict(c.message, c.author)
        counts[f"commits.{verdict or 'kept'}"] += 1
        if verdict == "bot_commit":
            flags.add("bot_commit_dropped")
            continue
        message = c.message
        if verdict == "long_message":
            message = message.strip().partition("\n")[0]
        if verdict:
            flags.add(verdict)
        changes = [] if c.is_merge else [f for f in c.changes if f.verdict is None]
        for f in c.changes:
            if f.verdict is not None and not c.is_merge:
                counts[f"files.{f.verdict}"] += 1
                flags.add(f"files_dropped.{f.verdict}")
        if changes:
            try:
                verify_patch("".join(f.patch for f in changes), changes)
            except PatchMismatch as exc:
                raise BundleOut(exc.reason, f"commit {c.sha}: {exc}", False) from None
        kept.append(BundleCommit(c.sha, message, c.author, c.is_merge, changes))
    if not kept:
        raise BundleOut("no_commits", "every commit of the PR was a bot's", True)
    files = {f.path for c in kept for f in c.changes}
    if not files:
        raise BundleOut("no_code_change", "no diff left after curation (only lock, generated, vendored, binary "
                        "or non-UTF-8 files, or merges)", True)
    if len(files) > limits.max_files:
        raise BundleOut("too_many_files", f"{len(files)} files > {limits.max_files}", True)
    lines = sum(f.added + f.deleted for c in kept for f in c.changes)
    if lines > limits.max_lines:
        raise BundleOut("too_many_lines", f"{lines} changed lines > {limits.max_lines}", True)
    text = render_bundle(pr, kept)
    size = len(text.encode("utf-8"))
    if size > limits.max_bytes:
        raise BundleOut("too_large", f"{size} bytes > {limits.max_bytes}", True)
    source = dict(pr["source"])
    if landed_only:
        source["missing"] = sorted(set(source.get("missing") or []) | {"commits"})
    sample = {
        "id": bundle_id(pr),
        "kind": "commit_bundle",
        "role": "none",
        "text": text,
        "prompt_chars": 0,  # a document, not a prompt and a completion: every token is trained on
        "messages": None,
        "meta": {"repo": pr["repo"], "pr": pr["number"], "base_sha": pr.get("base_sha"),
                 "head_sha": pr.get("head_sha"), "files": sorted(files), "template": TEMPLATE,
                 "commits": len(kept), "flags": sorted(flags), "fork_of": pr.get("fork_of"),
                 "problem_source": None, "structure_tree": None},
        "source": source,
    }
    return sample, counts
