"""GitHub API objects → PullRecord parts. Pure: JSON in, dicts out (tested on literal fixtures)."""

from __future__ import annotations

from datakit.pulls.linking import Reference
from datakit.pulls.records import new_pull_record


def _login(obj: dict | None) -> str | None:
    return (obj or {}).get("login")


def _nodes(conn: dict | None) -> list[dict]:
    return [n for n in (conn or {}).get("nodes") or [] if n is not None]


def repo_meta(rest: dict) -> dict:
    """REST `GET /repos/{owner}/{repo}` → the PullRecord's `repo_meta`."""
    return {
        "fork": bool(rest.get("fork")),
        "parent": (rest.get("parent") or {}).get("full_name"),
        "source": (rest.get("source") or {}).get("full_name"),
        "license": (rest.get("license") or {}).get("spdx_id"),
        "stars": rest.get("stargazers_count"),
        "default_branch": rest.get("default_branch"),
        "former_names": list(rest.get("former_names") or []),  # names it was asked for before a rename (301)
    }


def issue(node: dict) -> dict:
    """A GraphQL Issue (IssueFields) → the issue dict `attach_issues` takes; comments oldest first."""
    comments = sorted(({"author": _login(c.get("author")), "body": c.get("body") or "", "created_at": c.get("createdAt")}
                       for c in _nodes(node.get("comments"))), key=lambda c: c["created_at"] or "")
    return {"repo": (node.get("repository") or {}).get("nameWithOwner"), "number": node["number"],
            "title": node.get("title") or "", "body": node.get("body") or "", "author": _login(node.get("author")),
            "state": (node.get("state") or "").lower() or None, "created_at": node.get("createdAt"),
            "closed_at": node.get("closedAt"), "comments": comments,
            "missing": list(node.get("_missing") or [])}  # what the crawl could not fetch (crawl.py)


def _commit(node: dict) -> dict:
    c = node["commit"]
    return {"sha": c["oid"], "message": c.get("message") or "", "author": (c.get("author") or {}).get("name"),
            "parents": [p["oid"] for p in _nodes(c.get("parents"))], "committed_at": c.get("committedDate")}


def _review_texts(reviews: list[dict]) -> list[str]:
    """Review bodies and review comments, oldest first (ties by id), empty ones left out."""
    items = []
    for r in reviews:
        items.append((r.get("createdAt") or "", r.get("databaseId") or 0, r.get("body") or ""))
        items += [(c.get("createdAt") or "", c.get("databaseId") or 0, c.get("body") or "")
                  for c in _nodes(r.get("comments"))]
    return [body for _, _, body in sorted(items) if body.strip()]


def pull_request(repo: str, node: dict, meta: dict | None) -> tuple[dict, list[Reference], dict]:
    """A GraphQL PullRequest node → (record without code, GitHub's closing references, their issues by key)."""
    closing = [issue(n) for n in _nodes(node.get("closingIssuesReferences"))]
    commits = [_commit(n) for n in _nodes(node.get("commits"))]
    missing = ["diff", "files", *(node.get("_missing") or [])]  # _missing: connections the crawl could not complete
    if (node.get("commits") or {}).get("totalCount", len(commits)) > len(commits):
        missing.append("commits")  # more than one page: the mirror lists them all
    record = new_pull_record(
        repo=repo, number=node["number"], title=node.get("title"), body=node.get("body"),
        author=_login(node.get("author")), created_at=node.get("createdAt"), updated_at=node.get("updatedAt"),
        merged_at=node.get("mergedAt"), base_sha=node.get("baseRefOid"), head_sha=node.get("headRefOid"),
        merge_sha=(node.get("mergeCommit") or {}).get("oid"), kind="github", method="graphql", commits=commits,
        review_comments=_review_texts(_nodes(node.get("reviews"))),
        labels=[label["name"] for label in _nodes(node.get("labels"))], repo_meta=meta, missing=missing)
    refs = [Reference(i["repo"] or repo, i["number"]) for i in closing]
    return record, refs, {(r.repo.lower(), r.number): i for r, i in zip(refs, closing)}


def rest_files(items: list[dict]) -> list[dict]:
    """REST `GET /pulls/{n}/files` items → PullRecord files (REST has `previous_filename`, GraphQL does not)."""
    status = {"added": "added", "removed": "deleted", "renamed": "renamed", "copied": "added"}
    return [{"path": f["filename"], "status": status.get(f.get("status"), "modified"),
             "old_path": f.get("previous_filename"), "additions": f.get("additions", 0),
             "deletions": f.get("deletions", 0)} for f in items]
