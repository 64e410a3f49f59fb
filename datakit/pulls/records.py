"""Assembling PullRecords from what a crawl knows: the discussion from GitHub (API or GH Archive), the code from a
git mirror (the SWE-RL approach). Pure functions apart from `fill_from_mirror`, which reads the mirror.
"""

from __future__ import annotations

import pygit2

from datakit.pulls.linking import Link, hints
from datakit.sources.git_pulls import (History, lookup_commit, change_diff, commit_dict, diff_files, patch_id, pr_commits,
                                      pull_id)


class MissingCommit(LookupError):
    """The mirror lacks a commit the record names (force-pushed away, or the mirror is stale)."""


def new_pull_record(*, repo: str, number: int, title: str | None, body: str | None, author: str | None,
                    created_at: str | None, updated_at: str | None, merged_at: str | None, base_sha: str | None,
                    head_sha: str | None, merge_sha: str | None, kind: str, method: str, commits: list | None = None,
                    files: list | None = None, diff: str = "", review_comments: list | None = None,
                    labels: list | None = None, repo_meta: dict | None = None, missing: list | None = None) -> dict:
    """A PullRecord (schemas/pull_record.schema.json) before linking and before the mirror fills in the code."""
    repo_meta = repo_meta or None
    return {
        "id": pull_id(repo, number, base_sha or "", head_sha or ""),
        "repo": repo,
        "number": number,
        "title": title or "",
        "body": body or "",
        "author": author,
        "created_at": created_at,
        "merged_at": merged_at,
        "updated_at": updated_at,
        "base_sha": base_sha or "",
        "head_sha": head_sha or "",
        "merge_sha": merge_sha,
        "commits": commits or [],
        "files": files or [],
        "diff": diff,
        "linked_issues": [],
        "review_comments": review_comments or [],
        "labels": labels or [],
        # the fork network's root (GitHub's `source`) before the direct parent: a fork of a fork of a SWE-bench
        # repository names that repository, so decontamination catches it by name
        "fork_of": (repo_meta or {}).get("source") or (repo_meta or {}).get("parent"),
        "flags": [],
        "repo_meta": repo_meta,
        "source": {"kind": kind, "method": method, "repo": repo, "pr": number, "commit": merge_sha,
                   "crawled_at": updated_at or merged_at, "missing": sorted(set(missing or []))},
    }


def attach_issues(record: dict, links: list[Link], issues: dict[tuple[str, int], dict]) -> dict:
    """Fill `linked_issues` from the links and the fetched issues ({(repo.lower(), number): issue}), add the
    hints (comments before the first commit) and the `no_linked_issue` flag."""
    first_commit = record["commits"][0].get("committed_at") if record["commits"] else None
    linked = []
    for link in links:
        issue = issues.get(link.key)
        comments = list(issue.get("comments") or []) if issue else []
        linked.append({
            "repo": link.repo, "number": link.number,
            "title": (issue or {}).get("title") or "", "body": (issue or {}).get("body") or "",
            "author": (issue or {}).get("author"), "state": (issue or {}).get("state"),
            "created_at": (issue or {}).get("created_at"), "closed_at": (issue or {}).get("closed_at"),
            "comments": comments, "hints": hints(comments, first_commit or record["created_at"]),
            "link_rules": list(link.rules), "fetched": issue is not None,
        })
    record["linked_issues"] = linked
    record["flags"] = sorted(set(record["flags"]) - {"no_linked_issue"} | (set() if linked else {"no_linked_issue"}))
    return record


def fill_from_mirror(record: dict, repo: pygit2.Repository, history: History | None = None) -> dict:
    """Verify where the PR landed and take base, commits, files, diff and patch-id from the mirror, as the samples
    stage will read them. `history` defaults to `History.of(repo)` (one walk of the default branch, cached).

    The merge sha GitHub reports is often a test merge (`refs/pull/N/merge`) that never reached the branch, so it
    is trusted only when the branch reaches it; otherwise the landed commit is looked for (`History.find_landed`:
    a merge or squash subject naming the PR, the head reachable, the head's tree or patch-id landed) and
    `source.landing` says how; none found: merge_sha null, flag `landing_not_found`, the code still from the head.
    head = the PR's head commit (GitHub's `refs/pull/N/head` is mirrored), else the landed commit;
    target = the landing commit's first parent (the branch just before the PR landed), else the API's base;
    base = merge-base(target, head): GitHub's three-dot PR diff. Raises MissingCommit."""
    history = history if history is not None else History.of(repo)
    found = history.find_landed(record["number"], record["head_sha"], record["merge_sha"], record["base_sha"])
    merge, how = found if found is not None else (None, None)
    flags = set(record.get("flags") or []) - {"landing_not_found"}
    if merge is None:
        flags.add("landing_not_found")
    head = lookup_commit(repo, record["head_sha"])
    if head is None or (merge is not None and head.id == merge.id):
        # no PR head in the mirror, or the head is what landed: the landed commit's own change
        if merge is None or not merge.parents:
            raise MissingCommit(f"neither head {record['head_sha'] or '(none)'} nor a landed commit with a parent "
                                f"(reported merge {record['merge_sha'] or '(none)'}) is in the mirror")
        head, base, commits = merge, merge.parents[0], [merge]
    else:
        landing = history.landing(merge.id) if merge is not None else None
        if landing is not None and landing.id != head.id and head.id in history.landed:
            target = landing.parents[0]  # the head is reachable: the chain commit that brought it in
        elif merge is not None and merge.parents and merge.id != head.id:
            target = merge.parents[0]
        else:
            target = lookup_commit(repo, record["base_sha"])
        if target is None:
            raise MissingCommit(f"base {record['base_sha'] or '(none)'} of {head.id} is not in the mirror")
        base_oid = repo.merge_base(target.id, head.id)
        if base_oid is None:
            raise MissingCommit(f"{head.id} shares no history with {target.id}")
        base, commits = repo[base_oid], pr_commits(repo, head.id, [target.id])
    diff = change_diff(repo, base, head)
    files, text = diff_files(repo, base, head, diff)
    record.update(base_sha=str(base.id), head_sha=str(head.id), commits=[commit_dict(c) for c in commits],
                  files=files, diff=text, patch_id=patch_id(diff), merge_sha=str(merge.id) if merge else None,
                  flags=sorted(flags),
                  id=pull_id(record["repo"], record["number"], str(base.id), str(head.id)))
    record["source"]["landing"] = how
    if merge is not None:
        record["source"]["commit"] = str(merge.id)
    record["source"]["missing"] = sorted(set(record["source"]["missing"]) - {"diff", "files", "commits", "base_sha"})
    return record


def link_and_attach(record: dict, issues: dict[tuple[str, int], dict], closing_refs=()) -> dict:
    """Link the PR to the issues its title, body and commit messages close (plus GraphQL's closing references),
    then attach those issues' texts from `issues` ({(repo.lower(), number): issue dict}, see attach_issues)."""
    from datakit.pulls.linking import find_links

    links = find_links(record["repo"], record["number"], record["title"], record["body"],
                       [c["message"] for c in record["commits"]], closing_refs)
    return attach_issues(record, links, issues)
