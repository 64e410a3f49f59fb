"""`datakit crawl --gharchive`: hour files of both payload eras + a real git mirror → PullRecords, with bad files and
lines quarantined and the counts adding up over two tasks."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest

from datakit.cli import main
from datakit.io.schemas import validate
from datakit.sources.git_mirror import RepoSpec, clone_mirror
from tests.gharchive_fixtures import comment, event, full_issue, full_pull, stub_pull, write_hour
from tests.gitrepo import RepoBuilder

R = "acme/app"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gha")
    b = RepoBuilder(tmp / "app.git", start=1_700_000_000)
    b.commit({"src/app.py": "def f():\n    return 1\n", "tests/test_app.py": "def test_f():\n    pass\n"}, "init",
             parent=None)
    b.branch("fix-f")
    head1 = b.commit({"src/app.py": "def f():\n    return 2\n"}, "fix f", parent="fix-f", ref="refs/heads/fix-f")
    base1 = b.repo.branches["main"].target
    merge1 = b.merge_pr(1, "fix-f", "Fix f", "Fixes #10")
    squash2 = b.squash_pr(2, {"src/app.py": "def f():\n    return 2\n\n\ndef g():\n    return 3\n"},
                          "Add g, closes #11")
    head2 = b.repo.references["refs/pull/2/head"].target
    head3 = b.commit({"src/wip.py": "x = 1\n"}, "wip", parent="main", ref="refs/pull/3/head")
    mirrors = tmp / "mirrors"
    clone_mirror(RepoSpec(R, str(b.path)), mirrors)

    t = "2024-03-01T10:{:02d}:00Z".format
    early = [
        event(1, "IssuesEvent", "carol", R, {"action": "opened", "issue": full_issue(
            R, 10, title="f is wrong", body="f returns 1", author="carol", created_at=t(0), updated_at=t(0))}, t(0)),
        event(2, "IssueCommentEvent", "dave", R, {"action": "created", "issue": full_issue(
            R, 10, title="f is wrong", body="f returns 1", author="carol", created_at=t(0), updated_at=t(1)),
            "comment": comment(501, R, 10, author="dave", body="me too", created_at="2023-11-14T00:00:00Z")}, t(1)),
        event(3, "PullRequestEvent", "bob", R, {"action": "opened", "number": 1, "pull_request": full_pull(
            R, 1, title="Fix f", body="Fixes #10", author="bob", created_at=t(2), updated_at=t(2), head_sha=str(head1),
            base_sha=str(base1))}, t(2)),
        event(4, "PullRequestEvent", "maya", R, {"action": "closed", "number": 1, "pull_request": full_pull(
            R, 1, title="Fix f", body="Fixes #10", author="bob", created_at=t(2), updated_at=t(3), head_sha=str(head1),
            base_sha=str(base1), state="closed", merged=True, merged_at=t(3), merge_sha=str(merge1))}, t(3)),
        event(5, "PullRequestEvent", "eve", R, {"action": "closed", "number": 3, "pull_request": full_pull(
            R, 3, title="wip", body="", author="eve", created_at=t(4), updated_at=t(5), head_sha=str(head3),
            base_sha=str(base1), state="closed", merged=False)}, t(5)),
    ]
    later = [
        event(6, "IssuesEvent", "carol", R, {"action": "opened", "issue": full_issue(
            R, 11, title="need g", body="please add g", author="carol", created_at=t(6), updated_at=t(6),
            trimmed=True)}, t(6)),
        event(7, "PullRequestEvent", "bob", R, {"action": "opened", "number": 2, "pull_request": stub_pull(
            R, 2, head_sha=str(head2), base_sha=str(base1))}, t(7)),
        event(8, "PullRequestEvent", "maya", R, {"action": "merged", "number": 2, "pull_request": stub_pull(
            R, 2, head_sha=str(head2), base_sha=str(base1))}, t(8)),
    ]
    folder = tmp / "hours"
    write_hour(folder, datetime(2024, 3, 1, 10, tzinfo=timezone.utc), early)
    write_hour(folder, datetime(2025, 11, 1, 10, tzinfo=timezone.utc), [*later, b'{"id": "9", "type": "Pull'])
    good = (folder / "2025-11-01-10.json.gz").read_bytes()
    (folder / "2025-11-02-0.json.gz").write_bytes(good[: len(good) // 2])  # a truncated download
    out = tmp / "out"
    argv = ["crawl", "--gharchive", folder, "--mirrors", mirrors, "--no-fetch", "--output", out, "--tasks", "2",
            "--workers", "1", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return out, {"squash2": str(squash2), "head2": str(head2)}


def test_records_from_both_eras(archive):
    out, shas = archive
    rows = {r["number"]: r for r in pl.read_parquet(out / "pulls" / "*.parquet").to_dicts()}
    assert sorted(rows) == [1, 2]
    for r in rows.values():
        validate(r, "pull_record")
        assert r["source"]["kind"] == "gharchive"
    one, two = rows[1], rows[2]
    assert one["title"] == "Fix f" and one["merged_at"] == "2024-03-01T10:03:00Z" and one["author"] == "bob"
    assert [(i["number"], i["link_rules"], i["title"], i["hints"]) for i in one["linked_issues"]] == [
        (10, ["keyword_body"], "f is wrong", ["me too"])]
    assert one["source"]["missing"] == [] and "+    return 2" in one["diff"]
    # trimmed era: no title, body, author or merge time in the events; the mirror found the squash merge
    assert {"title", "body", "merged_at"} <= set(two["source"]["missing"])
    assert two["merge_sha"] == shas["squash2"] and two["head_sha"] == shas["head2"]
    assert [(i["number"], i["link_rules"], i["title"]) for i in two["linked_issues"]] == [
        (11, ["keyword_commit"], "need g")]


def test_bad_input_quarantined_and_counted(archive):
    out, _ = archive
    stats = json.loads((out / "pulls" / "stats.json").read_text())["units"]
    assert stats["files"] == {"read": 3, "written": 2, "quarantined": {"truncated_gzip": 1}, "filtered": {}}
    assert stats["lines"]["quarantined"] == {"malformed_json": 1}
    assert stats["pulls"] == {"read": 3, "written": 2, "quarantined": {}, "filtered": {"unmerged": 1}}
    reasons = sorted(pl.read_parquet(out / "pulls" / "quarantine" / "*.parquet")["reason"].to_list())
    assert reasons == ["malformed_json", "truncated_gzip"]
