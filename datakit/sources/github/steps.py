"""The pipeline step of the `sources.github` stage: crawl → filter → code from the mirror (or REST) → link → records.

Units: `repos` (written = crawled; filtered: licence; quarantined: unavailable, mirror failed) and `pulls`
(written; filtered: unmerged, bot_author; quarantined: missing_commit). PRs without a linked issue are written
with the flag `no_linked_issue` and counted in `flags.no_linked_issue`. A transient API failure that outlasts the
retry budget fails the task: the rerun resumes from the checkpoints.
"""

from __future__ import annotations

from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.pulls.filters import is_bot, license_allowed
from datakit.pulls.linking import find_links
from datakit.pulls.records import MissingCommit, attach_issues, fill_from_mirror
from datakit.sources.git_mirror import MirrorError, RepoSpec, ensure_mirror
from datakit.sources.github.settings import CrawlSettings

UNAVAILABLE = (401, 404, 410, 451)  # gone, private, or blocked: quarantine the repository, do not retry


class GitHubCrawlSource(CountingStep):
    """Tasks split the repository list (`repos[rank::world_size]`); each owns its repositories' state."""

    name = "🐙 github crawl"
    type = "📖 - READER"

    def __init__(self, repos: list[RepoSpec], state_dir: str, mirrors_dir: str, quarantine_dir: str,
                 settings: CrawlSettings, limit: int = -1):
        super().__init__("sources.github", quarantine_dir)
        self.repos = repos
        self.state_dir = state_dir
        self.mirrors_dir = mirrors_dir
        self.settings = settings
        self.limit = limit

    def _client(self):
        from pathlib import Path

        from datakit.sources.github.cache import ETagCache
        from datakit.sources.github.client import GitHubClient, RetryPolicy
        from datakit.sources.github.tokens import TokenPool

        s = self.settings
        policy = RetryPolicy(max_retries=s.max_retries, backoff=s.backoff, timeout=s.timeout, max_wait=s.max_wait)
        return GitHubClient(TokenPool.from_env(s.tokens_env, s.tokens_file or None), s.api_url,
                            s.graphql_url or None, ETagCache(Path(self.state_dir) / "http_cache"), policy)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from datakit.sources.github.client import GitHubError
        from datakit.sources.github.crawl import RepoCrawler

        if data:
            yield from data
        mine = self.repos[rank::world_size]
        if not mine:
            return
        client = self._client()
        crawler = RepoCrawler(client, self.state_dir, self.settings.page_size)
        emitted = 0
        try:
            for spec in mine:
                self.read("repos")
                try:
                    meta = crawler.metadata(spec.name)
                    if not license_allowed((meta.get("license") or {}).get("spdx_id"), self.settings.licenses):
                        self.filter_out("repos", "license")
                        continue
                    mirror = ensure_mirror(spec, self.mirrors_dir, self.settings.fetch) if self.settings.code == "mirror" else None
                    state = crawler.crawl(spec.name)
                except GitHubError as exc:
                    if exc.status not in UNAVAILABLE:
                        raise  # transient beyond the retry budget: fail the task, the rerun resumes
                    self.reject("repos", _repo_row(spec), "repo_unavailable", client.tokens.redact(str(exc)), rank)
                    continue
                except MirrorError as exc:
                    self.reject("repos", _repo_row(spec), "mirror_failed", str(exc), rank)
                    continue
                self.written("repos")
                for record in self._records(spec.name, meta, state, mirror, client, rank):
                    if 0 <= self.limit <= emitted:
                        return
                    emitted += 1
                    yield as_document(record)
        finally:
            for key, value in sorted(client.stats.items()):
                self.stat_update(f"api.{key}", value=value)
            self.quarantine.close()

    def _records(self, repo: str, meta: dict, state, mirror, client, rank: int):
        from datakit.sources.github import convert

        repo_meta = convert.repo_meta(meta)
        for node in state.pulls():
            self.read("pulls")
            record, closing_refs, closing_issues = convert.pull_request(repo, node, repo_meta)
            if not node.get("mergedAt"):
                self.filter_out("pulls", "unmerged")
                continue
            if self.settings.skip_bots and is_bot(record["author"]):
                self.filter_out("pulls", "bot_author")
                continue
            try:
                if mirror is not None:
                    fill_from_mirror(record, mirror)
                else:
                    self._code_from_api(record, client)
            except MissingCommit as exc:
                self.reject("pulls", record, "missing_commit", str(exc), rank)
                continue
            links = find_links(repo, record["number"], record["title"], record["body"],
                               [c["message"] for c in record["commits"]], closing_refs)
            issues = {**state.issues(link.key for link in links), **closing_issues}
            attach_issues(record, links, issues)
            if "no_linked_issue" in record["flags"]:
                self.stat_update("flags.no_linked_issue")
            self.written("pulls")
            yield record

    @staticmethod
    def _code_from_api(record: dict, client) -> None:
        """Without a mirror: files from REST (GraphQL has no previous path for renames), the diff as GitHub's
        `application/vnd.github.diff`. Two requests per PR, both ETag-cached."""
        from datakit.sources.github import convert
        from datakit.sources.github.client import DIFF

        path = f"/repos/{record['repo']}/pulls/{record['number']}"
        record["files"] = convert.rest_files(list(client.paginate(f"{path}/files")))
        record["diff"], _ = client.get(path, accept=DIFF)
        record["source"]["missing"] = sorted(set(record["source"]["missing"]) - {"diff", "files"})


def _repo_row(spec: RepoSpec) -> dict:
    return {"id": spec.name, "name": spec.name, "url": spec.url}
