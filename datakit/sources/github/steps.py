"""The pipeline step of the `sources.github` stage: crawl → filter → code from the mirror (or REST) → link → records.

Units: `repos` (written = crawled; filtered: licence; quarantined: unavailable, mirror failed) and `pulls`
(written; filtered: unmerged, bot_author; quarantined: missing_commit, api_error, mirror_failed). PRs without a
linked issue are written with the flag `no_linked_issue` and counted in `flags.no_linked_issue`.

What stops what:
- a transient API failure (5xx, network, limits) that outlasts the retry budget fails the task: the rerun resumes
  from the checkpoints;
- `BadCredentials` (every token refused with 401) fails the task too, before anything of it is marked done;
- a permanent answer about one repository (404, 410, 451, other 4xx) quarantines it (`repo_unavailable`);
- a permanent answer about one PR's code (`code: api`: 406 `too_large` for diffs over 300 files or 20,000 lines,
  404, …) takes that PR's code from the git mirror (`mirror_fallback`, cloned on first need) or, without one,
  quarantines the PR (`api_error`, with the status and GitHub's message); the crawl goes on.
A repository GitHub answers for under a new name (301) is crawled and written under its canonical `full_name`;
the name asked for is kept in `repo_meta.former_names`.
"""

from __future__ import annotations

from loguru import logger

from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.pulls.filters import is_bot, license_allowed
from datakit.pulls.linking import find_links
from datakit.pulls.records import MissingCommit, attach_issues, fill_from_mirror
from datakit.sources.git_mirror import MirrorError, RepoSpec, ensure_mirror
from datakit.sources.github.settings import CrawlSettings

def _permanent(exc) -> bool:
    """A 4xx answer about the resource itself (not a limit, not the token): retrying cannot change it."""
    from datakit.sources.github.client import BadCredentials

    return not exc.transient and not isinstance(exc, BadCredentials) and 400 <= (exc.status or 0) < 500


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
        self._fallback: dict[str, object] = {}  # code: api → repository → its mirror (or the MirrorError)

    def _client(self):
        from pathlib import Path

        from datakit.sources.github.cache import ETagCache
        from datakit.sources.github.client import GitHubClient, RetryPolicy
        from datakit.sources.github.tokens import TokenPool

        s = self.settings
        policy = RetryPolicy(max_retries=s.max_retries, backoff=s.backoff, timeout=s.timeout, max_wait=s.max_wait,
                             secondary_wait=s.secondary_wait)
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
        licence_filtered: list[str | None] = []
        try:
            for spec in mine:
                self.read("repos")
                try:
                    meta = crawler.metadata(spec.name)
                    spec, meta = _canonical(spec, meta)
                    licence = (meta.get("license") or {}).get("spdx_id")
                    if not license_allowed(licence, self.settings.licenses):
                        self.filter_out("repos", "license")
                        self.stat_update(f"license.{licence or 'none'}")
                        licence_filtered.append(licence)
                        continue
                    mirror = ensure_mirror(spec, self.mirrors_dir, self.settings.fetch) if self.settings.code == "mirror" else None
                    state = crawler.crawl(spec.name)
                except GitHubError as exc:
                    if not _permanent(exc):
                        raise  # transient beyond the retry budget, or no usable token: fail the task; a rerun resumes
                    self.reject("repos", _repo_row(spec), "repo_unavailable", client.tokens.redact(str(exc)), rank)
                    continue
                except MirrorError as exc:
                    self.reject("repos", _repo_row(spec), "mirror_failed", str(exc), rank)
                    continue
                self.written("repos")
                for record in self._records(spec, meta, state, mirror, client, rank):
                    if 0 <= self.limit <= emitted:
                        return
                    emitted += 1
                    yield as_document(record)
        finally:
            for key, value in sorted(client.stats.items()):
                self.stat_update(f"api.{key}", value=value)
            self.quarantine.close()
            if licence_filtered:
                unknown = sum(1 for lic in licence_filtered if lic in (None, "NOASSERTION"))
                logger.warning(f"sources.github: {len(licence_filtered)} of {len(mine)} repositories left out by the "
                               f"licence allow-list ({unknown} with no licence GitHub recognises, as most small "
                               "repositories); `licenses: []` (crawl --licenses any) admits them all")

    def _records(self, spec: RepoSpec, meta: dict, state, mirror, client, rank: int):
        from datakit.sources.github import convert
        from datakit.sources.github.client import GitHubError

        repo = spec.name
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
                    try:
                        truncated = self._code_from_api(record, client)
                    except GitHubError as exc:
                        if not _permanent(exc):
                            raise
                        self._code_from_fallback(record, spec, client.tokens.redact(str(exc)))
                    else:
                        if truncated:  # the mirror has every file; without it the record says "files" is missing
                            self.stat_update("code.files_truncated")
                            if self.settings.mirror_fallback:
                                self._code_from_fallback(record, spec, f"{record['repo']}#{record['number']}: "
                                                         f"REST listed {REST_FILES_LIMIT} files, its limit")
            except MissingCommit as exc:
                self.reject("pulls", record, "missing_commit", str(exc), rank)
                continue
            except _NoCode as exc:
                self.reject("pulls", record, exc.reason, str(exc), rank)
                continue
            links = find_links(repo, record["number"], record["title"], record["body"],
                               [c["message"] for c in record["commits"]], closing_refs)
            issues = {**state.issues(link.key for link in links), **closing_issues}
            attach_issues(record, links, issues)
            if any((issues.get(link.key) or {}).get("missing") for link in links):
                record["source"]["missing"] = sorted({*record["source"]["missing"], "linked_issues.comments"})
            if "no_linked_issue" in record["flags"]:
                self.stat_update("flags.no_linked_issue")
            self.written("pulls")
            yield record

    def _code_from_fallback(self, record: dict, spec: RepoSpec, api_error: str) -> None:
        """The REST code of this PR is refused for good (406 too large, 404, …): take it from the mirror, or say
        why not (_NoCode). MissingCommit from the mirror propagates, with the API's answer in its message."""
        if not self.settings.mirror_fallback:
            raise _NoCode("api_error", f"{api_error} (mirror_fallback is off)")
        key = spec.name.lower()
        if key not in self._fallback:
            try:
                self._fallback[key] = ensure_mirror(spec, self.mirrors_dir, self.settings.fetch)
            except MirrorError as exc:
                self._fallback[key] = exc
        mirror = self._fallback[key]
        if isinstance(mirror, MirrorError):
            raise _NoCode("mirror_failed", f"{api_error}; the mirror fallback failed: {mirror}")
        try:
            fill_from_mirror(record, mirror)
        except MissingCommit as exc:
            raise MissingCommit(f"{api_error}; in the mirror: {exc}") from None
        self.stat_update("code.mirror_fallback")

    @staticmethod
    def _code_from_api(record: dict, client) -> bool:
        """Without a mirror: files from REST (GraphQL has no previous path for renames), the diff as GitHub's
        `application/vnd.github.diff`. Two requests per PR, both ETag-cached. True when the file list stopped at
        GitHub's limit (REST lists at most 3,000 files of a PR)."""
        from datakit.sources.github import convert
        from datakit.sources.github.client import DIFF

        path = f"/repos/{record['repo']}/pulls/{record['number']}"
        items = list(client.paginate(f"{path}/files"))
        record["files"] = convert.rest_files(items)
        record["diff"], _ = client.get(path, accept=DIFF)
        truncated = len(items) >= REST_FILES_LIMIT
        record["source"]["missing"] = sorted(set(record["source"]["missing"]) - {"diff", "files"}
                                             | ({"files"} if truncated else set()))
        return truncated


REST_FILES_LIMIT = 3000  # "Responses include a maximum of 3000 files" (List pull requests files)


class _NoCode(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _canonical(spec: RepoSpec, meta: dict) -> tuple[RepoSpec, dict]:
    """The repository under the name GitHub answers with (a renamed one is redirected with a 301), and its
    metadata with the former name kept. A default github.com URL follows the rename; an explicit one is kept."""
    name = meta.get("full_name") or spec.name
    if name.lower() == spec.name.lower():
        return spec, meta
    logger.info(f"{spec.name} is now {name} (renamed): crawling and writing it as {name}")
    url = f"https://github.com/{name}.git" if spec.url == f"https://github.com/{spec.name}.git" else spec.url
    former = sorted({*(meta.get("former_names") or []), spec.name})
    return RepoSpec(name, url), {**meta, "former_names": former}


def _repo_row(spec: RepoSpec) -> dict:
    return {"id": spec.name, "name": spec.name, "url": spec.url}
