"""A GitHub REST v3 + GraphQL v4 client that survives what the API does under load.

- **Tokens**: a `TokenPool`; each request takes the token with the most quota left.
- **Primary rate limit** (`X-RateLimit-Remaining: 0`, or a GraphQL `RATE_LIMITED` error): the token is marked
  spent until `X-RateLimit-Reset` and the request moves to another token; when all are spent, the client waits for
  the earliest reset (at most `max_wait` seconds, else a clear error). The reset is an epoch second of GitHub's
  clock: it is turned into a wait with the response's `Date` header (server time), so a client clock that runs
  ahead of GitHub's does not retry before the reset. A request answered "rate limited" more often than the pool
  can explain (`len(tokens) + max_retries` times) fails instead of looping.
- **Secondary rate limits** (403/429 with `Retry-After`, or a 403 saying "secondary rate limit" or, in the older
  wording, "abuse detection mechanism"): wait as told;
  without `Retry-After`, at least `secondary_wait` seconds (60: GitHub's documented advice), doubling on each
  repeat; same token, and each counts as an attempt.
- **Bad credentials** (401): the token is taken out of the pool (`token #i`, never its value) and the request
  moves to another; with none left, `BadCredentials` stops the crawl (it is never a property of a repository).
- **5xx, dropped connections, timeouts, truncated or malformed bodies, GraphQL server errors** (HTTP 200 with an
  INTERNAL / TIMEOUT error or "Something went wrong while executing your query", partial data or none): bounded retries with exponential backoff
  and full jitter. After `max_retries` the error says the method, the URL, the last status and what went wrong —
  never a token (tokens travel in the Authorization header only, and every message goes through `redact`).
  Such errors are `transient` (a rerun may succeed); other 4xx answers are permanent for that resource.
- **Pagination**: REST `Link: <…>; rel="next"`; GraphQL cursors are the caller's (pageInfo).
- **Conditional requests**: GETs go through an `ETagCache`; a 304 returns the cached body and costs no quota.

Every request is counted in `stats` (requests, by outcome), so a crawl can report requests per PR.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import orjson
import requests
from loguru import logger

from datakit.sources.github.cache import ETagCache
from datakit.sources.github.tokens import TokenPool

JSON = "application/vnd.github+json"
DIFF = "application/vnd.github.diff"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_ORIGIN = re.compile(r"<https?://[^/>]+")
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


_GRAPHQL_SERVER_TYPES = {"INTERNAL", "SERVICE_UNAVAILABLE", "TIMEOUT"}


def _graphql_server_error(error: dict) -> bool:
    """A GraphQL error that is GitHub's failure, not an answer about the data (NOT_FOUND, FORBIDDEN, …): typed
    INTERNAL / SERVICE_UNAVAILABLE / TIMEOUT, or untyped "Something went wrong while executing your query" (its
    documented answer to a query that timed out)."""
    if error.get("type") in _GRAPHQL_SERVER_TYPES:
        return True
    return not error.get("type") and str(error.get("message", "")).startswith("Something went wrong")


class GitHubError(RuntimeError):
    """A request that failed for good: `status` is the last HTTP status (None when no response came);
    `transient`: it failed on retries, limits or the network, not on an answer about the resource itself."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None, transient: bool = False):
        super().__init__(message, status, url, transient)  # all in `args`: it pickles across worker processes
        self.message, self.status, self.url, self.transient = message, status, url, transient

    def __str__(self) -> str:
        return self.message


class BadCredentials(GitHubError):
    """Every token of the pool was refused (401): nothing more can be crawled; stop, mark nothing done."""

    def __init__(self, message: str, status: int | None = 401, url: str | None = None, transient: bool = False):
        super().__init__(message, status, url, transient)


class GraphQLError(GitHubError):
    def __init__(self, message: str, errors: list[dict], url: str, *_):
        super().__init__(message, 200, url)
        self.args = (message, errors, url)
        self.errors = errors


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6  # attempts after the first, for transient failures and secondary limits
    backoff: float = 1.0  # seconds; attempt k waits uniform(0, min(backoff_max, backoff * 2**k))
    backoff_max: float = 60.0
    max_wait: float = 3600.0  # the longest wait for a rate limit to reset before giving up
    timeout: float = 30.0  # connect and read timeout per request
    secondary_wait: float = 60.0  # least wait after a secondary limit without Retry-After (GitHub: "at least one minute")
    min_reset_wait: float = 1.0  # least wait for a primary reset (the Date header has 1 s resolution)


class _Retry(Exception):
    def __init__(self, why: str, status: int | None = None, wait: float | None = None):
        super().__init__(why)
        self.why, self.status, self.wait = why, status, wait


class GitHubClient:
    def __init__(self, tokens: TokenPool, api_url: str = "https://api.github.com", graphql_url: str | None = None,
                 cache: ETagCache | None = None, policy: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep, user_agent: str = "datakit"):
        self.tokens = tokens
        self.api_url = api_url.rstrip("/")
        self.graphql_url = graphql_url or f"{self.api_url}/graphql"
        self.cache = cache
        self.policy = policy
        self.sleep = sleep
        self.stats: Counter = Counter()
        self._rng = random.Random()
        self.skew = 0.0  # client clock − GitHub's clock (from the last response's Date header), seconds
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "X-GitHub-Api-Version": "2022-11-28"})

    # ------------------------------------------------------------------------------------------------ public
    def get(self, path_or_url: str, params: dict | None = None, accept: str = JSON) -> tuple[Any, str]:
        """GET a REST resource, ETag-cached: (parsed JSON, or text for other media types; the Link header)."""
        url = self._url(path_or_url, params)
        cached = self.cache.get(url, accept) if self.cache else None
        headers = {"Accept": accept}
        if cached:
            headers["If-None-Match"] = cached[0]
        resp, body = self._request("GET", url, headers=headers, parse=accept == JSON, not_modified_ok=bool(cached))
        if resp.status_code == 304:
            self.stats["not_modified"] += 1
            # the cache is keyed by path: its Link URLs may name the API's old address
            link = _ORIGIN.sub(lambda _: f"<{_origin(url)}", cached[2])
            return (orjson.loads(cached[1]) if accept == JSON else cached[1]), link
        link = resp.headers.get("Link", "")
        if self.cache and resp.headers.get("ETag"):
            self.cache.put(url, accept, resp.headers["ETag"], resp.text, link)
        return body, link

    def paginate(self, path: str, params: dict | None = None) -> Iterator[Any]:
        """Every item of a paginated REST list, following `Link: rel="next"`."""
        url: str | None = self._url(path, {"per_page": 100, **(params or {})})
        while url:
            body, link = self.get(url)
            yield from body
            m = _LINK_NEXT.search(link)
            url = m.group(1) if m else None

    def graphql(self, query: str, variables: dict) -> tuple[dict, list[dict]]:
        """Run a GraphQL query: (data, errors). Errors that leave no data raise GraphQLError; partial data comes
        back with its errors (e.g. NOT_FOUND for one aliased issue)."""
        _, body = self._request("POST", self.graphql_url, json_body={"query": query, "variables": variables},
                                headers={"Accept": "application/json"}, parse=True, graphql=True)
        errors = body.get("errors") or []
        if body.get("data") is None:
            raise GraphQLError(f"POST {self.graphql_url}: GraphQL errors: "
                               f"{self.tokens.redact('; '.join(e.get('message', '?') for e in errors))}",
                               errors, self.graphql_url)
        return body["data"], errors

    # ------------------------------------------------------------------------------------------------ internals
    def _url(self, path_or_url: str, params: dict | None) -> str:
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url.lstrip('/')}"
        if params:
            url = requests.Request("GET", url, params=params).prepare().url
        return url

    def _request(self, method: str, url: str, *, headers: dict, parse: bool, json_body: dict | None = None,
                 graphql: bool = False, not_modified_ok: bool = False) -> tuple[requests.Response, Any]:
        attempt = limited = secondary = 0
        last = "no attempt"
        while True:
            if not self.tokens.usable():
                raise BadCredentials(
                    f"{method} {url}: GitHub refused every token (401 Bad credentials: token "
                    f"{self.tokens.names(self.tokens.revoked)} of {self.tokens.origin}); replace them and rerun",
                    401, url)
            index, wait = self.tokens.pick()
            if wait > 0:
                if wait > self.policy.max_wait:
                    raise GitHubError(f"{method} {url}: every token's rate limit is spent for {wait:.0f} s more "
                                      f"(max_wait {self.policy.max_wait:.0f} s)", 403, url, transient=True)
                logger.warning(f"{method} {url}: all {self.tokens.usable()} tokens rate-limited; waiting {wait:.1f} s")
                self.stats["waited_for_reset"] += 1
                self.sleep(wait)
                continue
            try:
                return self._attempt(method, url, index, headers, json_body, parse, graphql, not_modified_ok)
            except _Retry as r:
                if r.why == "bad credentials":
                    continue  # another token, or BadCredentials above: not an attempt
                if r.why == "primary rate limit":
                    limited += 1  # another token, or the wait above; bounded in case the resets lie
                    if limited > len(self.tokens) + self.policy.max_retries:
                        raise GitHubError(f"{method} {url}: rate limited {limited} times in a row although every "
                                          f"reset was waited for; last: {r.status} (primary rate limit)",
                                          r.status, url, transient=True) from None
                    continue
                last = f"{r.status or 'no response'} ({r.why})"
                if attempt >= self.policy.max_retries:
                    raise GitHubError(f"{method} {url}: gave up after {attempt + 1} attempts; last: {last}",
                                      r.status, url, transient=True) from None
                if r.wait is not None:
                    delay = r.wait
                elif r.why == "secondary rate limit":  # no Retry-After: at least a minute, doubling
                    delay = min(self.policy.max_wait, self.policy.secondary_wait * 2 ** secondary)
                    secondary += 1
                else:
                    delay = self._rng.uniform(0, min(self.policy.backoff_max, self.policy.backoff * 2 ** attempt))
                attempt += 1
                self.stats["retries"] += 1
                logger.warning(f"{method} {url}: {last}; retry {attempt}/{self.policy.max_retries} in {delay:.2f} s "
                               f"(token #{index + 1})")
                self.sleep(delay)

    def _attempt(self, method, url, index, headers, json_body, parse, graphql, not_modified_ok):
        auth = {"Authorization": f"bearer {self.tokens.token(index)}"}
        self.stats["requests"] += 1
        self.stats["graphql" if graphql else "rest"] += 1
        try:
            resp = self._session.request(method, url, headers={**headers, **auth}, json=json_body,
                                         timeout=self.policy.timeout, allow_redirects=True)
            content = resp.content  # a dropped or truncated body raises here
        except _TRANSIENT as exc:
            self.stats["connection_errors"] += 1
            raise _Retry(self.tokens.redact(type(exc).__name__)) from None
        except requests.RequestException as exc:  # e.g. InvalidHeader, whose text quotes the Authorization value
            raise GitHubError(f"{method} {url}: {type(exc).__name__}: {self.tokens.redact(str(exc))}", None,
                              url) from None
        self._note_clock(resp)
        status = resp.status_code
        if status == 401:  # this token is refused, whatever the resource: out of the pool
            self.tokens.revoke(index)
            self.stats["bad_credentials"] += 1
            logger.warning(f"token #{index + 1}: 401 {self._message(resp)}; removed from the pool "
                           f"({self.tokens.usable()} left)")
            raise _Retry("bad credentials", status)
        self._note_quota(index, resp)
        if status == 304 and not_modified_ok:
            return resp, None
        if status in (403, 429):
            self._rate_limited(index, resp)  # raises _Retry for rate limits
            raise GitHubError(f"{method} {url}: {status} {self._message(resp)}", status, url)
        if status >= 500:
            self.stats[f"status_{status}"] += 1
            raise _Retry(f"server error {self._message(resp)}", status)
        if status >= 400 or status == 304:
            raise GitHubError(f"{method} {url}: {status} {self._message(resp)}", status, url)
        if not parse:
            return resp, resp.text
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            self.stats["malformed_bodies"] += 1
            raise _Retry(f"malformed JSON body ({len(content)} bytes)", status) from None
        if graphql and isinstance(body, dict):
            self._graphql_limits(index, resp, body)
        return resp, body

    def _note_clock(self, resp: requests.Response) -> None:
        """The offset of our clock from GitHub's, from the `Date` header (absent: assume none)."""
        try:
            server = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return
        self.skew = time.time() - server

    def _reset_at(self, header: str | None) -> float:
        """`X-RateLimit-Reset` (GitHub's epoch seconds) on our clock, at least `min_reset_wait` from now; a
        missing header means a minute."""
        now = time.time()
        if not header or not header.isdigit():
            return now + 60.0
        return max(float(header) + self.skew, now + self.policy.min_reset_wait)

    def _note_quota(self, index: int, resp: requests.Response) -> None:
        remaining = resp.headers.get("X-RateLimit-Remaining")
        reset = resp.headers.get("X-RateLimit-Reset")
        self.tokens.update(index, int(remaining) if remaining and remaining.isdigit() else None,
                           float(reset) + self.skew if reset and reset.isdigit() else None)

    def _retry_after(self, value: str | None) -> float | None:
        """Retry-After as seconds, or as an HTTP date (then measured against the server's Date)."""
        if not value:
            return None
        if value.strip().isdigit():
            return float(value)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() + self.skew - time.time())
        except (TypeError, ValueError, IndexError):
            return None

    def _rate_limited(self, index: int, resp: requests.Response) -> None:
        retry_after = resp.headers.get("Retry-After")
        if resp.headers.get("X-RateLimit-Remaining") == "0" and not retry_after:
            self.stats["primary_rate_limited"] += 1
            self.tokens.exhaust(index, self._reset_at(resp.headers.get("X-RateLimit-Reset")))
            logger.warning(f"token #{index + 1}: primary rate limit spent; switching token")
            raise _Retry("primary rate limit", resp.status_code)
        text = resp.text.lower()
        # "abuse detection mechanism": the same limit in GitHub's older wording, still served by some endpoints
        if retry_after or "secondary rate limit" in text or "abuse detection" in text or resp.status_code == 429:
            self.stats["secondary_rate_limited"] += 1
            raise _Retry("secondary rate limit", resp.status_code, self._retry_after(retry_after))

    def _graphql_limits(self, index: int, resp: requests.Response, body: dict) -> None:
        for error in body.get("errors") or []:
            if error.get("type") == "RATE_LIMITED":
                self.stats["primary_rate_limited"] += 1
                self.tokens.exhaust(index, self._reset_at(resp.headers.get("X-RateLimit-Reset")))
                raise _Retry("primary rate limit", resp.status_code)
        for error in body.get("errors") or []:
            # GitHub's failure of its own (a query timeout, an internal error), answered with HTTP 200 and no or
            # partial data (a node it could not resolve comes back null): the same query again, with backoff —
            # taking the partial page would drop its null nodes for good once the cursor moved past them
            if _graphql_server_error(error):
                self.stats["graphql_server_errors"] += 1
                raise _Retry(f"GraphQL server error: {self.tokens.redact(str(error.get('message', '?'))[:200])}",
                             resp.status_code)

    def _message(self, resp: requests.Response) -> str:
        try:
            text = orjson.loads(resp.content).get("message", "")
        except (orjson.JSONDecodeError, AttributeError):
            text = resp.text[:200]
        return self.tokens.redact(str(text))
