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
from datakit.sources.github.queries import PULL_REQUESTS, issues_query

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
            embedded = {i["number"] for i in (node.get("closingIssuesReferences") or {}).get("nodes") or [] if i}
            wanted |= keyword_issue_numbers(repo, node) - embedded
        return {n for n in wanted if not state.has_issue((repo.lower(), n))}

    def _fetch_issues(self, repo: str, numbers: list[int]) -> list[dict]:
        owner, name = repo.split("/", 1)
        found = []
        for start in range(0, len(numbers), ISSUES_PER_REQUEST):
            chunk = numbers[start:start + ISSUES_PER_REQUEST]
            data, _ = self.client.graphql(issues_query(chunk), {"owner": owner, "name": name})
            repository = data.get("repository") or {}
            found += [convert.issue(repository[f"i{n}"]) | {"repo": repo} for n in chunk if repository.get(f"i{n}")]
        return found
