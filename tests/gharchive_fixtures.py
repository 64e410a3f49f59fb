"""Writers of GH Archive hour files for the tests and the benchmark, in both payload eras.

Events are shaped as the Events API returns them (docs.github.com/en/rest/using-the-rest-api/github-event-types):
`id` (a digit string), `type`, `actor{id, login, display_login, gravatar_id, url, avatar_url}`,
`repo{id, name, url}`, `payload{...}`, `public`, `created_at`; keys in GH Archive's order, so the byte-level
prefilter sees what it sees in real files.

* full era (2015 to 2025-10-06): payloads carry REST pull request and issue objects (`full_pull`, `full_issue`).
* trimmed era (since 2025-10-07): `pull_request` is `url, id, node_id, number, head, base` (`stub_pull`, after
  octocrab's post-change fixture, XAMPPRocky/octocrab PR #826); "merged" is its own action; issue and comment
  objects lose `author_association`.

`early_scenario` and `later_scenario` are multi-PR, multi-issue histories spread over several hour files; the
tests state what they must aggregate to.
"""

from __future__ import annotations

import gzip
import zlib
from datetime import datetime, timezone
from pathlib import Path

import orjson

from datakit.sources.gharchive import hour_file_name

API = "https://api.github.com"


def _id(text: str) -> int:
    """A stable numeric id for a name (users, repositories)."""
    return zlib.crc32(text.encode()) + 1000


# the `*_url` fields of REST users and repositories: field name → path under the object's API URL
_USER_URLS = {"followers_url": "followers", "following_url": "following{/other_user}", "gists_url": "gists{/gist_id}",
              "starred_url": "starred{/owner}{/repo}", "subscriptions_url": "subscriptions",
              "organizations_url": "orgs", "repos_url": "repos", "events_url": "events{/privacy}",
              "received_events_url": "received_events"}
_REPO_URLS = {"forks_url": "forks", "keys_url": "keys{/key_id}", "collaborators_url": "collaborators{/collaborator}",
              "teams_url": "teams", "hooks_url": "hooks", "issue_events_url": "issues/events{/number}",
              "events_url": "events", "assignees_url": "assignees{/user}", "branches_url": "branches{/branch}",
              "tags_url": "tags", "blobs_url": "git/blobs{/sha}", "git_tags_url": "git/tags{/sha}",
              "git_refs_url": "git/refs{/sha}", "trees_url": "git/trees{/sha}", "statuses_url": "statuses/{sha}",
              "languages_url": "languages", "stargazers_url": "stargazers", "contributors_url": "contributors",
              "subscribers_url": "subscribers", "subscription_url": "subscription", "commits_url": "commits{/sha}",
              "git_commits_url": "git/commits{/sha}", "comments_url": "comments{/number}",
              "issue_comment_url": "issues/comments{/number}", "contents_url": "contents/{+path}",
              "compare_url": "compare/{base}...{head}", "merges_url": "merges",
              "archive_url": "{archive_format}{/ref}", "downloads_url": "downloads", "issues_url": "issues{/number}",
              "pulls_url": "pulls{/number}", "milestones_url": "milestones{/number}",
              "notifications_url": "notifications{?since,all,participating}", "labels_url": "labels{/name}",
              "releases_url": "releases{/id}", "deployments_url": "deployments"}


def _url_fields(base: str, paths: dict[str, str]) -> dict:
    return {name: f"{base}/{path}" for name, path in paths.items()}


def user(login: str) -> dict:
    """A REST user object, as nested in pull requests, issues and comments."""
    base = f"{API}/users/{login}"
    return {"login": login, "id": _id(login), "node_id": f"U_{_id(login)}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{_id(login)}?v=4", "gravatar_id": "",
            "url": base, "html_url": f"https://github.com/{login}", **_url_fields(base, _USER_URLS), "type": "User",
            "site_admin": False}


def actor(login: str) -> dict:
    return {"id": _id(login), "login": login, "display_login": login, "gravatar_id": "",
            "url": f"{API}/users/{login}", "avatar_url": f"https://avatars.githubusercontent.com/u/{_id(login)}?"}


def repo_ref(name: str) -> dict:
    return {"id": _id(name.lower()), "name": name, "url": f"{API}/repos/{name}"}


def event(event_id: int, kind: str, login: str, repo: str, payload: dict, created_at: str) -> dict:
    """The event envelope, keys in GH Archive's order."""
    return {"id": str(event_id), "type": kind, "actor": actor(login), "repo": repo_ref(repo), "payload": payload,
            "public": True, "created_at": created_at}


def label(name: str, repo: str) -> dict:
    return {"id": _id(repo + name), "node_id": f"LA_{_id(repo + name)}", "url": f"{API}/repos/{repo}/labels/{name}",
            "name": name, "color": "d73a4a", "default": False, "description": None}


def _branch(repo: str, ref: str, sha: str, full: bool) -> dict:
    small = {"id": _id(repo.lower()), "url": f"{API}/repos/{repo}", "name": repo.split("/")[1]}
    if not full:
        return {"ref": ref, "sha": sha, "repo": small}
    owner = repo.split("/")[0]
    base = f"{API}/repos/{repo}"
    return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha, "user": user(owner),
            "repo": {**small, "node_id": f"R_{small['id']}", "full_name": repo, "private": False,
                     "owner": user(owner), "html_url": f"https://github.com/{repo}", "description": "A project.",
                     "fork": False, **_url_fields(base, _REPO_URLS), "git_url": f"git://github.com/{repo}.git",
                     "ssh_url": f"git@github.com:{repo}.git", "clone_url": f"https://github.com/{repo}.git",
                     "svn_url": f"https://github.com/{repo}", "homepage": None, "created_at": "2012-05-01T10:00:00Z",
                     "updated_at": "2014-12-31T10:00:00Z", "pushed_at": "2014-12-31T10:00:00Z", "size": 2048,
                     "stargazers_count": 10, "watchers_count": 10, "language": "Python", "has_issues": True,
                     "has_downloads": True, "has_wiki": True, "has_pages": False, "forks_count": 3,
                     "mirror_url": None, "open_issues_count": 4, "forks": 3, "open_issues": 4, "watchers": 10,
                     "default_branch": "main"}}


def full_pull(repo: str, number: int, *, title: str, body: str | None, author: str, created_at: str,
              updated_at: str, head_sha: str, base_sha: str, state: str = "open", merged: bool | None = False,
              merged_at: str | None = None, merge_sha: str | None = None, labels: tuple[str, ...] = (),
              closed_at: str | None = None) -> dict:
    """A REST pull request object, as full-era payloads carry it. `merged=None` leaves the `merged` key out, as
    review and review comment events do."""
    pr = {"url": f"{API}/repos/{repo}/pulls/{number}", "id": _id(f"{repo}#{number}"),
          "node_id": f"PR_{_id(f'{repo}#{number}')}", "html_url": f"https://github.com/{repo}/pull/{number}",
          "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
          "issue_url": f"{API}/repos/{repo}/issues/{number}", "number": number, "state": state, "locked": False,
          "title": title, "user": user(author), "body": body, "created_at": created_at, "updated_at": updated_at,
          "closed_at": closed_at, "merged_at": merged_at, "merge_commit_sha": merge_sha, "assignee": None,
          "labels": [label(n, repo) for n in labels], "milestone": None, "requested_reviewers": [],
          "commits_url": f"{API}/repos/{repo}/pulls/{number}/commits",
          "review_comments_url": f"{API}/repos/{repo}/pulls/{number}/comments",
          "statuses_url": f"{API}/repos/{repo}/statuses/{head_sha}",
          "head": _branch(repo, f"topic-{number}", head_sha, True), "base": _branch(repo, "main", base_sha, True),
          "_links": {rel: {"href": f"{API}/repos/{repo}/pulls/{number}/{rel}"}
                     for rel in ("self", "html", "issue", "comments", "review_comments", "commits", "statuses")},
          "author_association": "CONTRIBUTOR"}
    if merged is not None:
        pr.update(merged=merged, mergeable=None, comments=1, review_comments=1, commits=2, additions=10,
                  deletions=2, changed_files=1)
    return pr


def stub_pull(repo: str, number: int, *, head_sha: str, base_sha: str) -> dict:
    """A trimmed-era pull request object (since 2025-10-07)."""
    return {"url": f"{API}/repos/{repo}/pulls/{number}", "id": _id(f"{repo}#{number}"),
            "node_id": f"PR_{_id(f'{repo}#{number}')}", "number": number,
            "head": _branch(repo, f"topic-{number}", head_sha, False), "base": _branch(repo, "main", base_sha, False)}


def full_issue(repo: str, number: int, *, title: str, body: str | None, author: str, created_at: str,
               updated_at: str, state: str = "open", closed_at: str | None = None, is_pull: bool = False,
               labels: tuple[str, ...] = (), trimmed: bool = False) -> dict:
    """A REST issue object; `is_pull` adds the `pull_request` key of a PR seen as an issue; `trimmed` leaves out
    `author_association` (trimmed era)."""
    issue = {"url": f"{API}/repos/{repo}/issues/{number}", "repository_url": f"{API}/repos/{repo}",
             "html_url": f"https://github.com/{repo}/issues/{number}", "id": _id(f"{repo}!{number}"),
             "node_id": f"I_{_id(f'{repo}!{number}')}", "number": number, "title": title, "user": user(author),
             "labels": [label(n, repo) for n in labels], "state": state, "locked": False, "assignee": None,
             "assignees": [], "milestone": None, "comments": 0, "created_at": created_at, "updated_at": updated_at,
             "closed_at": closed_at, "body": body}
    if not trimmed:
        issue["author_association"] = "NONE"
    if is_pull:
        issue["pull_request"] = {"url": f"{API}/repos/{repo}/pulls/{number}",
                                 "html_url": f"https://github.com/{repo}/pull/{number}"}
    return issue


def comment(comment_id: int, repo: str, number: int, *, author: str, body: str, created_at: str,
            trimmed: bool = False) -> dict:
    """An issue comment (IssueCommentEvent) or, with `pull_request_review_id`, a review comment."""
    c = {"url": f"{API}/repos/{repo}/issues/comments/{comment_id}",
         "html_url": f"https://github.com/{repo}/issues/{number}#issuecomment-{comment_id}", "id": comment_id,
         "node_id": f"IC_{comment_id}", "user": user(author), "created_at": created_at, "updated_at": created_at,
         "body": body}
    if not trimmed:
        c["author_association"] = "CONTRIBUTOR"
    return c


def review_comment(comment_id: int, repo: str, number: int, *, author: str, body: str, created_at: str,
                   commit: str, trimmed: bool = False) -> dict:
    c = comment(comment_id, repo, number, author=author, body=body, created_at=created_at, trimmed=trimmed)
    c.update(pull_request_review_id=comment_id + 1, diff_hunk="@@ -1,3 +1,4 @@", path="src/parser.py",
             position=3, commit_id=commit, original_commit_id=commit,
             pull_request_url=f"{API}/repos/{repo}/pulls/{number}")
    return c


def review(review_id: int, *, author: str, body: str | None, state: str, submitted_at: str, commit: str,
           trimmed: bool = False) -> dict:
    r = {"id": review_id, "node_id": f"PRR_{review_id}", "user": user(author), "body": body, "commit_id": commit,
         "submitted_at": submitted_at, "state": state}
    if not trimmed:
        r["author_association"] = "MEMBER"
    return r


# ---------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------


def event_line(ev: dict) -> bytes:
    return orjson.dumps(ev)


def write_hour(folder: Path, hour: datetime, events: list[dict] | list[bytes], level: int = 6) -> Path:
    """One hour file (`YYYY-MM-DD-H.json.gz`) holding `events` (dicts, or lines already encoded), one per line."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hour_file_name(hour)
    lines = [e if isinstance(e, bytes) else event_line(e) for e in events]
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=level, mtime=0))
    return path


def flushed_gzip(lines: list[bytes]) -> tuple[bytes, list[int]]:
    """A one-member gzip file of `lines` with a full flush after each, and the offset where each line's
    compressed bytes end: cutting the file inside line k's bytes leaves exactly k complete lines readable."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    out, ends = [], []
    for line in lines:
        out.append(comp.compress(line + b"\n") + comp.flush(zlib.Z_FULL_FLUSH))
        ends.append(sum(map(len, out)))
    out.append(comp.flush())
    return b"".join(out), ends


def hour(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d-%H").replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------------------------

SHA = {name: (name * 40)[:40] for name in ("a", "b", "c", "d", "e", "f")}
SHA.update(m10="1" * 40, m13="3" * 40, test11="2" * 40)


def early_scenario() -> dict[str, list[dict]]:
    """Full-era events over three hours of 2015-01-01, by hour ("2015-01-01-15" → events).

    Acme/Widgets: PR #10 (alice; reviewed, review comment seen twice, merged in the third hour and retitled),
    PR #11 (carol; closed without merging), PR #12 (dave; still open), issue #7 (erin; two comments, one seen
    twice, closed), an issue comment on PR #10 (not an issue). other/tool: PR #13 (heidi, merged), issue #1.
    """
    acme, tool = "Acme/Widgets", "other/tool"
    pr10 = dict(title="Fix overflow in parser", body="Fixes #7\n\nThe parser overflowed on long input.",
                author="alice", created_at="2015-01-01T15:01:00Z", head_sha=SHA["a"], base_sha=SHA["b"],
                labels=("bug",))
    pr11 = dict(title="Rewrite everything", body=None, author="carol", created_at="2015-01-01T15:20:00Z",
                head_sha=SHA["c"], base_sha=SHA["b"])
    issue7 = dict(title="Parser overflows on long input", body="Steps: feed 10 MB.", author="erin",
                  created_at="2015-01-01T14:00:00Z")
    review_c = review_comment(5001, acme, 10, author="bob", body="Use a guard here", created_at="2015-01-01T15:40:00Z",
                              commit=SHA["a"])
    issue7_comment_1 = comment(9001, acme, 7, author="frank", body="Same here with 5 MB.",
                               created_at="2015-01-01T15:10:00Z")
    return {
        "2015-01-01-15": [
            event(2489651001, "IssuesEvent", "erin", acme, {"action": "opened", "issue": full_issue(
                acme, 7, **issue7, updated_at="2015-01-01T14:00:00Z")}, "2015-01-01T15:00:30Z"),
            event(2489651002, "PullRequestEvent", "alice", acme, {"action": "opened", "number": 10, "pull_request":
                  full_pull(acme, 10, **pr10, updated_at="2015-01-01T15:01:00Z")}, "2015-01-01T15:01:00Z"),
            event(2489651003, "WatchEvent", "zed", acme, {"action": "started"}, "2015-01-01T15:02:00Z"),
            event(2489651004, "IssueCommentEvent", "frank", acme, {"action": "created", "issue": full_issue(
                acme, 7, **issue7, updated_at="2015-01-01T15:10:00Z"), "comment": issue7_comment_1},
                "2015-01-01T15:10:00Z"),
            event(2489651005, "PullRequestEvent", "carol", acme, {"action": "opened", "number": 11, "pull_request":
                  full_pull(acme, 11, **pr11, updated_at="2015-01-01T15:20:00Z")}, "2015-01-01T15:20:00Z"),
            event(2489651006, "PullRequestReviewCommentEvent", "bob", acme, {"action": "created", "comment": review_c,
                  "pull_request": full_pull(acme, 10, **pr10, merged=None, updated_at="2015-01-01T15:40:00Z")},
                  "2015-01-01T15:40:00Z"),
            event(2489651007, "PushEvent", "alice", tool, {"push_id": 1, "size": 1, "ref": "refs/heads/main",
                  "head": SHA["e"], "before": SHA["f"], "commits": []}, "2015-01-01T15:50:00Z"),
        ],
        "2015-01-01-16": [
            event(2489652001, "PullRequestReviewEvent", "bob", acme, {"action": "created", "review": review(
                7001, author="bob", body="Looks good", state="approved", submitted_at="2015-01-01T16:05:00Z",
                commit=SHA["a"]), "pull_request": full_pull(acme, 10, **pr10, merged=None,
                                                            updated_at="2015-01-01T16:05:00Z")},
                "2015-01-01T16:05:00Z"),
            event(2489652002, "PullRequestReviewEvent", "bob", acme, {"action": "created", "review": review(
                7002, author="bob", body="", state="approved", submitted_at="2015-01-01T16:06:00Z",
                commit=SHA["a"]), "pull_request": full_pull(acme, 10, **pr10, merged=None,
                                                            updated_at="2015-01-01T16:06:00Z")},
                "2015-01-01T16:06:00Z"),
            event(2489652003, "IssueCommentEvent", "alice", acme, {"action": "created", "issue": full_issue(
                acme, 7, **issue7, updated_at="2015-01-01T16:10:00Z"), "comment": comment(
                9002, acme, 7, author="alice", body="Fix in #10.", created_at="2015-01-01T16:10:00Z")},
                "2015-01-01T16:10:00Z"),
            event(2489652004, "IssueCommentEvent", "gina", acme, {"action": "created", "issue": full_issue(
                acme, 10, title=pr10["title"], body=pr10["body"], author="alice", created_at=pr10["created_at"],
                updated_at="2015-01-01T16:20:00Z", is_pull=True, labels=("bug",)), "comment": comment(
                9003, acme, 10, author="gina", body="Thanks!", created_at="2015-01-01T16:20:00Z")},
                "2015-01-01T16:20:00Z"),
            event(2489652005, "PullRequestReviewCommentEvent", "bob", acme, {"action": "created", "comment": review_c,
                  "pull_request": full_pull(acme, 10, **pr10, merged=None, updated_at="2015-01-01T15:40:00Z")},
                  "2015-01-01T15:40:00Z"),  # the same event again (overlapping crawls)
            event(2489652006, "PullRequestEvent", "carol", acme, {"action": "closed", "number": 11, "pull_request":
                  full_pull(acme, 11, **pr11, state="closed", merged=False, merge_sha=SHA["test11"],
                            updated_at="2015-01-01T16:30:00Z", closed_at="2015-01-01T16:30:00Z")},
                "2015-01-01T16:30:00Z"),
            event(2489652007, "PullRequestEvent", "heidi", tool, {"action": "opened", "number": 13, "pull_request":
                  full_pull(tool, 13, title="Add CLI", body="Closes #1", author="heidi",
                            created_at="2015-01-01T16:40:00Z", updated_at="2015-01-01T16:40:00Z", head_sha=SHA["e"],
                            base_sha=SHA["f"])}, "2015-01-01T16:40:00Z"),
        ],
        "2015-01-01-17": [
            event(2489653001, "IssueCommentEvent", "frank", acme, {"action": "created", "issue": full_issue(
                acme, 7, **issue7, updated_at="2015-01-01T15:10:00Z"), "comment": issue7_comment_1},
                "2015-01-01T15:10:00Z"),  # a duplicate of an earlier hour's event
            event(2489653002, "PullRequestEvent", "alice", acme, {"action": "closed", "number": 10, "pull_request":
                  full_pull(acme, 10, **{**pr10, "title": "Fix overflow in parser (v2)"}, state="closed",
                            merged=True, merged_at="2015-01-01T17:05:00Z", merge_sha=SHA["m10"],
                            updated_at="2015-01-01T17:05:00Z", closed_at="2015-01-01T17:05:00Z")},
                "2015-01-01T17:05:00Z"),
            event(2489653003, "IssuesEvent", "alice", acme, {"action": "closed", "issue": full_issue(
                acme, 7, **issue7, updated_at="2015-01-01T17:06:00Z", state="closed",
                closed_at="2015-01-01T17:06:00Z")}, "2015-01-01T17:06:00Z"),
            event(2489653004, "PullRequestEvent", "dave", acme, {"action": "opened", "number": 12, "pull_request":
                  full_pull(acme, 12, title="Docs: usage", body="", author="dave", created_at="2015-01-01T17:10:00Z",
                            updated_at="2015-01-01T17:10:00Z", head_sha=SHA["d"], base_sha=SHA["b"])},
                "2015-01-01T17:10:00Z"),
            event(2489653005, "IssuesEvent", "heidi", tool, {"action": "opened", "issue": full_issue(
                tool, 1, title="No CLI", body=None, author="ivy", created_at="2015-01-01T17:20:00Z",
                updated_at="2015-01-01T17:20:00Z")}, "2015-01-01T17:20:00Z"),
            event(2489653006, "PullRequestEvent", "heidi", tool, {"action": "closed", "number": 13, "pull_request":
                  full_pull(tool, 13, title="Add CLI", body="Closes #1", author="heidi",
                            created_at="2015-01-01T16:40:00Z", updated_at="2015-01-01T17:30:00Z", head_sha=SHA["e"],
                            base_sha=SHA["f"], state="closed", merged=True, merged_at="2015-01-01T17:30:00Z",
                            merge_sha=SHA["m13"], closed_at="2015-01-01T17:30:00Z")}, "2015-01-01T17:30:00Z"),
            event(2489653007, "CreateEvent", "heidi", tool, {"ref": "v1", "ref_type": "tag", "master_branch": "main",
                  "description": None, "pusher_type": "user"}, "2015-01-01T17:40:00Z"),
        ],
    }


def later_scenario() -> dict[str, list[dict]]:
    """Trimmed-era events over two hours of 2025-11-03 in later/repo.

    PR #21 (ivan): opened, reviewed, review comment, merged (the `merged` action). PR #22: only a trimmed
    `closed` (state unknown). PR #23 (kim): opened, then an issue comment whose issue object gives title and body.
    Issue #20 (lena): opened, one comment.
    """
    repo = "later/repo"
    stub21 = stub_pull(repo, 21, head_sha=SHA["a"], base_sha=SHA["b"])
    return {
        "2025-11-03-9": [
            event(52000000001, "IssuesEvent", "lena", repo, {"action": "opened", "issue": full_issue(
                repo, 20, title="Timeouts under load", body="Requests time out after 30 s.", author="lena",
                created_at="2025-11-03T09:00:00Z", updated_at="2025-11-03T09:00:00Z", trimmed=True)},
                "2025-11-03T09:00:00Z"),
            event(52000000002, "PullRequestEvent", "ivan", repo, {"action": "opened", "number": 21,
                  "pull_request": stub21}, "2025-11-03T09:10:00Z"),
            event(52000000003, "PullRequestReviewEvent", "judy", repo, {"action": "created", "review": review(
                8001, author="judy", body="Please add a test", state="changes_requested",
                submitted_at="2025-11-03T09:30:00Z", commit=SHA["a"], trimmed=True), "pull_request": stub21},
                "2025-11-03T09:30:00Z"),
            event(52000000004, "PullRequestEvent", "kim", repo, {"action": "opened", "number": 23, "pull_request":
                  stub_pull(repo, 23, head_sha=SHA["c"], base_sha=SHA["b"])}, "2025-11-03T09:40:00Z"),
        ],
        "2025-11-03-10": [
            event(52000001001, "PullRequestReviewCommentEvent", "judy", repo, {"action": "created", "comment":
                  review_comment(5101, repo, 21, author="judy", body="nit: rename", created_at="2025-11-03T10:00:00Z",
                                 commit=SHA["a"], trimmed=True), "pull_request": stub21}, "2025-11-03T10:00:00Z"),
            event(52000001002, "IssueCommentEvent", "mo", repo, {"action": "created", "issue": full_issue(
                repo, 20, title="Timeouts under load", body="Requests time out after 30 s.", author="lena",
                created_at="2025-11-03T09:00:00Z", updated_at="2025-11-03T10:05:00Z", trimmed=True), "comment":
                comment(9101, repo, 20, author="mo", body="Seen in prod too.", created_at="2025-11-03T10:05:00Z",
                        trimmed=True)}, "2025-11-03T10:05:00Z"),
            event(52000001003, "IssueCommentEvent", "kim", repo, {"action": "created", "issue": full_issue(
                repo, 23, title="Add retry", body="Closes #20", author="kim", created_at="2025-11-03T09:40:00Z",
                updated_at="2025-11-03T10:10:00Z", is_pull=True, trimmed=True), "comment": comment(
                9102, repo, 23, author="kim", body="Ready for review.", created_at="2025-11-03T10:10:00Z",
                trimmed=True)}, "2025-11-03T10:10:00Z"),
            event(52000001004, "PullRequestEvent", "maintainer", repo, {"action": "merged", "number": 21,
                  "pull_request": stub21}, "2025-11-03T10:20:00Z"),
            event(52000001005, "PullRequestEvent", "maintainer", repo, {"action": "closed", "number": 22,
                  "pull_request": stub_pull(repo, 22, head_sha=SHA["d"], base_sha=SHA["b"])},
                "2025-11-03T10:30:00Z"),
        ],
    }


def write_scenario(folder: Path, scenario: dict[str, list[dict]]) -> list[Path]:
    """The scenario's hour files, in hour order."""
    return [write_hour(folder, hour(name), events) for name, events in scenario.items()]
