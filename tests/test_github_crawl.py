"""The GitHub crawl against a GitHub-compatible server on loopback (tests/github_server.py) hosting real git
repositories: the records, every injected fault, token exhaustion, a kill and resume, an incremental recrawl, and
no token anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from datakit.cli import main
from datakit.io.schemas import validate
from tests.gitrepo import RepoBuilder
from tests.github_server import Fault, FakeGitHub, host_git_repo, issue_node, repo_object

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000
TOKENS = ["ghp_tokenAAAAsecret0001", "ghp_tokenBBBBsecret0002"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """acme/app: merge and squash PRs linked every way, a bot PR, an unmerged PR, a rename, an unlinked PR."""
    b = RepoBuilder(tmp_path_factory.mktemp("up") / "app.git", start=T0)
    b.commit({"src/app.py": "def f():\n    return 1\n", "tests/test_app.py": "def test_f():\n    pass\n",
              "pkg/old.py": "".join(f"line {i}\n" for i in range(30))}, "initial", parent=None)
    b.branch("fix-f")
    b.commit({"tests/test_app.py": "def test_f():\n    assert f() == 2\n"}, "add test", parent="fix-f",
             ref="refs/heads/fix-f")
    b.commit({"src/app.py": "def f():\n    return 2\n"}, "fix f\n\ncloses #12", parent="fix-f", ref="refs/heads/fix-f")
    b.merge_pr(1, "fix-f", "Fix f", "Fixes #10")
    b.squash_pr(2, {"src/app.py": "def f():\n    return 2\n\n\ndef g():\n    return 3\n"}, "Add g",
                "<!-- fixes #99 -->\nResolves acme/app#11")
    b.squash_pr(3, {"requirements.txt": "x==2\n"}, "Bump x from 1 to 2")
    b.commit({"src/wip.py": "x = 1\n"}, "wip", parent="main", ref="refs/pull/4/head")
    b.squash_pr(5, {"pkg/old.py": None, "pkg/new.py": "".join(f"line {i}\n" for i in range(30)).replace("line 3\n", "3\n")},
                "Rename old to new", "See https://github.com/acme/app/issues/13 -- fixed https://github.com/acme/app/issues/13")
    b.squash_pr(6, {"README.md": "# app\n"}, "Add a readme", "No issue here.")
    for n in range(7, 12):  # enough PRs for several pages
        b.squash_pr(n, {f"src/m{n}.py": f"x = {n}\n"}, f"Add m{n}", f"fix #{100 + n}")
    return b


def _issues() -> list[dict]:
    return [
        issue_node("acme/app", 10, "f is wrong", "f returns 1", "carol", T0 - 500,
                   [("dave", "me too", T0 - 100), ("erin", "fixed now", T0 + 10**6)]),
        issue_node("acme/app", 11, "need g", "please add g", "carol", T0 - 50),
        issue_node("acme/app", 13, "rename old", "old is a bad name", "frank", T0 - 10),
        *[issue_node("acme/app", 100 + n, f"m{n} missing", f"add m{n}", "gina", T0) for n in range(7, 12)],
    ]


def _server(upstream, faults=(), tokens=None, reset_after=2.0, licence="MIT") -> FakeGitHub:
    extras = {1: {"closing": [10]}, 3: {"author": {"login": "dependabot[bot]"}}}
    hosted = [host_git_repo(upstream.path, "acme/app", extras=extras, issues=_issues()),
              host_git_repo(upstream.path, "acme/gpl", meta=repo_object("acme/gpl", "GPL-3.0"))]
    hosted[0].meta = repo_object("acme/app", licence)
    return FakeGitHub(hosted, tokens or {t: 5000 for t in TOKENS}, reset_after=reset_after, faults=faults)


def _repos_file(tmp_path, upstream) -> Path:
    path = tmp_path / "repos.txt"
    path.write_text(f"acme/app {upstream.path}\nacme/gpl {upstream.path}\nacme/gone {upstream.path}\n")
    return path


def crawl(tmp_path, upstream, gh, name="out", extra=(), monkeypatch=None, tokens=TOKENS) -> Path:
    os.environ["GITHUB_TOKENS"] = ",".join(tokens)
    out = tmp_path / name
    argv = ["crawl", "--repos", _repos_file(tmp_path, upstream), "--api-url", gh.url, "--output", out,
            "--state", tmp_path / f"{name}-state", "--tasks", "2", "--workers", "1", "--page-size", "2",
            "--quiet", *extra]
    assert main([str(a) for a in argv]) == 0
    return out


def digest(out: Path) -> dict[str, str]:
    """sha256 of every record file, and the quarantine rows with the server's address left out (each test's
    server has its own port). stats.json is left out: its API counters describe the run, faults included."""
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((out / "pulls").glob("*.parquet"))}
    rows = pl.read_parquet(out / "pulls" / "quarantine" / "*.parquet").to_dicts()
    files["quarantine"] = json.dumps([{**r, "detail": re.sub(r"http://127\.0\.0\.1:\d+", "URL", r["detail"])}
                                      for r in rows], sort_keys=True)
    return files


@pytest.fixture(scope="module")
def reference(upstream, tmp_path_factory):
    """The fault-free crawl every other run must reproduce."""
    tmp = tmp_path_factory.mktemp("ref")
    with _server(upstream) as gh:
        out = crawl(tmp, upstream, gh)
        graphql = gh.requests("graphql")
    return out, digest(out), graphql


# ---------------------------------------------------------------------------------------------- the records
def test_records_linked_filtered_and_counted(reference, upstream):
    out, _, _ = reference
    rows = {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}
    assert sorted(rows) == [1, 2, 5, 6, 7, 8, 9, 10, 11]  # 3: bot, 4: unmerged, acme/gpl: licence
    for r in rows.values():
        validate(r, "pull_record")
        assert r["repo"] == "acme/app" and r["source"]["kind"] == "github" and r["source"]["missing"] == []
        assert r["repo_meta"]["license"] == "MIT" and r["merged_at"]

    links = {n: [(i["number"], i["link_rules"], i["fetched"]) for i in r["linked_issues"]] for n, r in rows.items()}
    assert links[1] == [(10, ["closing_reference", "keyword_body"], True), (12, ["keyword_commit"], False)]
    assert links[2] == [(11, ["keyword_body"], True)]  # "fixes #99" sits in an HTML comment
    assert links[5] == [(13, ["keyword_body"], True)]  # the URL form, once
    assert links[6] == [] and rows[6]["flags"] == ["no_linked_issue"]
    assert links[9] == [(109, ["keyword_body"], True)]
    issue10 = rows[1]["linked_issues"][0]
    assert issue10["title"] == "f is wrong" and issue10["body"] == "f returns 1" and issue10["author"] == "carol"
    assert issue10["hints"] == ["me too"]  # the later comment was made after the first commit
    assert [c["body"] for c in issue10["comments"]] == ["me too", "fixed now"]

    # the code comes from the mirror: the same files and diff as the git source reads
    assert [c["message"].splitlines()[0] for c in rows[1]["commits"]] == ["add test", "fix f"]
    assert {f["path"]: f["status"] for f in rows[1]["files"]} == {"src/app.py": "modified", "tests/test_app.py": "modified"}
    renamed = rows[5]["files"][0]
    assert (renamed["status"], renamed["old_path"], renamed["path"]) == ("renamed", "pkg/old.py", "pkg/new.py")
    assert "-line 3\n+3\n" in rows[5]["diff"]

    stats = json.loads((out / "pulls" / "stats.json").read_text())
    assert stats["units"]["repos"] == {"read": 3, "written": 1, "quarantined": {"repo_unavailable": 1},
                                       "filtered": {"license": 1}}
    assert stats["units"]["pulls"] == {"read": 11, "written": 9, "quarantined": {},
                                       "filtered": {"bot_author": 1, "unmerged": 1}}
    assert stats["counters"]["flags.no_linked_issue"] == 1
    quarantine = pl.read_parquet(out / "pulls" / "quarantine" / "*.parquet")
    assert quarantine["reason"].to_list() == ["repo_unavailable"] and "acme/gone: 404" in quarantine["detail"][0]


def test_crawled_records_make_samples_from_the_issue_text(reference, tmp_path):
    out, _, _ = reference
    argv = ["samples", "--input", out / "pulls", "--mirrors", out / "mirrors", "--output", tmp_path / "s",
            "--tasks", "1", "--workers", "1", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    samples = pl.read_parquet(tmp_path / "s" / "samples" / "*.parquet")
    fix_f = samples.filter((pl.col("meta").struct.field("pr") == 1) & (pl.col("kind") == "edit"))
    assert fix_f.height == 2  # bugfixer and testwriter, each re-applied byte for byte by the stage
    assert fix_f["meta"][0]["problem_source"] == "issue" and fix_f["text"][0].count("f is wrong\nf returns 1") == 1
    readme = samples.filter(pl.col("meta").struct.field("pr") == 6)
    assert readme.height == 0  # docs only: quarantined as no_code_change / no_test_change


def test_requests_per_pr_stay_low(reference):
    _, _, graphql = reference
    # 11 PRs, 2 per page: 6 pages + one batch, at the end, of the issues closed by keyword only (11-13, 107-111)
    assert graphql == 7


# ---------------------------------------------------------------------------------------------- faults
FAULTS = [Fault("429", "graphql", 2), Fault("403-secondary", "graphql", 4), Fault("502", "graphql", 5),
          Fault("503", "rest", 1), Fault("drop", "graphql", 7), Fault("truncate", "graphql", 9),
          Fault("malformed", "graphql", 10), Fault("drop", "rest", 3), Fault("truncate", "rest", 4),
          Fault("slow", "graphql", 12, retry_after=2)]


def test_every_fault_gives_the_same_records(reference, upstream, tmp_path):
    _, expected, _ = reference
    with _server(upstream, faults=FAULTS) as gh:
        out = crawl(tmp_path, upstream, gh, extra=["--page-size", "2"], tokens=TOKENS)
        statuses = [s for _, _, s in gh.log]
    assert digest(out) == expected
    assert {429, 403, 502, 503, 0} <= set(statuses)  # every fault was served (0: dropped)
    counters = json.loads((out / "pulls" / "stats.json").read_text())["counters"]
    assert counters["api.retries"] >= len(FAULTS) - 1 and counters["api.secondary_rate_limited"] == 2


def test_githubs_own_graphql_failures_are_retried_not_taken(reference, upstream, tmp_path):
    """HTTP 200 answers that are GitHub failing: a query timeout (data null, "Something went wrong…") and a partial
    page whose first PR node is null with an INTERNAL error. Taking the partial page would lose that PR for good
    (the cursor moves past it); the records must be the fault-free crawl's."""
    _, expected, _ = reference
    faults = [Fault("graphql-null-node", "graphql", 1), Fault("graphql-timeout", "graphql", 3),
              Fault("graphql-null-node", "graphql", 6)]
    with _server(upstream, faults=faults) as gh:
        out = crawl(tmp_path, upstream, gh)
    assert digest(out) == expected
    counters = json.loads((out / "pulls" / "stats.json").read_text())["counters"]
    assert counters["api.graphql_server_errors"] == 3 and counters["api.retries"] >= 3


def test_primary_limit_across_two_tokens(reference, upstream, tmp_path):
    _, expected, _ = reference
    with _server(upstream, tokens={t: 4 for t in TOKENS}, reset_after=1.0) as gh:
        out = crawl(tmp_path, upstream, gh)
        by_status = [s for _, _, s in gh.log]
    assert digest(out) == expected
    counters = json.loads((out / "pulls" / "stats.json").read_text())["counters"]
    assert counters["api.primary_rate_limited"] >= 2 and counters["api.waited_for_reset"] >= 1
    assert by_status.count(403) >= 1 or counters["api.primary_rate_limited"] >= 2


def test_retry_budget_exhausted_is_a_clear_error_without_the_token(upstream, tmp_path):
    from datakit.sources.github.client import GitHubClient, GitHubError, RetryPolicy
    from datakit.sources.github.tokens import TokenPool

    with _server(upstream, faults=[Fault("502", "rest", n) for n in range(1, 10)]) as gh:
        client = GitHubClient(TokenPool(TOKENS), gh.url, policy=RetryPolicy(max_retries=2, backoff=0.01))
        with pytest.raises(GitHubError) as err:
            client.get("/repos/acme/app")
    message = str(err.value)
    assert f"GET {gh.url}/repos/acme/app: gave up after 3 attempts; last: 502" in message
    assert err.value.status == 502 and not any(t in message for t in TOKENS)


def test_no_token_everywhere_when_all_tokens_are_spent(upstream, tmp_path):
    from datakit.sources.github.client import GitHubClient, GitHubError, RetryPolicy
    from datakit.sources.github.tokens import TokenPool

    with _server(upstream, tokens={t: 1 for t in TOKENS}, reset_after=600) as gh:
        client = GitHubClient(TokenPool(TOKENS), gh.url, policy=RetryPolicy(max_wait=5))
        client.get("/repos/acme/app")
        client.get("/repos/acme/app/pulls/1")
        with pytest.raises(GitHubError, match="every token's rate limit is spent") as err:
            client.get("/repos/acme/app/pulls/2")
    assert not any(t in str(err.value) for t in TOKENS) and "ghp_" not in repr(TokenPool(TOKENS))


# ---------------------------------------------------------------------------------------------- client pieces
def test_etag_hit_costs_no_quota_and_link_pagination(upstream, tmp_path):
    from datakit.sources.github.cache import ETagCache
    from datakit.sources.github.client import GitHubClient
    from datakit.sources.github.tokens import TokenPool

    with _server(upstream, tokens={TOKENS[0]: 100}) as gh:
        client = GitHubClient(TokenPool(TOKENS[:1]), gh.url, cache=ETagCache(tmp_path / "cache"))
        first, _ = client.get("/repos/acme/app")
        left = gh.remaining[TOKENS[0]]
        again, _ = client.get("/repos/acme/app")
        assert again == first and gh.remaining[TOKENS[0]] == left and client.stats["not_modified"] == 1
        pulls = list(client.paginate("/repos/acme/app/pulls", {"state": "closed", "per_page": 4}))
        assert [p["number"] for p in pulls] == list(range(11, 0, -1))  # 3 pages followed by their Link headers
        assert list(client.paginate("/repos/acme/app/pulls", {"state": "closed", "per_page": 4})) == pulls  # 304s
    assert not any(t in p.read_text() for p in (tmp_path / "cache").rglob("*.json") for t in TOKENS)


def test_graphql_not_found_repository(upstream, tmp_path):
    from datakit.sources.github.client import GitHubClient, GitHubError
    from datakit.sources.github.crawl import RepoCrawler
    from datakit.sources.github.tokens import TokenPool

    with _server(upstream) as gh:
        crawler = RepoCrawler(GitHubClient(TokenPool(TOKENS), gh.url), tmp_path / "state")
        with pytest.raises(GitHubError) as err:
            crawler.crawl("acme/nope")
    assert err.value.status == 404


def test_code_from_rest_when_no_mirror(reference, upstream, tmp_path):
    out_ref, _, _ = reference
    with _server(upstream) as gh:
        out = crawl(tmp_path, upstream, gh, extra=["--code", "api"])
    rows = {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}
    ref = {r["number"]: r for r in pl.read_parquet(out_ref / "pulls" / "*.parquet").to_dicts()}
    assert rows.keys() == ref.keys()
    for n, r in rows.items():  # REST files carry the renames GraphQL cannot; the diff is GitHub's
        assert r["files"] == ref[n]["files"] and r["diff"] == ref[n]["diff"], n


# ---------------------------------------------------------------------------------------------- resume
def test_state_cuts_off_an_uncommitted_page(tmp_path):
    from datakit.sources.github.crawl import RepoState

    state = RepoState(tmp_path / "s")
    state.commit_page([{"pull": {"number": 1, "title": "a"}}], "c1")
    with state.journal.open("ab") as f:  # a page written by a crawl killed before its checkpoint
        f.write(b'{"pull": {"number": 2, "title": "half"}}\n{"pull": {"num')
    reopened = RepoState(tmp_path / "s")
    assert reopened.cursor == "c1" and [p["number"] for p in reopened.pulls()] == [1]
    reopened.commit_page([{"pull": {"number": 1, "title": "b"}}, {"pull": {"number": 2, "title": "c"}}], "c2")
    assert [p["title"] for p in RepoState(tmp_path / "s").pulls()] == ["b", "c"]  # the newest copy wins


def test_killed_crawl_resumes_with_the_same_records(reference, upstream, tmp_path):
    _, expected, full_graphql = reference
    repos = _repos_file(tmp_path, upstream)
    out, state = tmp_path / "out", tmp_path / "out-state"
    cmd = [sys.executable, "-m", "datakit.cli", "crawl", "--repos", str(repos), "--output", str(out),
           "--state", str(state), "--tasks", "2", "--workers", "1", "--page-size", "2", "--quiet"]
    env = {**os.environ, "GITHUB_TOKENS": ",".join(TOKENS)}
    with _server(upstream) as gh:
        holder = {}

        def kill_on_fifth(route, n):
            if route == "graphql" and n == 5:
                os.killpg(holder["proc"].pid, signal.SIGKILL)
                time.sleep(0.5)

        gh.on_request = kill_on_fifth
        holder["proc"] = subprocess.Popen([*cmd, "--api-url", gh.url], env=env, cwd=ROOT, start_new_session=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err1 = holder["proc"].communicate(timeout=120)
        assert holder["proc"].returncode == -signal.SIGKILL
        before = gh.requests("graphql")
        gh.on_request = None
        proc = subprocess.run([*cmd, "--api-url", gh.url], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        resumed = gh.requests("graphql") - before
    assert digest(out) == expected
    assert resumed < full_graphql  # committed pages were not fetched again
    for text in (err1.decode(), proc.stderr, proc.stdout):
        assert not any(t in text for t in TOKENS)


def test_later_crawl_fetches_only_what_changed(upstream, tmp_path):
    with _server(upstream) as gh:
        crawl(tmp_path, upstream, gh)
        first = gh.requests()
        gh.repos["acme/app"].pulls[6].update(title="Add a README", updatedAt="2030-01-01T00:00:00Z")
        out = crawl(tmp_path, upstream, gh, extra=["--force"])
        log = gh.log[first:]
    rows = {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}
    assert rows[6]["title"] == "Add a README" and len(rows) == 9
    assert sum(1 for r, _, _ in log if r == "graphql") == 1  # one page: the PR updated since the checkpoint
    assert [s for r, p, s in log if p == "/repos/acme/app"] == [304]  # metadata unchanged: no quota


# ---------------------------------------------------------------------------------------------- secrets
def test_no_token_in_logs_outputs_or_state(reference, upstream, tmp_path):
    with _server(upstream, faults=FAULTS[:4]) as gh:
        out = crawl(tmp_path, upstream, gh, name="leak")
    for path in [*out.rglob("*"), *(tmp_path / "leak-state").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".parquet":
                data = json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
            assert not any(t.encode() in data for t in TOKENS), path


def test_no_token_is_a_clear_error(tmp_path, upstream, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKENS", raising=False)
    with _server(upstream) as gh:
        argv = ["crawl", "--repos", _repos_file(tmp_path, upstream), "--api-url", gh.url, "--output", tmp_path / "o"]
        assert main([str(a) for a in argv]) == 2
        assert gh.requests() == 0
