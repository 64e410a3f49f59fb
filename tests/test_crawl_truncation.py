"""Connections GraphQL cuts at `first: N` are completed, and what cannot be fetched is named in `source.missing`
(issue 11, item 5): labels past 20, reviews past 30 and review comments past 30 per review, closing issues past
10, issue comments past 100; REST's file list stops at 3,000 files."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

from datakit.cli import main
from tests.github_server import FakeGitHub, host_git_repo, issue_node, not_found, repo_object
from tests.test_github_crawl import T0, TOKENS, _issues, upstream  # noqa: F401

CLOSING = [10, 11, 13, *range(200, 210)]  # 13 closing issues: more than the 10 a page carries


def _review(i: int, comments: int) -> dict:
    return {"databaseId": 5000 + i, "body": f"review {i:02d}", "createdAt": f"2024-01-01T00:{i:02d}:00Z",
            "author": {"login": "rev"},
            "comments": {"nodes": [{"databaseId": 90000 + i * 100 + j, "body": f"note {i:02d}.{j:02d}",
                                    "createdAt": f"2024-01-01T00:{i:02d}:{j:02d}Z", "path": "src/app.py",
                                    "author": {"login": "rev"}} for j in range(comments)]}}


def _hosted(upstream, files: int = 0):  # noqa: F811
    issues = [i for i in _issues() if i["number"] != 10]
    issues.append(issue_node("acme/app", 10, "f is wrong", "f returns 1", "carol", T0 - 500,
                             [(f"user{k}", f"comment {k:03d}", T0 - 400 + k) for k in range(130)]))
    issues += [issue_node("acme/app", n, f"issue {n}", "b", "x", T0) for n in range(200, 210)]
    extras = {1: {"closing": CLOSING, "labels": {"nodes": [{"name": f"label-{k:02d}"} for k in range(25)]},
                  "reviews": {"nodes": [_review(i, 45 if i == 3 else 1) for i in range(35)]}}}
    hosted = host_git_repo(upstream.path, "acme/app", extras=extras, issues=issues)
    hosted.meta = repo_object("acme/app", "MIT")
    if files:  # a PR whose REST file list is longer than GitHub lists
        hosted.files[2] = [{"filename": f"gen/f{k:04d}.py", "status": "added", "additions": 1, "deletions": 0,
                            "changes": 1} for k in range(files)]
    return hosted


def _crawl(tmp_path, upstream, gh, name, extra=()):  # noqa: F811
    repos = tmp_path / "repos.txt"
    repos.write_text(f"acme/app {upstream.path}\n")
    os.environ["GITHUB_TOKENS"] = ",".join(TOKENS)
    out = tmp_path / name
    argv = ["crawl", "--repos", repos, "--api-url", gh.url, "--output", out, "--state", tmp_path / f"{name}-state",
            "--tasks", "1", "--workers", "1", "--page-size", "5", "--quiet", *extra]
    assert main([str(a) for a in argv]) == 0
    rows = {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}
    return rows, json.loads((out / "pulls" / "stats.json").read_text())


def test_cut_connections_are_fetched_whole(upstream, tmp_path):  # noqa: F811
    with FakeGitHub([_hosted(upstream)], {t: 5000 for t in TOKENS}) as gh:
        rows, _ = _crawl(tmp_path, upstream, gh, "whole")
        paths = [p for _, p, _ in gh.log]
    one = rows[1]
    assert one["labels"] == [f"label-{k:02d}" for k in range(25)]
    assert len(one["review_comments"]) == 35 + 34 + 45  # every review body and every review comment
    assert "note 03.44" in one["review_comments"] and "review 34" in one["review_comments"]
    assert sorted(i["number"] for i in one["linked_issues"]) == sorted([*CLOSING, 12])  # 12: by a commit message
    issue10 = next(i for i in one["linked_issues"] if i["number"] == 10)
    assert [c["body"] for c in issue10["comments"]] == [f"comment {k:03d}" for k in range(130)]
    assert one["source"]["missing"] == []
    assert {"/repos/acme/app/issues/1/labels", "/repos/acme/app/pulls/1/reviews", "/repos/acme/app/pulls/1/comments",
            "/repos/acme/app/issues/10/comments"} <= set(paths)
    assert "/repos/acme/app/issues/2/labels" not in paths  # only cut connections cost requests


def test_what_cannot_be_fetched_is_named_missing(upstream, tmp_path):  # noqa: F811
    with FakeGitHub([_hosted(upstream)], {t: 5000 for t in TOKENS}) as gh:
        gh.rest_errors["/repos/acme/app/issues/10/comments"] = (404, not_found())
        gh.rest_errors["/repos/acme/app/pulls/1/reviews"] = (404, not_found())
        rows, _ = _crawl(tmp_path, upstream, gh, "missing")
    one = rows[1]
    assert one["source"]["missing"] == ["linked_issues.comments", "reviews"]
    assert len(one["review_comments"]) == 30 + 29 + 30  # what the page carried is kept
    issue10 = next(i for i in one["linked_issues"] if i["number"] == 10)
    assert len(issue10["comments"]) == 100 and one["labels"][-1] == "label-24"


@pytest.mark.parametrize("fallback", [True, False])
def test_rest_file_list_stops_at_3000(upstream, tmp_path, fallback):  # noqa: F811
    with FakeGitHub([_hosted(upstream, files=3050)], {t: 5000 for t in TOKENS}) as gh:
        rows, stats = _crawl(tmp_path, upstream, gh, "files", ["--code", "api",
                                                               *([] if fallback else ["--no-mirror-fallback"])])
    two = rows[2]
    assert stats["counters"]["code.files_truncated"] == 1
    if fallback:  # the mirror has the PR's real files
        assert two["source"]["missing"] == [] and [f["path"] for f in two["files"]] == ["src/app.py"]
    else:
        assert two["source"]["missing"] == ["files"] and len(two["files"]) == 3000
