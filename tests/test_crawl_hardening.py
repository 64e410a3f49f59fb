"""The crawl against GitHub's real failure shapes (issue 11), on the loopback server of tests/github_server.py:
one PR GitHub refuses (406 too_large, 404) never stops a crawl; a 401 takes its token out of the pool and a pool
of dead tokens stops the crawl loudly with nothing marked done; rate-limit resets are read on GitHub's clock
(Date header) and the retry loop is bounded; a secondary limit without Retry-After waits a minute; a renamed
repository (301) is crawled and written under its canonical name; the ETag cache survives a move of the API."""

from __future__ import annotations

import json
import pickle

import polars as pl
import pytest

from datakit.cli import main
from datakit.io.schemas import validate
from tests.github_server import (BAD_CREDENTIALS, DIFF_TOO_LARGE, Fault, FakeGitHub, host_git_repo, issue_node,
                                 not_found, repo_object)
from tests.test_github_crawl import ROOT, T0, TOKENS, _issues, _repos_file, _server, crawl, digest, upstream  # noqa: F401

DEAD = "ghp_deadDEADdeadDEAD0000"


def _rows(out) -> dict[int, dict]:
    return {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}


def _stats(out) -> dict:
    return json.loads((out / "pulls" / "stats.json").read_text())


def _quarantine(out) -> list[dict]:
    files = list((out / "pulls" / "quarantine").glob("*.parquet"))
    return pl.read_parquet(files).to_dicts() if files else []


def _client(gh, tokens=TOKENS, **policy):
    from datakit.sources.github.client import GitHubClient, RetryPolicy
    from datakit.sources.github.tokens import TokenPool

    waits: list[float] = []
    client = GitHubClient(TokenPool(list(tokens)), gh.url, policy=RetryPolicy(**policy), sleep=waits.append)
    return client, waits


@pytest.fixture(scope="module")
def mirror_reference(upstream, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("ref")
    with _server(upstream) as gh:
        out = crawl(tmp, upstream, gh)
    return out


# ---------------------------------------------------------------------------------------------- item 1: one PR
def _refusing_server(upstream):  # noqa: F811
    gh = _server(upstream)
    app = gh.repos["acme/app"]
    app.errors[(7, "diff")] = (406, DIFF_TOO_LARGE)
    app.errors[(8, "files")] = (404, not_found("https://docs.github.com/rest/pulls/pulls#list-pull-requests-files"))
    return gh


def test_a_refused_pr_diff_takes_its_code_from_the_mirror(upstream, mirror_reference, tmp_path):  # noqa: F811
    with _refusing_server(upstream) as gh:
        out = crawl(tmp_path, upstream, gh, extra=["--code", "api"])
        statuses = {(p, s) for _, p, s in gh.log}
    assert ("/repos/acme/app/pulls/7", 406) in statuses and ("/repos/acme/app/pulls/8/files", 404) in statuses
    rows, ref = _rows(out), _rows(mirror_reference)
    assert rows.keys() == ref.keys()
    for n in (7, 8):  # the mirror's files and diff, exactly as a mirror crawl writes them
        assert (rows[n]["files"], rows[n]["diff"], rows[n]["base_sha"]) == (ref[n]["files"], ref[n]["diff"], ref[n]["base_sha"])
        assert rows[n]["diff"] and rows[n]["source"]["missing"] == []
    stats = _stats(out)
    assert stats["counters"]["code.mirror_fallback"] == 2
    assert stats["units"]["pulls"]["written"] == 9 and stats["units"]["pulls"]["quarantined"] == {}


def test_a_refused_pr_without_fallback_is_quarantined_and_the_crawl_goes_on(upstream, tmp_path):  # noqa: F811
    with _refusing_server(upstream) as gh:
        out = crawl(tmp_path, upstream, gh, extra=["--code", "api", "--no-mirror-fallback"])
    rows = _rows(out)
    assert sorted(rows) == [1, 2, 5, 6, 9, 10, 11]
    pulls = _stats(out)["units"]["pulls"]
    assert pulls == {"read": 11, "written": 7, "quarantined": {"api_error": 2}, "filtered": {"bot_author": 1, "unmerged": 1}}
    refused = {json.loads(q["record"])["number"]: q["detail"] for q in _quarantine(out) if q["reason"] == "api_error"}
    assert refused.keys() == {7, 8}
    assert "/repos/acme/app/pulls/7: 406 Sorry, the diff exceeded the maximum number of files (300)" in refused[7]
    assert "/repos/acme/app/pulls/8/files" in refused[8] and ": 404 Not Found" in refused[8]


# ---------------------------------------------------------------------------------------------- item 2: 401
def test_a_dead_token_leaves_the_pool_and_the_crawl_succeeds(upstream, mirror_reference, tmp_path, capfd):  # noqa: F811
    with _server(upstream) as gh:
        out = crawl(tmp_path, upstream, gh, tokens=[DEAD, TOKENS[0]])
        refused = [s for _, _, s in gh.log].count(401)
    assert digest(out) == digest(mirror_reference)
    counters = _stats(out)["counters"]
    assert 1 <= counters["api.bad_credentials"] == refused <= 2  # once per task: then the token is gone
    err = capfd.readouterr().err
    assert "token #1: 401 Bad credentials; removed from the pool" in err and DEAD not in err


def test_no_usable_token_stops_the_crawl_and_marks_nothing_done(upstream, mirror_reference, tmp_path):  # noqa: F811
    """Run as a user runs it (a subprocess): exit 2 and a one-line error naming the tokens by position."""
    import os
    import subprocess
    import sys

    dead = [DEAD, DEAD.replace("0000", "1111")]
    with _server(upstream) as gh:
        cmd = [sys.executable, "-m", "datakit.cli", "crawl", "--repos", str(_repos_file(tmp_path, upstream)),
               "--api-url", gh.url, "--output", str(tmp_path / "out"), "--state", str(tmp_path / "out-state"),
               "--tasks", "2", "--workers", "2", "--page-size", "2", "--quiet"]
        proc = subprocess.run(cmd, env={**os.environ, "GITHUB_TOKENS": ",".join(dead)}, capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: GET ") and last.endswith(
            "GitHub refused every token (401 Bad credentials: token #1, #2 of $GITHUB_TOKENS); replace them and rerun")
        for text in (proc.stderr, proc.stdout, *(p.read_text() for p in (tmp_path / "out").rglob("*.log"))):
            assert not any(t in text for t in dead)
        assert not list((tmp_path / "out").rglob("completions/*"))  # no task done: the rerun does the work
        assert not _quarantine(tmp_path / "out")  # and no repository was called unavailable
        assert set(s for _, _, s in gh.log) == {401} and len(gh.log) <= 4  # two per task, then it stopped
        # the same command with a good token, no --force: the crawl happens (not "nothing to do")
        out = crawl(tmp_path, upstream, gh)
    assert digest(out) == digest(mirror_reference)


def test_errors_survive_pickling_between_worker_processes():
    from datakit.sources.github.client import BadCredentials, GitHubError, GraphQLError

    for exc in (BadCredentials("no token left", 401, "http://x/graphql"),
                GitHubError("GET u: 406 too large", 406, "u"), GitHubError("gave up", 502, "u", transient=True),
                GraphQLError("POST g: GraphQL errors: x", [{"message": "x"}], "g")):
        back = pickle.loads(pickle.dumps(exc))
        assert (type(back), str(back), back.status, back.url, back.transient) == (
            type(exc), str(exc), exc.status, exc.url, exc.transient)


def test_the_401_body_is_githubs(upstream):  # noqa: F811
    import requests

    with _server(upstream) as gh:
        resp = requests.get(f"{gh.url}/repos/acme/app", headers={"Authorization": f"bearer {DEAD}"})
    assert resp.status_code == 401 and resp.json() == BAD_CREDENTIALS


# ---------------------------------------------------------------------------------------------- item 3: limits
def test_a_reset_in_the_past_of_our_clock_is_waited_for_on_githubs_clock(upstream):  # noqa: F811
    """Our clock is an hour ahead of GitHub's: the reset GitHub sends is an hour in our past. Without the Date
    header the client would think the window already reset and hammer the API with 403s."""
    import time

    from datakit.sources.github.client import GitHubClient, RetryPolicy
    from datakit.sources.github.tokens import TokenPool

    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        time.sleep(s)

    with _server(upstream, tokens={TOKENS[0]: 2}, reset_after=1.0) as gh:
        gh.clock_offset = -3600.0
        client = GitHubClient(TokenPool(TOKENS[:1]), gh.url, policy=RetryPolicy(), sleep=sleep)
        for n in (1, 2, 5):
            client.get(f"/repos/acme/app/pulls/{n}")
        statuses = [s for _, _, s in gh.log]
    assert abs(client.skew - 3600) < 5  # read from the Date header
    assert statuses == [200, 200, 200] and len(waits) == 1 and 0 < waits[0] <= 3  # waited once, for the reset


def test_a_limit_that_never_lifts_is_a_bounded_loop(upstream):  # noqa: F811
    from datakit.sources.github.client import GitHubError

    import time

    from datakit.sources.github.client import GitHubClient, RetryPolicy
    from datakit.sources.github.tokens import TokenPool

    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        time.sleep(s)

    with _server(upstream, tokens={t: 0 for t in TOKENS}, reset_after=-30.0) as gh:  # resets "in the past"
        client = GitHubClient(TokenPool(TOKENS), gh.url, policy=RetryPolicy(max_retries=3, min_reset_wait=0.3),
                              sleep=sleep)
        with pytest.raises(GitHubError, match=r"rate limited 6 times in a row although every reset was waited for") as err:
            client.get("/repos/acme/app")
        answered = [s for _, _, s in gh.log]
    assert err.value.transient and answered == [403] * 6  # len(tokens) + max_retries + 1, not hundreds
    assert len(waits) == 4 and all(w > 0 for w in waits)  # once both were spent: never a retry before the reset
    assert RetryPolicy().min_reset_wait == 1.0


def test_a_secondary_limit_without_retry_after_waits_at_least_a_minute(upstream):  # noqa: F811
    from datakit.sources.github.client import RetryPolicy

    assert RetryPolicy().secondary_wait == 60.0  # GitHub: "wait for at least one minute before retrying"
    faults = [Fault("403-secondary-bare", "rest", 1), Fault("403-secondary-bare", "rest", 2), Fault("429", "rest", 3)]
    with _server(upstream, faults=faults) as gh:
        client, waits = _client(gh)  # sleep is recorded, not slept
        body, _ = client.get("/repos/acme/app")
    assert body["full_name"] == "acme/app"
    assert waits == [60.0, 120.0, 1.0]  # then doubling; Retry-After (1 s) is obeyed as sent
    assert client.stats["secondary_rate_limited"] == 3 and client.stats["retries"] == 3


def test_abuse_detection_in_the_older_wording_is_a_secondary_limit(upstream):  # noqa: F811
    """403 "You have triggered an abuse detection mechanism" without Retry-After (remaining quota 4000): wait and
    retry, as for "secondary rate limit"; not a permanent refusal that would quarantine the repository."""
    with _server(upstream, faults=[Fault("403-abuse", "rest", 1)]) as gh:
        client, waits = _client(gh)
        body, _ = client.get("/repos/acme/app")
    assert body["full_name"] == "acme/app" and waits == [60.0]
    assert client.stats["secondary_rate_limited"] == 1


def test_tokens_separated_by_newlines_or_spaces_make_a_pool(monkeypatch):
    from datakit.sources.github.tokens import NoTokens, TokenPool

    monkeypatch.setenv("GITHUB_TOKENS", "tok-one\ntok-two , tok-three\n")  # "$(cat tokens.txt)"
    pool = TokenPool.from_env()
    assert [pool.token(i) for i in range(len(pool))] == ["tok-one", "tok-two", "tok-three"]
    with pytest.raises(NoTokens) as err:
        TokenPool(["tok-\x07bell"])  # a control character could not travel in a header
    assert "bell" not in str(err.value) and "token #1" in str(err.value)


def test_the_secondary_wait_is_an_option_and_counts_attempts(upstream):  # noqa: F811
    from datakit.sources.github.client import GitHubError

    with _server(upstream, faults=[Fault("403-secondary-bare", "rest", n) for n in range(1, 10)]) as gh:
        client, waits = _client(gh, secondary_wait=0.5, max_retries=2)
        with pytest.raises(GitHubError, match="gave up after 3 attempts; last: 403 .secondary rate limit.") as err:
            client.get("/repos/acme/app")
    assert waits == [0.5, 1.0] and err.value.transient


# ---------------------------------------------------------------------------------------------- item 6: renames
def test_a_renamed_repository_is_crawled_and_written_under_its_new_name(upstream, tmp_path):  # noqa: F811
    new = "acme/newapp"
    issues = [{**i, "repository": {"nameWithOwner": new}} for i in _issues()]
    hosted = host_git_repo(upstream.path, new, extras={1: {"closing": [10]}}, issues=issues)
    hosted.meta = repo_object(new, "MIT")
    repos = tmp_path / "repos.txt"
    repos.write_text(f"acme/app {upstream.path}\n")
    with FakeGitHub([hosted], {t: 5000 for t in TOKENS}, redirects={"acme/app": new}) as gh:
        argv = ["crawl", "--repos", repos, "--api-url", gh.url, "--output", tmp_path / "out", "--state",
                tmp_path / "state", "--tasks", "1", "--workers", "1", "--quiet"]
        import os
        os.environ["GITHUB_TOKENS"] = ",".join(TOKENS)
        assert main([str(a) for a in argv]) == 0
        log = list(gh.log)
    assert ("rest", "/repos/acme/app", 301) in log and ("rest", f"/repositories/{hosted.meta['id']}", 200) in log
    rows = _rows(tmp_path / "out")
    assert len(rows) == 10 and {r["repo"] for r in rows.values()} == {new}  # GraphQL asked under the new name
    for r in rows.values():
        validate(r, "pull_record")
        assert r["repo_meta"]["former_names"] == ["acme/app"] and r["source"]["repo"] == new
    assert [(i["repo"], i["number"], i["fetched"]) for i in rows[1]["linked_issues"]][0] == (new, 10, True)
    assert (tmp_path / "state" / "repos" / "acme__newapp" / "checkpoint.json").is_file()
    assert (tmp_path / "out" / "mirrors" / "acme__newapp.git").is_dir()


# ---------------------------------------------------------------------------------------------- item 7: cache key
def test_the_etag_cache_survives_a_move_of_the_api(upstream, tmp_path):  # noqa: F811
    from datakit.sources.github.cache import ETagCache
    from datakit.sources.github.client import GitHubClient
    from datakit.sources.github.tokens import TokenPool

    def fetch(gh):
        client = GitHubClient(TokenPool(TOKENS), gh.url, cache=ETagCache(tmp_path / "cache"))
        meta, _ = client.get("/repos/acme/app")
        comments = list(client.paginate("/repos/acme/app/issues/10/comments", {"per_page": 1}))
        return meta, comments, client.stats["not_modified"]

    with _server(upstream) as first:
        meta, comments, _ = fetch(first)
    with _server(upstream) as moved:  # the same API on another port: the old one is gone
        assert moved.url != first.url
        again = fetch(moved)
        statuses = [s for _, _, s in moved.log]
    assert len(comments) == 2  # two pages, followed by their Link headers
    assert again == (meta, comments, 3) and statuses == [304] * 3  # the cached Link was re-rooted at the new address


def test_licence_filtered_repositories_are_named_in_the_summary(mirror_reference, upstream, tmp_path, capfd):  # noqa: F811
    counters = _stats(mirror_reference)["counters"]
    assert counters["license.GPL-3.0"] == 1
    with _server(upstream, licence=None) as gh:
        out = crawl(tmp_path, upstream, gh)
    captured = capfd.readouterr()
    err = captured.err
    assert _stats(out)["counters"]["license.none"] == 1
    assert "repositories left out by the licence allow-list (1 with no licence GitHub recognises" in err
    assert "licenses: []" in err and "datakit summary" in captured.out  # results on stdout, logs on stderr


def test_a_closing_reference_of_another_repository_does_not_hide_a_keyword_issue_of_the_same_number(tmp_path):
    """PR o/r#1 says "Fixes #5" (o/r's issue 5) and GitHub's closing references carry a manually linked issue of
    another repository with the same number (other/x#5): o/r#5 must still be fetched, not taken as embedded."""
    from datakit.sources.github.client import GitHubClient
    from datakit.sources.github.crawl import RepoCrawler
    from datakit.sources.github.tokens import TokenPool
    from tests.github_server import HostedRepo

    hosted = HostedRepo("o/r", repo_object("o/r"))
    hosted.pulls = {1: {"number": 1, "title": "pr 1", "body": "Fixes #5", "createdAt": "2024-01-01T00:00:00Z",
                        "updatedAt": "2024-01-01T00:00:00Z", "mergedAt": "2024-01-02T00:00:00Z", "merged": True,
                        "author": {"login": "a"}, "baseRefName": "main", "baseRefOid": "0" * 40,
                        "headRefOid": "1" * 40, "mergeCommit": {"oid": "2" * 40}, "labels": {"nodes": []},
                        "commits": {"totalCount": 0, "nodes": []}, "reviews": {"nodes": []}, "_closing": []}}
    hosted.issues = {5: issue_node("o/r", 5, "same-repo issue 5", "bug", "u", 1.7e9)}
    with FakeGitHub([hosted], {"tok": 1000}) as gh:
        served = gh.graphql

        def graphql(query, variables):
            out = served(query, variables)
            if query.lstrip().startswith("query PullRequests"):
                other = {**issue_node("other/x", 5, "foreign issue", "b", "u", 1.7e9),
                         "comments": {"totalCount": 0, "nodes": []}}
                for node in out["data"]["repository"]["pullRequests"]["nodes"]:
                    node["closingIssuesReferences"] = {"totalCount": 1, "nodes": [other]}
            return out

        gh.graphql = graphql
        state = RepoCrawler(GitHubClient(TokenPool(["tok"]), gh.url, sleep=lambda s: None),
                            tmp_path / "state").crawl("o/r")
    assert state.has_issue(("o/r", 5))
