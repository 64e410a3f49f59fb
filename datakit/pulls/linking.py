"""Which issues a pull request resolves, and why. Pure functions on strings.

A PR resolves an issue when its title, body or one of its commit messages says a closing keyword followed by a
reference, as GitHub itself reads them: `close|closes|closed|fix|fixes|fixed|resolve|resolves|resolved`, an optional
colon, then `#N`, `owner/repo#N` or the issue's URL (case-insensitive; HTML comments are stripped first, since PR
templates hide example keywords in them). Each keyword links one reference ("fixes #1, #2" links #1 only, as on
GitHub). GraphQL's `closingIssuesReferences` is a second rule. Every link records the rules that found it, in
the order `closing_reference, keyword_title, keyword_body, keyword_commit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

RULES = ("closing_reference", "keyword_title", "keyword_body", "keyword_commit")

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # an unclosed comment hides the rest, as GitHub renders it
_NAME = r"[A-Za-z0-9_.-]+"
CLOSING_KEYWORD = re.compile(
    r"(?<![\w/-])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+"
    r"(?:https?://(?:www\.)?github\.com/(?P<url_owner>" + _NAME + r")/(?P<url_name>" + _NAME + r")/issues/(?P<url_number>\d+)"
    r"|(?:(?P<owner>" + _NAME + r")/(?P<name>" + _NAME + r"))?#(?P<number>\d+))"
    r"(?![\w/])",
    re.I,
)


@dataclass(frozen=True)
class Reference:
    repo: str  # owner/name, as written (compare case-insensitively)
    number: int


@dataclass
class Link:
    repo: str
    number: int
    rules: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return self.repo.lower(), self.number


def strip_html_comments(text: str) -> str:
    return _HTML_COMMENT.sub("", text)


def closing_references(text: str | None, repo: str) -> list[Reference]:
    """The references after closing keywords in `text`, in order (`#N` is an issue of `repo`)."""
    if not text:
        return []
    refs = []
    for m in CLOSING_KEYWORD.finditer(strip_html_comments(text)):
        if m["url_number"]:
            refs.append(Reference(f"{m['url_owner']}/{m['url_name']}", int(m["url_number"])))
        else:
            refs.append(Reference(f"{m['owner']}/{m['name']}" if m["owner"] else repo, int(m["number"])))
    return refs


def find_links(repo: str, number: int, title: str | None, body: str | None, commit_messages: Iterable[str] = (),
               closing_refs: Iterable[Reference] = ()) -> list[Link]:
    """Every issue the PR `repo#number` resolves, each with the rules that linked it, in first-seen order.

    A PR never links itself. References to other repositories are kept (their `repo` says so)."""
    links: dict[tuple[str, int], Link] = {}

    def add(ref: Reference, rule: str) -> None:
        if ref.repo.lower() == repo.lower() and ref.number == number:
            return
        link = links.setdefault((ref.repo.lower(), ref.number), Link(ref.repo, ref.number))
        if rule not in link.rules:
            link.rules.append(rule)

    for ref in closing_refs:
        add(ref, "closing_reference")
    for ref in closing_references(title, repo):
        add(ref, "keyword_title")
    for ref in closing_references(body, repo):
        add(ref, "keyword_body")
    for message in commit_messages:
        for ref in closing_references(message, repo):
            add(ref, "keyword_commit")
    for link in links.values():
        link.rules.sort(key=RULES.index)
    return list(links.values())


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def hints(comments: Iterable[dict], before: str | None) -> list[str]:
    """SWE-bench's hints: the bodies of the issue comments made before the PR's first commit, oldest first.

    Without a first-commit time nothing is a hint (a comment written after the fix may give it away)."""
    cutoff = parse_time(before)
    if cutoff is None:
        return []
    dated = [(parse_time(c.get("created_at")), c.get("body") or "") for c in comments]
    return [body for when, body in sorted((d for d in dated if d[0] is not None), key=lambda d: d[0])
            if when < cutoff and body.strip()]
