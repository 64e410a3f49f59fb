"""The GraphQL documents the crawl sends. One page of PRs carries everything but the code: commits and their
messages, review discussion, labels, and the issues GitHub says the PR closes, with their comments.

Every nested connection is cut at `first: N` (GraphQL's node limits keep a page affordable), so each asks for its
`totalCount`: the crawler fetches the rest of a connection that was cut (crawl.py) and records in
`source.missing` what it could not fetch."""

from __future__ import annotations

ISSUE_FIELDS = """
fragment IssueFields on Issue {
  number title body state createdAt closedAt
  author { login }
  repository { nameWithOwner }
  comments(first: 100) { totalCount nodes { databaseId body createdAt author { login } } }
}
"""

PULL_REQUESTS = """
query PullRequests($owner: String!, $name: String!, $first: Int!, $after: String) {
  rateLimit { cost remaining resetAt }
  repository(owner: $owner, name: $name) {
    pullRequests(states: [MERGED, CLOSED], first: $first, after: $after,
                 orderBy: {field: UPDATED_AT, direction: ASC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number title body createdAt updatedAt mergedAt merged
        author { login }
        baseRefName baseRefOid headRefOid
        mergeCommit { oid }
        labels(first: 20) { totalCount nodes { name } }
        commits(first: 100) {
          totalCount
          nodes { commit { oid message committedDate author { name } parents(first: 2) { nodes { oid } } } }
        }
        closingIssuesReferences(first: 10) { totalCount nodes { ...IssueFields } }
        reviews(first: 30) {
          totalCount
          nodes { databaseId body createdAt author { login }
                  comments(first: 30) { totalCount nodes { databaseId body createdAt path author { login } } } }
        }
      }
    }
  }
}
""" + ISSUE_FIELDS


def issues_query(numbers: list[int]) -> str:
    """One request for several issues of a repository, by number (aliases i<N>); a number that is a PR or gone
    comes back null with a NOT_FOUND error, which the caller ignores."""
    fields = "\n".join(f"    i{n}: issue(number: {n}) {{ ...IssueFields }}" for n in numbers)
    return ("query Issues($owner: String!, $name: String!) {\n  repository(owner: $owner, name: $name) {\n"
            f"{fields}\n  }}\n}}\n" + ISSUE_FIELDS)


CLOSING_ISSUES = """
query ClosingIssues($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      closingIssuesReferences(first: 50, after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes { ...IssueFields }
      }
    }
  }
}
""" + ISSUE_FIELDS
