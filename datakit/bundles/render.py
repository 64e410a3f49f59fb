"""One PR as one document, in the order a reviewer reads it (template `commit_bundle@1`, schemas/sample.schema.json).

    # owner/name: pull request #12
    ## Fix the parser on empty input
    <PR body>

    ## Issue #7: Parser crashes on ""
    <issue body>
    ### Discussion before the first commit
    **alice**: <comment>

    ## Commit 1/2 abcdef012345 (Alice)
    <message>
    ````diff
    diff --git a/src/parse.py b/src/parse.py
    …
    ````

    ## Commit 2/2 0123456789ab (Alice): merge
    <message>            (a merge commit inside a PR: its message only)

    ## Review
    <review bodies and review comments, oldest first>

A diff is fenced with more backticks than it holds in a row (CommonMark's rule), so no diff can close its fence.
Pure: takes the PR record and its commits' changes, never touches git.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from datakit.bundles.diffs import FileChange

TEMPLATE = "commit_bundle@1"


@dataclass
class BundleCommit:
    sha: str
    message: str
    author: str | None
    is_merge: bool
    changes: list[FileChange] = field(default_factory=list)  # the kept ones (curation applied)

    @property
    def patch(self) -> str:
        return "".join(c.patch for c in self.changes)


def fence(text: str) -> str:
    runs = re.findall(r"`{3,}", text)
    return "`" * max([3] + [len(r) + 1 for r in runs])


def _issue_section(issue: dict) -> str:
    parts = [f"## Issue #{issue['number']}: {issue.get('title') or ''}".rstrip()]
    if issue.get("body"):
        parts.append(issue["body"].strip("\n"))
    discussion = [c for c in issue.get("hints") or [] if (c.get("body") or "").strip()]
    if discussion:
        parts.append("### Discussion before the first commit")
        parts += [f"**{c.get('author') or 'unknown'}**: {c['body'].strip()}" for c in discussion]
    return "\n".join(parts)


def render_bundle(pr: dict, commits: list[BundleCommit]) -> str:
    sections = [f"# {pr['repo']}: pull request #{pr['number']}\n## {pr.get('title') or ''}".rstrip()]
    if (pr.get("body") or "").strip():
        sections[-1] += "\n" + pr["body"].strip("\n")
    for issue in pr.get("linked_issues") or []:
        if issue.get("fetched", True) and (issue.get("title") or issue.get("body")):
            sections.append(_issue_section(issue))
    for i, c in enumerate(commits, 1):
        head = f"## Commit {i}/{len(commits)} {c.sha[:12]} ({c.author or 'unknown'})" + (": merge" if c.is_merge else "")
        body = [head, c.message.strip("\n")]
        patch = c.patch
        if patch:
            f = fence(patch)
            body.append(f"{f}diff\n{patch}{'' if patch.endswith(chr(10)) else chr(10)}{f}")
        sections.append("\n".join(body))
    reviews = [r.strip() for r in pr.get("review_comments") or [] if r and r.strip()]
    if reviews:
        sections.append("## Review\n" + "\n\n".join(reviews))
    return "\n\n".join(sections) + "\n"
