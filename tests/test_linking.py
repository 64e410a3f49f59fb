"""PR ↔ issue linking and the crawl's filters, on strings."""

from __future__ import annotations

import pytest

from datakit.pulls.filters import is_bot, license_allowed
from datakit.pulls.linking import Reference, closing_references, find_links, hints
from datakit.pulls.records import attach_issues, new_pull_record

R = "acme/app"


@pytest.mark.parametrize("text,expected", [
    ("Fixes #12", [(R, 12)]),
    ("fixes #12", [(R, 12)]),
    ("FIXED #12", [(R, 12)]),
    ("close #1, closes #2 and closed #3", [(R, 1), (R, 2), (R, 3)]),
    ("resolve #4; Resolves: #5. resolved #6", [(R, 4), (R, 5), (R, 6)]),
    ("Fixes other/lib#7", [("other/lib", 7)]),
    ("fixes https://github.com/acme/app/issues/8", [(R, 8)]),
    ("fixes https://github.com/Other/Lib/issues/9.", [("Other/Lib", 9)]),
    ("Fixes #1, #2", [(R, 1)]),  # one reference per keyword, as on GitHub
    ("prefixes #3", []),  # part of another word
    ("fix#3", []),  # no space
    ("fixes # 3", []),
    ("fixes #3abc", []),
    ("fixes https://github.com/acme/app/pull/10", []),  # a PR, not an issue
    ("<!-- Fixes #99 (template example) -->\nFixes #4", [(R, 4)]),  # HTML comments stripped first
    ("text <!-- unclosed fixes #5", []),
    ("", []),
    (None, []),
])
def test_closing_references(text, expected):
    assert [(r.repo, r.number) for r in closing_references(text, R)] == expected


def test_find_links_rules_order_and_self_reference():
    links = find_links(R, 7, "Fix crash (fixes #3)", "Closes #4\n\nAlso fixes #3. Fixes #7",
                       ["wip", "fix #5\n\nresolves #4"], [Reference(R, 4), Reference("acme/other", 1)])
    assert [(link.repo, link.number, link.rules) for link in links] == [
        (R, 4, ["closing_reference", "keyword_body", "keyword_commit"]),
        ("acme/other", 1, ["closing_reference"]),
        (R, 3, ["keyword_title", "keyword_body"]),
        (R, 5, ["keyword_commit"]),
    ]  # #7 is the PR itself


def test_links_are_case_insensitive_on_the_repository():
    links = find_links(R, 1, "", "fixes ACME/App#2 and fixes #2", [], [])
    assert len(links) == 1 and links[0].rules == ["keyword_body"]


def test_hints_are_comments_before_the_first_commit():
    comments = [{"body": "late", "created_at": "2024-01-03T00:00:00Z"},
                {"body": "early", "created_at": "2024-01-01T00:00:00Z"},
                {"body": "  ", "created_at": "2024-01-01T00:00:01Z"},
                {"body": "undated", "created_at": None}]
    assert hints(comments, "2024-01-02T00:00:00Z") == ["early"]
    assert hints(comments, None) == []


def test_attach_issues_flags_a_pr_without_issue():
    record = new_pull_record(repo=R, number=1, title="t", body="", author="a", created_at="2024-01-02T00:00:00Z",
                             updated_at=None, merged_at="2024-01-03T00:00:00Z", base_sha="b", head_sha="h",
                             merge_sha="m", kind="github", method="graphql")
    assert attach_issues(record, [], {})["flags"] == ["no_linked_issue"]
    links = find_links(R, 1, "", "fixes #2", [])
    issue = {"title": "bug", "body": "it breaks", "comments": [{"body": "hint", "created_at": "2024-01-01T00:00:00Z"}]}
    attach_issues(record, links, {(R, 2): issue})
    assert record["flags"] == [] and record["linked_issues"][0]["hints"] == ["hint"]
    assert record["linked_issues"][0]["fetched"] is True


@pytest.mark.parametrize("login,bot", [
    ("dependabot[bot]", True), ("renovate[bot]", True), ("dependabot", True), ("pre-commit-ci[bot]", True),
    ("greenkeeperio-bot", True), ("some-ci-bot", True), ("Renovate", True), ("alice", False),
    ("botanist", False), (None, False),
])
def test_bots(login, bot):
    assert is_bot(login) is bot


def test_licence_allow_list():
    assert license_allowed("MIT", ["mit", "Apache-2.0"]) and not license_allowed("GPL-3.0", ["MIT"])
    assert not license_allowed(None, ["MIT"]) and license_allowed(None, [])


def test_fork_of_names_the_network_root():
    """A fork of a fork: `parent` is the intermediate fork, `source` the network's root (GitHub's REST fields)."""
    from datakit.pulls.records import new_pull_record

    meta = {"fork": True, "parent": "someone/django-fork", "source": "django/django"}
    rec = new_pull_record(repo="x/y", number=1, title="t", body="", author="a", created_at=None, updated_at=None,
                          merged_at=None, base_sha="", head_sha="", merge_sha=None, kind="github", method="graphql",
                          repo_meta=meta)
    assert rec["fork_of"] == "django/django"
    meta = {"fork": True, "parent": "pallets/flask", "source": None}
    assert new_pull_record(repo="x/y", number=1, title="t", body="", author="a", created_at=None, updated_at=None,
                           merged_at=None, base_sha="", head_sha="", merge_sha=None, kind="github",
                           method="graphql", repo_meta=meta)["fork_of"] == "pallets/flask"
