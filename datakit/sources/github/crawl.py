"""Crawl one repository's pull requests through GraphQL, page by page, into a checkpointed journal.

PRs are listed oldest-updated first (`orderBy: UPDATED_AT ASC`); GitHub's cursors are keyset cursors, so a PR
updated after it was fetched moves behind the cursor. The checkpoint keeps the cursor after the last committed
page: a killed crawl resumes at the next page, and a later crawl continues from the same cursor and fetches only
the PRs updated since (the newest copy of a PR wins when the journal is read back).

State of a repository, `<state>/repos/<owner>__<name>/`:
- `journal.jsonl`: one JSON object per line, `{"pull": <GraphQL node>}` or `{"issue": <issue dict>}`, appended a
  page at a time and fsynced;
- `checkpoint.json`: `{cursor, journal_bytes, pages, pending}`, replaced atomically after the page is on disk
  (`pending`: issues closed by keyword only, still to fetch; they are batched across pages). Bytes past
  `journal_bytes` (a page appended by a crawl killed before its checkpoint) are cut off when the state is opened,
  so nothing is counted twice.

Connections GraphQL cut at `first: N` (labels, reviews and their comments, closing issues, issue comments; see
queries.py) are completed before the page is committed: over REST (labels, reviews, review comments, issue
comments, all pages) or GraphQL (closing issues). What could not be fetched (a permanent 4xx) is named in the
node's `_missing`, which convert.py carries into `source.missing`; a transient failure fails the page, which the
rerun fetches again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from datakit.pulls.linking import closing_references
from datakit.sources.github import convert
from datakit.sources.github.client import GitHubClient, GitHubError
from datakit.sources.github.queries import CLOSING_ISSUES, PULL_REQUESTS, issues_query

ISSUES_PER_REQUEST = 50


class StateError(RuntimeError):
    pass


class RepoState:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.journal = self.folder / "journal.jsonl"
        self._checkpoint = self.folder / "checkpoint.json"
        cp = json.loads(self._checkpoint.read_text()) if self._checkpoint.is_file() else {}
        self.cursor: str | None = cp.get("cursor")
        self.pages: int = cp.get("pages", 0)
        self.journal_bytes: int = cp.get("journal_bytes", 0)
        self.pending: list[int] = cp.get("pending", [])  # issue numbers to fetch in the next batch
        size = self.journal.stat().st_size if self.journal.is_file() else 0
        if size < self.journal_bytes:
            raise StateError(f"{self.journal}: {size} bytes, but the checkpoint committed {self.journal_bytes}")
        if size > self.journal_bytes:  # a page written by a crawl killed before its checkpoint: not committed
            with self.journal.open("r+b") as f:
                f.truncate(self.journal_bytes)
        self._pulls: dict[int, int] = {}  # number → offset of its newest line
        self._issues: dict[tuple[str, int], int] = {}
        self._index()

    def _index(self) -> None:
        if not self.journal.is_file():
            return
        with self.journal.open("rb") as f:
            offset = 0
            for line in f:
                entry = orjson.loads(line)
                if "pull" in entry:
                    self._pulls[entry["pull"]["number"]] = offset
                else:
                    self._issues[(entry["issue"]["repo"].lower(), entry["issue"]["number"])] = offset
                offset += len(line)

    def has_issue(self, key: tuple[str, int]) -> bool:
        return key in self._issues

    def commit_page(self, entries: list[dict], cursor: str | None, pending: list[int] = ()) -> None:
        lines = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in entries]
        data = b"".join(lines)
        with self.journal.open("ab") as f:
            offset = f.tell()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for e, line in zip(entries, lines):
            if "pull" in e:
                self._pulls[e["pull"]["number"]] = offset
            else:
                self._issues[(e["issue"]["repo"].lower(), e["issue"]["number"])] = offset
            offset += len(line)
        self.journal_bytes += len(data)
        self.cursor = cursor
        self.pending = sorted(pending)
        self.pages += 1
        tmp = self._checkpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cursor": cursor, "journal_bytes": self.journal_bytes, "pages": self.pages,
                                   "pending": self.pending}))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._checkpoint)

    def _read(self, f, offset: int) -> dict:
        f.seek(offset)
        return orjson.loads(f.readline())

    def pulls(self) -> Iterator[dict]:
        """The newest copy of every PR node, by number."""
        with self.journal.open("rb") as f:
            for number in sorted(self._pulls):
                yield self._read(f, self._pulls[number])["pull"]

    def issues(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict]:
        found = [k for k in keys if k in self._issues]
        if not found:
            return {}
        with self.journal.open("rb") as f:
            return {k: self._read(f, self._issues[k])["issue"] for k in found}

    def __len__(self) -> int:
        return len(self._pulls)


def state_folder(state_dir: str | Path, repo: str) -> Path:
    owner, name = repo.split("/", 1)
    return Path(state_dir) / "repos" / f"{owner}__{name}"


def _cut(conn: dict | None) -> bool:
    """True when GraphQL returned fewer nodes than the connection holds."""
    return bool(conn) and (conn.get("totalCount") or 0) > len(conn.get("nodes") or [])


def _issue_comment(c: dict) -> dict:
    """A REST issue comment → the GraphQL comment node IssueFields asks for."""
    return {"databaseId": c.get("id"), "body": c.get("body"), "createdAt": c.get("created_at"),
            "author": {"login": (c.get("user") or {}).get("login")}}


def _rest_reviews(reviews: list[dict], comments: list[dict]) -> list[dict]:
    """REST reviews and review comments (flat, with pull_request_review_id) → GraphQL review nodes."""
    by_review: dict = {}
    for c in comments:
        by_review.setdefault(c.get("pull_request_review_id"), []).append(
            {**_issue_comment(c), "path": c.get("path")})
    nodes = [{"databaseId": r.get("id"), "body": r.get("body"), "createdAt": r.get("submitted_at"),
              "author": {"login": (r.get("user") or {}).get("login")},
              "comments": {"nodes": by_review.pop(r.get("id"), [])}} for r in reviews]
    orphans = [c for key in sorted(by_review, key=str) for c in by_review[key]]
    if orphans:  # comments of a review the list did not return: kept, under an empty review
        nodes.append({"databaseId": None, "body": "", "createdAt": None, "author": None, "comments": {"nodes": orphans}})
    return nodes


def keyword_issue_numbers(repo: str, node: dict) -> set[int]:
    """Numbers of this repository's issues that the PR's title, body or commit messages close by keyword."""
    texts = [node.get("title"), node.get("body")]
    texts += [(c.get("commit") or {}).get("message") for c in (node.get("commits") or {}).get("nodes") or [] if c]
    return {r.number for t in texts for r in closing_references(t, repo)
            if r.repo.lower() == repo.lower() and r.number != node["number"]}


class RepoCrawler:
    def __init__(self, client: GitHubClient, state_dir: str | Path, page_size: int = 50):
        self.client = client
        self.state_dir = Path(state_dir)
        self.page_size = page_size

    def metadata(self, repo: str) -> dict:
        """REST repository metadata (fork, parent, source, licence, stars, default branch): ETag-cached."""
        body, _ = self.client.get(f"/repos/{repo}")
        return body

    def crawl(self, repo: str) -> RepoState:
        """Fetch the pages after the checkpoint (all of them the first time) and the issues they close."""
        state = RepoState(state_folder(self.state_dir, repo))
        owner, name = repo.split("/", 1)
        while True:
            data, _ = self.client.graphql(PULL_REQUESTS, {"owner": owner, "name": name, "first": self.page_size,
                                                          "after": state.cursor})
            if data.get("repository") is None:
                raise GitHubError(f"GraphQL: repository {repo} not found", 404)
            conn = data["repository"]["pullRequests"]
            nodes = [n for n in conn.get("nodes") or [] if n]
            for node in nodes:
                self._complete_pull(repo, node)
            page = conn.get("pageInfo") or {}
            last = not page.get("hasNextPage")
            pending = set(state.pending) | self._missing_issues(repo, nodes, state)
            entries: list[dict] = [{"pull": n} for n in nodes]
            if pending and (last or len(pending) >= ISSUES_PER_REQUEST):  # batch issues across pages
                entries += [{"issue": i} for i in self._fetch_issues(repo, sorted(pending))]
                pending = set()
            state.commit_page(entries, page.get("endCursor") or state.cursor, sorted(pending))
            if last:
                return state

    def _missing_issues(self, repo: str, nodes: list[dict], state: RepoState) -> set[int]:
        """Issues closed by keyword that GitHub's closing references do not carry, and not fetched yet."""
        wanted: set[int] = set()
        for node in nodes:
            # only this repository's: a manually linked issue of another repository may carry the same number
            embedded = {i["number"] for i in (node.get("closingIssuesReferences") or {}).get("nodes") or []
                        if i and ((i.get("repository") or {}).get("nameWithOwner") or repo).lower() == repo.lower()}
            wanted |= keyword_issue_numbers(repo, node) - embedded
        return {n for n in wanted if not state.has_issue((repo.lower(), n))}

    def _fetch_issues(self, repo: str, numbers: list[int]) -> list[dict]:
        owner, name = repo.split("/", 1)
        found = []
        for start in range(0, len(numbers), ISSUES_PER_REQUEST):
            chunk = numbers[start:start + ISSUES_PER_REQUEST]
            data, _ = self.client.graphql(issues_query(chunk), {"owner": owner, "name": name})
            repository = data.get("repository") or {}
            for n in chunk:
                if repository.get(f"i{n}"):
                    self._complete_issue(repository[f"i{n}"])
                    found.append(convert.issue(repository[f"i{n}"]) | {"repo": repo})
        return found

    # -- connections GraphQL cut -------------------------------------------------------------------------------
    def _fetch(self, missing: list[str], what: str, fetch):
        """fetch() or, on a permanent 4xx, None with `what` noted as missing; transient errors propagate."""
        try:
            return fetch()
        except GitHubError as exc:
            if exc.transient or not 400 <= (exc.status or 0) < 500:
                raise
            missing.append(what)
            return None

    def _complete_pull(self, repo: str, node: dict) -> None:
        missing: list[str] = []
        path = f"/repos/{repo}"
        n = node["number"]
        if _cut(node.get("labels")):
            items = self._fetch(missing, "labels", lambda: list(self.client.paginate(f"{path}/issues/{n}/labels")))
            if items is not None:
                node["labels"] = {"totalCount": len(items), "nodes": [{"name": i["name"]} for i in items]}
        reviews = node.get("reviews")
        if _cut(reviews) or any(_cut(r.get("comments")) for r in (reviews or {}).get("nodes") or [] if r):
            got = self._fetch(missing, "reviews", lambda: (list(self.client.paginate(f"{path}/pulls/{n}/reviews")),
                                                           list(self.client.paginate(f"{path}/pulls/{n}/comments"))))
            if got is not None:
                node["reviews"] = {"totalCount": len(got[0]), "nodes": _rest_reviews(*got)}
        if _cut(node.get("closingIssuesReferences")):
            items = self._fetch(missing, "closing_issues", lambda: self._closing_issues(repo, n))
            if items is not None:
                node["closingIssuesReferences"] = {"totalCount": len(items), "nodes": items}
        for issue in (node.get("closingIssuesReferences") or {}).get("nodes") or []:
            if issue:
                self._complete_issue(issue)
                if issue.get("_missing"):
                    missing.append("linked_issues.comments")
        if missing:
            node["_missing"] = sorted(set(missing))

    def _closing_issues(self, repo: str, number: int) -> list[dict]:
        owner, name = repo.split("/", 1)
        nodes, after = [], None
        while True:
            data, _ = self.client.graphql(CLOSING_ISSUES, {"owner": owner, "name": name, "number": number,
                                                           "after": after})
            pull = (data.get("repository") or {}).get("pullRequest")
            if pull is None:
                raise GitHubError(f"GraphQL: pull request {repo}#{number} not found", 404)
            conn = pull["closingIssuesReferences"]
            nodes += [i for i in conn.get("nodes") or [] if i]
            page = conn.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return nodes
            after = page.get("endCursor")

    def _complete_issue(self, issue: dict) -> None:
        if not _cut(issue.get("comments")):
            return
        where = (issue.get("repository") or {}).get("nameWithOwner")
        missing: list[str] = []
        items = self._fetch(missing, "comments", lambda: list(
            self.client.paginate(f"/repos/{where}/issues/{issue['number']}/comments")))
        if items is not None:
            issue["comments"] = {"totalCount": len(items), "nodes": [_issue_comment(c) for c in items]}
        else:
            issue["_missing"] = missing
