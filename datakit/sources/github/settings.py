"""The crawl's settings: the `sources.github` stage's options (minus its inputs), passed to every task."""

from __future__ import annotations

from dataclasses import dataclass, field

from datakit.pulls.filters import DEFAULT_LICENSES


@dataclass
class CrawlSettings:
    api_url: str = "https://api.github.com"
    graphql_url: str = ""  # default: <api_url>/graphql
    tokens_env: str = "GITHUB_TOKENS"
    tokens_file: str = ""
    page_size: int = 50
    code: str = "mirror"  # mirror: commits, files, diff from a pygit2 mirror; api: files and diff from REST
    fetch: bool = True  # mirrors: clone/fetch (False: use the mirrors on disk)
    licenses: list = field(default_factory=lambda: list(DEFAULT_LICENSES))  # [] = any licence
    skip_bots: bool = True
    max_retries: int = 6
    backoff: float = 1.0
    timeout: float = 30.0
    max_wait: float = 3600.0
    secondary_wait: float = 60.0  # least wait after a secondary rate limit without Retry-After (GitHub: one minute)
    mirror_fallback: bool = True  # code: api: a PR whose REST diff/files is refused (406 too large…) uses the mirror
