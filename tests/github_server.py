"""A GitHub-compatible HTTP server on loopback, for the crawl tests and the crawl benchmark.

It speaks the parts of REST v3 and GraphQL v4 datakit uses, shaped as GitHub documents them: JSON bodies,
`X-RateLimit-*` headers, `Link` pagination, ETags and 304s (which cost no quota), keyset GraphQL cursors,
GraphQL `errors` (NOT_FOUND, RATE_LIMITED) beside partial `data`. Each token has a quota that refills
`reset_after` seconds after it runs out. Faults are injected on schedule: the n-th GraphQL or REST request
gets a 429 / 403 secondary limit with Retry-After (or without: `403-secondary-bare`), a 502 / 503, a dropped
connection, a truncated body, a malformed JSON body, or a slow answer. The repositories it hosts are real git
repositories: every sha is real.

The bodies are GitHub's documented ones: 401 `Bad credentials` for a token it does not know, 406 `too_large`
for a diff over 300 files (`HostedRepo.errors`), 404 with `documentation_url` and `status`, 301 for a renamed
repository to `/repositories/{id}` (as GitHub redirects) with a `Location` header. The server's clock is
`time.time() + clock_offset`: its `Date` header and `X-RateLimit-Reset` follow it (a client clock ahead of
GitHub's is a negative offset).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pygit2

from datakit.sources.git_pulls import diff_files, find_pulls


ABUSE = {"message": "You have triggered an abuse detection mechanism. Please wait a few minutes before you try again.",
         "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#abuse-rate-limits"}
GRAPHQL_TIMEOUT = ("Something went wrong while executing your query. This may be the result of a timeout, or it could "
                   "be a GitHub bug. Please include `8A5C:3B2E:1F0D5C:2A1B3C:65F0A1B2` when reporting this issue.")


def _null_first_node(payload: dict) -> dict:
    """GitHub's partial answer: the first node of the answer's first connection null, an INTERNAL error there."""
    def walk(value, path):
        if isinstance(value, dict):
            if isinstance(value.get("nodes"), list) and value["nodes"]:
                value["nodes"][0] = None
                return [*path, "nodes", 0]
            for key, inner in value.items():
                if (found := walk(inner, [*path, key])) is not None:
                    return found
        return None

    where = walk(payload.get("data"), [])
    if where is not None:
        payload.setdefault("errors", []).append({"type": "INTERNAL", "path": where,
                                                 "message": "Something went wrong while executing your query."})
    return payload


@dataclass
class Fault:
    # 429 | 403-secondary | 403-secondary-bare | 403-abuse (the older wording, no Retry-After) | 502 | 503 | drop |
    # truncate | malformed | slow | graphql-timeout (200, data null, "Something went wrong…") | graphql-null-node
    # (200, the first node of a connection null, an INTERNAL error at its path)
    kind: str
    route: str  # graphql | rest
    at: int  # the n-th request of the route (1-based) gets it
    retry_after: int = 1


@dataclass
class HostedRepo:
    full_name: str
    meta: dict  # REST repository object
    pulls: dict[int, dict] = field(default_factory=dict)  # number → GraphQL PullRequest node (our query's shape)
    issues: dict[int, dict] = field(default_factory=dict)  # number → GraphQL Issue node (IssueFields)
    diffs: dict[int, str] = field(default_factory=dict)
    files: dict[int, list[dict]] = field(default_factory=dict)  # REST file objects
    errors: dict[tuple[int, str], tuple[int, dict]] = field(default_factory=dict)  # (PR, diff|files) → status, body


DOCS = "https://docs.github.com/rest"
BAD_CREDENTIALS = {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
DIFF_TOO_LARGE = {"message": "Sorry, the diff exceeded the maximum number of files (300). Consider using 'List pull "
                             "requests files' API or locally cloning the repository instead.",
                  "errors": [{"resource": "PullRequest", "field": "diff", "code": "too_large"}],
                  "documentation_url": "https://docs.github.com/rest/pulls/pulls#list-pull-requests-files",
                  "status": "406"}
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                        "If you reach out to GitHub Support for help, please include the request ID "
                        "ABCD:1234:5678:9ABC:DEF0.",
             "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}


def not_found(doc: str = "https://docs.github.com/rest") -> dict:
    return {"message": "Not Found", "documentation_url": doc, "status": "404"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def repo_object(full_name: str, license_spdx: str | None = "MIT", fork_of: str | None = None, stars: int = 10,
                default_branch: str = "main") -> dict:
    owner, name = full_name.split("/")
    obj = {"id": int(hashlib.sha256(full_name.encode()).hexdigest()[:8], 16), "name": name, "full_name": full_name,
           "owner": {"login": owner}, "private": False, "fork": fork_of is not None,
           "html_url": f"https://github.com/{full_name}", "stargazers_count": stars,
           "default_branch": default_branch,
           "license": {"key": license_spdx.lower(), "spdx_id": license_spdx} if license_spdx else None}
    if fork_of:
        obj["parent"] = obj["source"] = {"full_name": fork_of}
    return obj


def issue_node(repo: str, number: int, title: str, body: str, author: str, created: float,
               comments: list[tuple[str, str, float]] = (), state: str = "CLOSED") -> dict:
    return {"number": number, "title": title, "body": body, "state": state, "createdAt": iso(created),
            "closedAt": iso(created + 86400) if state == "CLOSED" else None, "author": {"login": author},
            "repository": {"nameWithOwner": repo},
            "comments": {"nodes": [{"databaseId": number * 1000 + i, "body": b, "createdAt": iso(t),
                                    "author": {"login": a}} for i, (a, b, t) in enumerate(comments)]}}


def host_git_repo(path: str | Path, full_name: str, meta: dict | None = None,
                  extras: dict[int, dict] | None = None, issues: list[dict] = (),
                  with_files: bool = True) -> HostedRepo:
    """Host a real git repository: every PR `find_pulls` sees (merged or not) becomes a PullRequest node with
    the real shas; `extras[number]` overrides node fields (title, body, author, reviews, closing issue numbers
    as `closing: [n]`, labels, updatedAt…)."""
    repo = pygit2.Repository(str(path))
    hosted = HostedRepo(full_name, meta or repo_object(full_name))
    hosted.issues = {i["number"]: i for i in issues}
    for pr in find_pulls(repo, full_name):
        n = pr["number"]
        extra = dict((extras or {}).get(n, {}))
        merge = repo[pr["merge_sha"]] if pr["merge_sha"] else None
        head = pr["head_sha"]
        if merge is not None and len(merge.parents) == 1 and f"refs/pull/{n}/head" in repo.references:
            head = str(repo.references[f"refs/pull/{n}/head"].target)  # squash: the PR branch, as GitHub reports
        merged_at = pr["merged_at"]
        updated = extra.pop("updatedAt", merged_at or pr["created_at"])
        closing = extra.pop("closing", [])
        commits = [{"commit": {"oid": c["sha"], "message": c["message"], "committedDate": c["committed_at"],
                               "author": {"name": c["author"]}, "parents": {"nodes": [{"oid": p} for p in c["parents"]]}}}
                   for c in pr["commits"]]
        node = {"number": n, "title": pr["title"], "body": pr["body"], "createdAt": pr["created_at"],
                "updatedAt": updated, "mergedAt": merged_at, "merged": merged_at is not None,
                "author": {"login": pr["author"]}, "baseRefName": "main",
                "baseRefOid": str(merge.parents[0].id) if merge is not None and merge.parents else pr["base_sha"],
                "headRefOid": head, "mergeCommit": {"oid": pr["merge_sha"]} if pr["merge_sha"] else None,
                "labels": {"nodes": []},
                "commits": {"totalCount": len(commits), "nodes": commits[:100]},
                "reviews": {"nodes": []}}
        node.update(extra)
        node["_closing"] = closing
        hosted.pulls[n] = node
        if with_files:
            base = repo[pr["base_sha"]]
            files, diff = diff_files(repo, base, repo[head])
            hosted.diffs[n] = diff
            status = {"deleted": "removed"}
            hosted.files[n] = [{"filename": f["path"], "status": status.get(f["status"], f["status"]),
                                "additions": f["additions"], "deletions": f["deletions"],
                                "changes": f["additions"] + f["deletions"],
                                **({"previous_filename": f["old_path"]} if f.get("old_path") else {})}
                               for f in files]
    return hosted


_FIRSTS = {  # how our queries cut each nested connection: GitHub returns the first N nodes and the totalCount
    "labels": r"labels\(first: (\d+)\)", "closing": r"closingIssuesReferences\(first: (\d+)",
    "reviews": r"reviews\(first: (\d+)\)", "review_comments": r"reviews\(first: \d+\).*?comments\(first: (\d+)\)",
    "issue_comments": r"fragment IssueFields on Issue \{.*?comments\(first: (\d+)\)",
}


def _firsts(query: str) -> dict[str, int]:
    found = {k: re.search(v, query, re.S) for k, v in _FIRSTS.items()}
    return {k: int(m[1]) for k, m in found.items() if m}


def _cut(nodes: list, first: int | None) -> dict:
    """A connection as GitHub answers `first: N` with totalCount (N absent: the query did not ask for it)."""
    return {"totalCount": len(nodes), "nodes": nodes[:first] if first is not None else nodes}


def _cut_issue(issue: dict, firsts: dict) -> dict:
    return {**issue, "comments": _cut(issue["comments"]["nodes"], firsts.get("issue_comments"))}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client killed mid-answer is expected here
        pass


class FakeGitHub:
    def __init__(self, repos: list[HostedRepo], tokens: dict[str, int], reset_after: float = 2.0,
                 faults: list[Fault] = (), redirects: dict[str, str] | None = None, clock_offset: float = 0.0):
        self.repos = {r.full_name.lower(): r for r in repos}
        self.limit = dict(tokens)
        self.remaining = dict(tokens)
        self.reset_at = {t: 0.0 for t in tokens}
        self.reset_after = reset_after
        self.faults = list(faults)
        self.redirects = {k.lower(): v for k, v in (redirects or {}).items()}  # renamed repositories: 301
        self.clock_offset = clock_offset
        self.rest_errors: dict[str, tuple[int, dict]] = {}  # REST path → (status, body) it always answers
        self.counts = {"graphql": 0, "rest": 0}
        self.log: list[tuple[str, str, int]] = []  # (route, path, status)
        self.on_request: Callable[[str, int], None] | None = None  # (route, n) before the answer: e.g. a kill
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "FakeGitHub":
        handler = type("Handler", (_Handler,), {"github": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def now(self) -> float:
        return time.time() + self.clock_offset

    def requests(self, route: str | None = None) -> int:
        return sum(1 for r, _, status in self.log if route in (None, r))

    # ------------------------------------------------------------------------------------------ rate limits
    def charge(self, token: str) -> tuple[bool, dict]:
        """Take one unit of quota: (allowed, rate-limit headers)."""
        now = self.now()
        with self._lock:
            if self.remaining[token] <= 0 and now >= self.reset_at[token]:
                self.remaining[token] = self.limit[token]
            if self.remaining[token] == self.limit[token]:
                self.reset_at[token] = now + self.reset_after
            allowed = self.remaining[token] > 0
            if allowed:
                self.remaining[token] -= 1
            return allowed, self.quota_headers(token)

    def quota_headers(self, token: str) -> dict:
        return {"X-RateLimit-Limit": str(self.limit[token]), "X-RateLimit-Remaining": str(self.remaining[token]),
                "X-RateLimit-Reset": str(int(self.reset_at[token]) + 1),  # GitHub's epoch seconds "X-RateLimit-Resource": "core",
                "X-RateLimit-Used": str(self.limit[token] - self.remaining[token])}

    # ------------------------------------------------------------------------------------------ GraphQL
    def graphql(self, query: str, variables: dict) -> dict:
        repo = self.repos.get(f"{variables.get('owner')}/{variables.get('name')}".lower())
        if repo is None:
            return {"data": {"repository": None}, "errors": [{"type": "NOT_FOUND", "path": ["repository"],
                    "message": f"Could not resolve to a Repository with the name '{variables.get('name')}'."}]}
        firsts = _firsts(query)
        if query.lstrip().startswith("query PullRequests"):
            return {"data": {"rateLimit": {"cost": 1, "remaining": 4999, "resetAt": iso(time.time() + 3600)},
                             "repository": {"pullRequests": self._pull_page(repo, variables, firsts)}}}
        if query.lstrip().startswith("query ClosingIssues"):
            p = repo.pulls.get(variables["number"])
            if p is None:
                return {"data": {"repository": {"pullRequest": None}}, "errors": [{"type": "NOT_FOUND"}]}
            issues = [_cut_issue(repo.issues[i], firsts) for i in p["_closing"] if i in repo.issues]
            start = int(variables.get("after") or 0)
            chunk = issues[start:start + 50]
            return {"data": {"repository": {"pullRequest": {"closingIssuesReferences": {
                "totalCount": len(issues), "nodes": chunk,
                "pageInfo": {"hasNextPage": start + 50 < len(issues), "endCursor": str(start + len(chunk))}}}}}}
        if query.lstrip().startswith("query Issues"):
            data, errors = {}, []
            for alias, number in re.findall(r"(\w+): issue\(number: (\d+)\)", query):
                node = repo.issues.get(int(number))
                data[alias] = node if node is None else _cut_issue(node, firsts)
                if node is None:
                    errors.append({"type": "NOT_FOUND", "path": ["repository", alias],
                                   "message": f"Could not resolve to an Issue with the number of {number}."})
            return {"data": {"repository": data}, **({"errors": errors} if errors else {})}
        return {"errors": [{"message": "unknown operation"}]}

    def _pull_page(self, repo: HostedRepo, v: dict, firsts: dict) -> dict:
        key = lambda p: (p["updatedAt"], p["number"])  # noqa: E731  GitHub's cursors are keyset cursors
        ordered = sorted(repo.pulls.values(), key=key)
        if v.get("after"):
            after = tuple(json.loads(base64.b64decode(v["after"]).decode().removeprefix("cursor:v2:")))
            ordered = [p for p in ordered if key(p) > after]
        page = ordered[: v["first"]]
        nodes = []
        for p in page:
            node = {k: val for k, val in p.items() if k != "_closing"}
            closing = [_cut_issue(repo.issues[i], firsts) for i in p["_closing"] if i in repo.issues]
            node["closingIssuesReferences"] = _cut(closing, firsts.get("closing"))
            node["labels"] = _cut(p["labels"]["nodes"], firsts.get("labels"))
            reviews = [{**r, "comments": _cut((r.get("comments") or {}).get("nodes") or [], firsts.get("review_comments"))}
                       for r in p["reviews"]["nodes"]]
            node["reviews"] = _cut(reviews, firsts.get("reviews"))
            nodes.append(node)
        end = (base64.b64encode(("cursor:v2:" + json.dumps(list(key(page[-1])))).encode()).decode()
               if page else None)
        return {"pageInfo": {"hasNextPage": len(ordered) > len(page), "endCursor": end}, "nodes": nodes}

    # ------------------------------------------------------------------------------------------ REST
    def rest(self, path: str, query: dict, accept: str) -> tuple[int, object, dict]:
        """(status, JSON-able body or text, extra headers)."""
        if path in self.rest_errors:
            status, body = self.rest_errors[path]
            return status, body, {}
        if m := re.match(r"^/repositories/(\d+)(/.*)?$", path):  # where GitHub's 301 for a renamed repo points
            repo = next((r for r in self.repos.values() if r.meta.get("id") == int(m[1])), None)
            if repo is None:
                return 404, not_found(), {}
            return self._rest_repo(repo, path, m[2] or "", query, accept)
        m = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)?$", path)
        if not m:
            return 404, not_found(), {}
        full = f"{m[1]}/{m[2]}".lower()
        if full in self.redirects:
            target = self.repos[self.redirects[full].lower()]
            return 301, {"message": "Moved Permanently", "url": f"{self.url}/repositories/{target.meta['id']}{m[3] or ''}",
                         "documentation_url": "https://docs.github.com/v3/#http-redirects"}, \
                {"Location": f"{self.url}/repositories/{target.meta['id']}{m[3] or ''}"}
        repo = self.repos.get(full)
        if repo is None:
            return 404, not_found("https://docs.github.com/rest/repos/repos#get-a-repository"), {}
        return self._rest_repo(repo, path, m[3] or "", query, accept)

    def _rest_repo(self, repo: HostedRepo, path: str, rest: str, query: dict, accept: str) -> tuple[int, object, dict]:
        if rest == "":
            return 200, repo.meta, {}
        if rest == "/pulls":
            items = [self._rest_pull(repo, p) for p in sorted(repo.pulls.values(), key=lambda p: -p["number"])]
            return self._paged(path, query, items)
        if m2 := re.match(r"^/pulls/(\d+)(/commits|/files|/reviews|/comments)?$", rest):
            p = repo.pulls.get(int(m2[1]))
            if p is None:
                return 404, not_found("https://docs.github.com/rest/pulls/pulls#get-a-pull-request"), {}
            what = "files" if m2[2] == "/files" else "diff" if accept == "application/vnd.github.diff" else None
            if (p["number"], what) in repo.errors:
                status, body = repo.errors[(p["number"], what)]
                return status, body, {}
            if m2[2] in ("/reviews", "/comments"):
                reviews = p["reviews"]["nodes"]
                if m2[2] == "/reviews":
                    return self._paged(path, query, [{"id": r["databaseId"], "body": r["body"], "state": "COMMENTED",
                                                      "submitted_at": r["createdAt"], "user": r["author"]} for r in reviews])
                return self._paged(path, query, [
                    {"id": c["databaseId"], "pull_request_review_id": r["databaseId"], "body": c["body"],
                     "created_at": c["createdAt"], "path": c.get("path"), "user": c["author"]}
                    for r in reviews for c in (r.get("comments") or {}).get("nodes") or []])
            if m2[2] == "/commits":
                return self._paged(path, query, [{"sha": c["commit"]["oid"], "commit": {"message": c["commit"]["message"]}}
                                                 for c in p["commits"]["nodes"]])
            if m2[2] == "/files":  # GitHub lists at most 3,000 files of a PR
                return self._paged(path, query, repo.files.get(p["number"], [])[:3000])
            if accept == "application/vnd.github.diff":
                return 200, repo.diffs.get(p["number"], ""), {"Content-Type": "text/plain; charset=utf-8"}
            return 200, self._rest_pull(repo, p), {}
        if m2 := re.match(r"^/issues/(\d+)/labels$", rest):
            p = repo.pulls.get(int(m2[1]))
            if p is None:
                return 404, not_found(), {}
            return self._paged(path, query, [{"name": label["name"]} for label in p["labels"]["nodes"]])
        if m2 := re.match(r"^/issues/(\d+)(/comments)?$", rest):
            i = repo.issues.get(int(m2[1]))
            if i is None:
                return 404, not_found("https://docs.github.com/rest/issues/issues#get-an-issue"), {}
            if m2[2]:
                return self._paged(path, query, [{"id": c["databaseId"], "body": c["body"], "created_at": c["createdAt"],
                                                  "user": {"login": c["author"]["login"]}} for c in i["comments"]["nodes"]])
            return 200, {"number": i["number"], "title": i["title"], "body": i["body"], "state": i["state"].lower(),
                         "created_at": i["createdAt"], "user": i["author"]}, {}
        return 404, not_found(), {}

    def _rest_pull(self, repo: HostedRepo, p: dict) -> dict:
        return {"number": p["number"], "title": p["title"], "body": p["body"], "state": "closed",
                "user": p["author"], "created_at": p["createdAt"], "updated_at": p["updatedAt"],
                "merged_at": p["mergedAt"], "merge_commit_sha": (p.get("mergeCommit") or {}).get("oid"),
                "base": {"ref": "main", "sha": p["baseRefOid"]}, "head": {"sha": p["headRefOid"]},
                "url": f"{self.url}/repos/{repo.full_name}/pulls/{p['number']}"}

    def _paged(self, path: str, query: dict, items: list) -> tuple[int, list, dict]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []
        last = max(1, -(-len(items) // per_page))
        if page < last:
            links.append(f'<{self.url}{path}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            links.append(f'<{self.url}{path}?{urlencode({**query, "page": last})}>; rel="last"')
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    github: FakeGitHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def date_time_string(self, timestamp=None) -> str:  # the Date header, on the server's clock
        return email.utils.formatdate(self.github.now(), usegmt=True)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        parts = auth.split(None, 1)
        return parts[1] if len(parts) == 2 and parts[0].lower() in ("bearer", "token") else None

    def _handle(self, method: str) -> None:
        gh = self.github
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = "graphql" if url.path == "/graphql" else "rest"
        with gh._lock:
            gh.counts[route] += 1
            n = gh.counts[route]
        if gh.on_request:
            gh.on_request(route, n)
        fault = next((f for f in gh.faults if f.route == route and f.at == n), None)
        token = self._token()
        if token not in gh.limit:
            return self._send(401, BAD_CREDENTIALS, {}, route)
        if fault and fault.kind == "drop":
            gh.log.append((route, url.path, 0))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault and fault.kind == "slow":
            time.sleep(fault.retry_after)
        if fault and fault.kind in ("429", "403-secondary", "403-secondary-bare"):
            status = int(fault.kind[:3])
            headers = {} if fault.kind.endswith("bare") else {"Retry-After": str(fault.retry_after)}
            return self._send(status, SECONDARY, headers, route)
        if fault and fault.kind in ("502", "503"):
            return self._send(int(fault.kind), {"message": "Server Error"}, {}, route)
        if fault and fault.kind == "403-abuse":
            return self._send(403, ABUSE, {"X-RateLimit-Remaining": "4000"}, route)
        if fault and fault.kind == "graphql-timeout":
            return self._send(200, {"data": None, "errors": [{"message": GRAPHQL_TIMEOUT}]}, {}, route)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        etag_in = self.headers.get("If-None-Match")
        if route == "graphql":
            allowed, quota = gh.charge(token)
            if not allowed:
                return self._send(200, {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]},
                                  quota, route)
            body = json.loads(raw)
            status, payload, extra = 200, gh.graphql(body["query"], body.get("variables") or {}), {}
            if fault and fault.kind == "graphql-null-node":
                payload = _null_first_node(payload)
        else:
            status, payload, extra = gh.rest(url.path, query, self.headers.get("Accept", ""))
            text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True)
            etag = f'W/"{hashlib.sha256(text.encode()).hexdigest()[:32]}"'
            if status == 200 and etag_in == etag:  # a conditional hit costs no quota
                return self._send(304, None, {"ETag": etag, **gh.quota_headers(token)}, route)
            allowed, quota = gh.charge(token)
            if not allowed:
                return self._send(403, {"message": "API rate limit exceeded for user ID 1.",
                                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                                  quota, route)
            if status == 200:
                extra = {**extra, "ETag": etag}
            extra = {**quota, **extra}
        if fault and fault.kind == "malformed":
            return self._send_bytes(200, b'{"data": {"repository": {"pullRequests": {"nodes": [{"numb',
                                    {"Content-Type": "application/json"}, route)
        if fault and fault.kind == "truncate":
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            gh.log.append((route, url.path, 200))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._send(status, payload, extra, route)

    def _send(self, status: int, payload, headers: dict, route: str) -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        ctype = headers.pop("Content-Type", "application/json; charset=utf-8")
        self._send_bytes(status, data, {"Content-Type": ctype, **headers}, route)

    def _send_bytes(self, status: int, data: bytes, headers: dict, route: str) -> None:
        self.github.log.append((route, urlsplit(self.path).path, status))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304:
            self.wfile.write(data)
