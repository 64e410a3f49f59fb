"""Merged pull requests found in a git mirror's history, as PullRecords (schemas/pull_record.schema.json).

Three kinds of evidence, in this order (a PR number is reported once, by the first that finds it):
- merge commit "Merge pull request #N from user/branch": head = second parent, base = merge-base of the parents,
  commits = those reachable from head and not from the first parent, merged_at = the merge's commit time;
- squash merge, a single-parent commit whose subject ends in "(#N)": base = its parent, head = the commit itself
  (its tree is what landed; the PR's own commits are listed when `refs/pull/N/head` is present);
- `refs/pull/N/head` not merged by either: base = merge-base(default tip, head). When the head is not in the
  default branch's history the PR is reported with merged_at = null (`method: pull_ref`); the caller decides.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Iterator

import pygit2

from datakit.sources.git_mirror import default_tip

MERGE_SUBJECT = re.compile(r"^Merge pull request #(\d+) from ([^\s/]+)/?(\S*)")
SQUASH_SUBJECT = re.compile(r"^(.*\S)\s+\(#(\d+)\)\s*$")
PULL_REF = re.compile(r"^refs/pull/(\d+)/head$")

_STATUS = {
    pygit2.GIT_DELTA_ADDED: "added",
    pygit2.GIT_DELTA_DELETED: "deleted",
    pygit2.GIT_DELTA_MODIFIED: "modified",
    pygit2.GIT_DELTA_RENAMED: "renamed",
    pygit2.GIT_DELTA_TYPECHANGE: "modified",
    pygit2.GIT_DELTA_COPIED: "added",
}


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_id(repo_name: str, number: int, base_sha: str, head_sha: str) -> str:
    return hashlib.sha256(f"{repo_name}#{number}@{base_sha}..{head_sha}".encode()).hexdigest()[:16]


def split_message(message: str) -> tuple[str, str]:
    subject, _, body = message.partition("\n")
    return subject.strip(), body.strip("\n")


def commit_dict(commit: pygit2.Commit) -> dict:
    return {
        "sha": str(commit.id),
        "message": commit.message,
        "author": commit.author.name,
        "parents": [str(p) for p in commit.parent_ids],
        "committed_at": iso_time(commit.commit_time),
    }


def pr_commits(repo: pygit2.Repository, head: pygit2.Oid, hide: list[pygit2.Oid]) -> list[pygit2.Commit]:
    """Commits reachable from head and from none of `hide`, oldest first."""
    walker = repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for oid in hide:
        walker.hide(oid)
    return list(walker)


def diff_files(repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit) -> tuple[list[dict], str]:
    """The changed files (renames detected) and the unified diff text of base..head."""
    diff = repo.diff(base, head, context_lines=3)
    diff.find_similar()
    files = []
    for patch in diff:
        delta = patch.delta
        status = _STATUS.get(delta.status, "modified")
        _, additions, deletions = patch.line_stats
        files.append(
            {
                "path": delta.new_file.path if status != "deleted" else delta.old_file.path,
                "status": status,
                "old_path": delta.old_file.path if status == "renamed" else None,
                "additions": additions,
                "deletions": deletions,
            }
        )
    # diff.patch decodes as UTF-8; bytes that are not are replaced: this text is for reading, not re-application.
    raw = b"".join(p.data for p in diff)
    return files, raw.decode("utf-8", errors="replace")


def _record(
    repo: pygit2.Repository,
    repo_name: str,
    number: int,
    *,
    title: str,
    body: str,
    author: str | None,
    base: pygit2.Commit,
    head: pygit2.Commit,
    merge: pygit2.Commit | None,
    commits: list[pygit2.Commit],
    method: str,
) -> dict:
    files, diff = diff_files(repo, base, head)
    first = commits[0] if commits else head
    return {
        "id": pull_id(repo_name, number, str(base.id), str(head.id)),
        "repo": repo_name,
        "number": number,
        "title": title,
        "body": body,
        "author": author,
        "created_at": iso_time(first.author.time),
        "merged_at": iso_time(merge.commit_time) if merge is not None else None,
        "updated_at": None,
        "base_sha": str(base.id),
        "head_sha": str(head.id),
        "merge_sha": str(merge.id) if merge is not None else None,
        "commits": [commit_dict(c) for c in commits],
        "files": files,
        "diff": diff,
        "linked_issues": [],
        "review_comments": [],
        "labels": [],
        "fork_of": None,
        "flags": [],
        "repo_meta": None,
        "source": {
            "kind": "git",
            "method": method,
            "repo": repo_name,
            "pr": number,
            "commit": str((merge or head).id),
            "crawled_at": iso_time((merge or head).commit_time),
            "missing": [],
        },
    }


def pull_refs(repo: pygit2.Repository) -> dict[int, pygit2.Oid]:
    refs = {}
    for name in repo.listall_references():
        if m := PULL_REF.match(name):
            refs[int(m.group(1))] = repo.references[name].peel(pygit2.Commit).id
    return refs


def merge_commits(repo: pygit2.Repository) -> dict[int, str]:
    """PR number → the commit that merged it on the default branch ("Merge pull request #N" or "… (#N)"),
    read from subjects only: for sources that know a PR but not whether or how it landed."""
    found: dict[int, str] = {}
    for commit in repo.walk(default_tip(repo).id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE):
        subject = commit.message.partition("\n")[0].strip()
        m = MERGE_SUBJECT.match(subject) if len(commit.parents) >= 2 else SQUASH_SUBJECT.match(subject)
        if m:
            found.setdefault(int(m.group(1) if len(commit.parents) >= 2 else m.group(2)), str(commit.id))
    return found


def find_pulls(repo: pygit2.Repository, repo_name: str) -> Iterator[dict]:
    """Every PR found in the mirror, merged ones first in history order (oldest first), then unmerged pull refs."""
    tip = default_tip(repo)
    refs = pull_refs(repo)
    seen: set[int] = set()
    history = repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for commit in history:
        subject, body = split_message(commit.message)
        if len(commit.parents) >= 2 and (m := MERGE_SUBJECT.match(subject)):
            number = int(m.group(1))
            if number in seen:
                continue
            mainline, head = commit.parents[0], commit.parents[1]
            base = repo[repo.merge_base(mainline.id, head.id)]
            title, pr_body = split_message(body) if body else (subject, "")
            seen.add(number)
            yield _record(repo, repo_name, number, title=title, body=pr_body, author=m.group(2), base=base,
                          head=head, merge=commit, commits=pr_commits(repo, head.id, [mainline.id]),
                          method="merge_commit")
        elif len(commit.parents) == 1 and (m := SQUASH_SUBJECT.match(subject)):
            number = int(m.group(2))
            if number in seen:
                continue
            parent = commit.parents[0]
            commits = [commit]
            if number in refs and refs[number] != commit.id:
                commits = pr_commits(repo, refs[number], [parent.id]) or [commit]
            seen.add(number)
            yield _record(repo, repo_name, number, title=m.group(1), body=body, author=commit.author.name,
                          base=parent, head=commit, merge=commit, commits=commits, method="squash")
    for number in sorted(set(refs) - seen):
        head = repo[refs[number]]
        merged = head.id == tip.id or repo.descendant_of(tip.id, head.id)
        if merged:  # fast-forwarded: the PR's own commits cannot be told from main's; take the last one
            base = head.parents[0] if head.parents else head
            commits = [head]
        else:
            base = repo[repo.merge_base(tip.id, head.id)]
            commits = pr_commits(repo, head.id, [base.id])
        title, body = split_message(head.message)
        yield _record(repo, repo_name, number, title=title, body=body, author=head.author.name, base=base,
                      head=head, merge=head if merged else None, commits=commits, method="pull_ref")
